// Process-wide CPU runtime settings that matter for libtorch inference/training speed here, and
// the process's resident memory (for load-stage debug lines, the bench and memory tests).
// glibc malloc serves every allocation above its (dynamic) mmap threshold with a fresh mmap and
// returns freed heap tops to the OS, so each forward pass page-faults its activations in again:
// measured on Qwen2-0.5B shapes (1x256, bf16, one thread) this cost 18% of forward time.
#pragma once

#include <cstdint>

namespace eztinker::model {

// Raises glibc's mmap threshold to its 32 MB maximum and the trim threshold to 1 GB, so
// activation-sized blocks are reused from the heap instead of being re-faulted. Idempotent and
// thread-safe; called by the Qwen2ForCausalLM constructor. Set EZTINKER_NO_MALLOC_TUNING=1 to
// skip it (e.g. under a different allocator or when RSS matters more than speed).
void tune_cpu_allocator();

// Returns the free heap pages of every malloc arena to the OS (glibc malloc_trim(0)), which the
// tuning above otherwise keeps (up to 1 GB at the top, and free chunks inside the heap always).
// Takes milliseconds; meant for one-off points such as the end of a model load, not per step.
void release_free_heap();

// Resident set size of this process now and its peak since start or the last reset, in bytes
// (VmRSS / VmHWM of /proc/self/status; both 0 where that file is unavailable). Thread-safe.
struct ResidentMemory {
  int64_t rss_bytes = 0;
  int64_t peak_bytes = 0;
};
ResidentMemory resident_memory();

// Bytes of this process's anonymous memory backed by transparent huge pages now (AnonHugePages
// of /proc/self/smaps_rollup, Linux >= 4.14; 0 where unavailable). Reading it walks the page
// tables: a diagnostic, not for hot paths.
int64_t huge_page_bytes();

// Resets the peak (VmHWM) to the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs);
// a no-op where unsupported.
void reset_peak_resident_memory();

}  // namespace eztinker::model
