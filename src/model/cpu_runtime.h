// Process-wide CPU runtime settings that matter for libtorch inference/training speed here.
// glibc malloc serves every allocation above its (dynamic) mmap threshold with a fresh mmap and
// returns freed heap tops to the OS, so each forward pass page-faults its activations in again:
// measured on Qwen2-0.5B shapes (1x256, bf16, one thread) this cost 18% of forward time.
#pragma once

namespace eztinker::model {

// Raises glibc's mmap threshold to its 32 MB maximum and the trim threshold to 1 GB, so
// activation-sized blocks are reused from the heap instead of being re-faulted. Idempotent and
// thread-safe; called by the Qwen2ForCausalLM constructor. Set EZTINKER_NO_MALLOC_TUNING=1 to
// skip it (e.g. under a different allocator or when RSS matters more than speed).
void tune_cpu_allocator();

}  // namespace eztinker::model
