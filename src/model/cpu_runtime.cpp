// See cpu_runtime.h. mallopt(3) values: M_MMAP_THRESHOLD max on 64-bit is 32 MB; setting it also
// disables glibc's dynamic threshold, so the behaviour does not depend on the allocation history.
#include "model/cpu_runtime.h"

#include <malloc.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>

namespace eztinker::model {

void tune_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* off = std::getenv("EZTINKER_NO_MALLOC_TUNING");
    if (off != nullptr && *off != '\0' && *off != '0') return;
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  });
}

void release_free_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

ResidentMemory resident_memory() {
  ResidentMemory out;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    // Lines look like "VmRSS:\t  123456 kB".
    if (line.rfind("VmRSS:", 0) == 0) out.rss_bytes = std::stoll(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) out.peak_bytes = std::stoll(line.substr(6)) * 1024;
  }
  return out;
}

int64_t huge_page_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    // "AnonHugePages:    2048 kB"
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stoll(line.substr(14)) * 1024;
  }
  return 0;
}

void reset_peak_resident_memory() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

}  // namespace eztinker::model
