// See cpu_runtime.h. mallopt(3) values: M_MMAP_THRESHOLD max on 64-bit is 32 MB; setting it also
// disables glibc's dynamic threshold, so the behaviour does not depend on the allocation history.
#include "model/cpu_runtime.h"

#include <malloc.h>

#include <cstdlib>
#include <mutex>

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

}  // namespace eztinker::model
