// eztinker_sentencepiece_shim.so: sentencepiece::SentencePieceProcessor behind the C ABI of
// sentencepiece_shim.h. Built as a MODULE (dlopen only) and the only binary of ours that links
// libsentencepiece; every entry point catches, so no exception leaves the shim.
#include "sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <vector>

// note: exported by libsentencepiece but declared only in its internal common.h.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

struct EztSpm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

// A malloc'd copy of `s` (NUL-terminated), released by ezt_spm_free.
char* copy_out(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

void set_error(char** error, const std::string& message) {
  if (error) *error = copy_out(message);
}

// Silences SentencePiece's LOG(INFO/WARNING/ERROR), which write to std::cerr: under
// RTLD_DEEPBIND libsentencepiece binds std::cerr to libstdc++'s own definition, which is never
// constructed when the executable holds a copy relocation of std::cerr (any PIE that uses it),
// so a log line would crash. Errors reach the caller through Status instead.
void quiet_logging() {
  static const bool done = [] {
    constexpr int kLogFatal = 3;  // sentencepiece::logging::LOG_FATAL
    sentencepiece::logging::SetMinLogLevel(kLogFatal);
    return true;
  }();
  (void)done;
}

bool valid_id(const EztSpm* spm, int32_t id) {
  return id >= 0 && id < spm->sp.GetPieceSize();
}

}  // namespace

extern "C" {

int ezt_spm_abi_version(void) {
  return EZT_SPM_ABI_VERSION;
}

EztSpm* ezt_spm_load(const char* path, char** error) {
  try {
    quiet_logging();
    auto* spm = new EztSpm;
    const auto status = spm->sp.Load(path);
    if (status.ok()) return spm;
    delete spm;
    set_error(error, status.ToString());
  } catch (const std::exception& e) {
    set_error(error, e.what());
  }
  return nullptr;
}

void ezt_spm_destroy(EztSpm* spm) {
  delete spm;
}

int ezt_spm_encode(const EztSpm* spm,
                   const char* text,
                   size_t text_size,
                   int32_t** ids,
                   size_t* ids_size,
                   char** error) {
  try {
    std::vector<int> out;
    const auto status = spm->sp.Encode(std::string_view(text, text_size), &out);
    if (!status.ok()) {
      set_error(error, status.ToString());
      return 1;
    }
    // note: malloc(0) may return NULL; one spare element keeps NULL meaning "out of memory".
    auto* p = static_cast<int32_t*>(std::malloc((out.size() + 1) * sizeof(int32_t)));
    if (!p) throw std::bad_alloc();
    for (size_t i = 0; i < out.size(); ++i) p[i] = out[i];
    *ids = p;
    *ids_size = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_error(error, e.what());
    return 1;
  }
}

int ezt_spm_decode(const EztSpm* spm,
                   const int32_t* ids,
                   size_t ids_size,
                   char** text,
                   size_t* text_size,
                   char** error) {
  try {
    const std::vector<int> in(ids, ids + ids_size);
    std::string out;
    const auto status = spm->sp.Decode(in, &out);
    if (!status.ok()) {
      set_error(error, status.ToString());
      return 1;
    }
    char* p = copy_out(out);
    if (!p) throw std::bad_alloc();
    *text = p;
    *text_size = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_error(error, e.what());
    return 1;
  }
}

int32_t ezt_spm_piece_size(const EztSpm* spm) {
  return spm->sp.GetPieceSize();
}

int32_t ezt_spm_piece_to_id(const EztSpm* spm, const char* piece, size_t piece_size) {
  return spm->sp.PieceToId(std::string_view(piece, piece_size));
}

const char* ezt_spm_id_to_piece(const EztSpm* spm, int32_t id, size_t* piece_size) {
  if (!valid_id(spm, id)) {
    *piece_size = 0;
    return "";
  }
  const std::string& piece = spm->sp.IdToPiece(id);  // a reference into the loaded model
  *piece_size = piece.size();
  return piece.data();
}

uint32_t ezt_spm_piece_flags(const EztSpm* spm, int32_t id) {
  uint32_t flags = 0;
  if (!valid_id(spm, id)) return flags;
  if (spm->sp.IsControl(id)) flags |= EZT_SPM_CONTROL;
  if (spm->sp.IsUnknown(id)) flags |= EZT_SPM_UNKNOWN;
  if (spm->sp.IsByte(id)) flags |= EZT_SPM_BYTE;
  if (spm->sp.IsUnused(id)) flags |= EZT_SPM_UNUSED;
  return flags;
}

int32_t ezt_spm_unk_id(const EztSpm* spm) {
  return spm->sp.unk_id();
}
int32_t ezt_spm_bos_id(const EztSpm* spm) {
  return spm->sp.bos_id();
}
int32_t ezt_spm_eos_id(const EztSpm* spm) {
  return spm->sp.eos_id();
}
int32_t ezt_spm_pad_id(const EztSpm* spm) {
  return spm->sp.pad_id();
}

void ezt_spm_free(void* p) {
  std::free(p);
}

}  // extern "C"
