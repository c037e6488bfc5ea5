// eztinker_sentencepiece_reference.so (tests only): libsentencepiece's own trainer and
// processor behind a few C functions, the reference sentencepiece_test.cpp compares our
// Tokenizer against. A dlopen module for the same reason as src/tokenizer/sentencepiece_shim/:
// linking libsentencepiece into a libtorch test executable clashes with libprotobuf.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define EZT_REF_API extern "C" __attribute__((visibility("default")))

// note: exported by libsentencepiece but declared only in its internal common.h.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace {

char* copy_out(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

}  // namespace

// 0 when SentencePieceTrainer::Train(args) succeeds, else non-zero and *error.
// SentencePiece logs to std::cerr, which under RTLD_DEEPBIND may be an unconstructed object
// (see src/tokenizer/sentencepiece_shim/sentencepiece_shim.cpp): pass --minloglevel=3 too.
EZT_REF_API int ezt_ref_train(const char* args, char** error) {
  sentencepiece::logging::SetMinLogLevel(3);  // before Train logs its command line
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (status.ok()) return 0;
  *error = copy_out(status.ToString());
  return 1;
}

// A loaded SentencePieceProcessor, or NULL and *error.
EZT_REF_API void* ezt_ref_load(const char* path, char** error) {
  auto* sp = new sentencepiece::SentencePieceProcessor;
  const auto status = sp->Load(path);
  if (status.ok()) return sp;
  delete sp;
  *error = copy_out(status.ToString());
  return nullptr;
}

EZT_REF_API void ezt_ref_destroy(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

// Encode into *ids (released with ezt_ref_free); 0 on success, else non-zero and *error.
EZT_REF_API int ezt_ref_encode(
    const void* sp, const char* text, size_t size, int** ids, size_t* n, char** error) {
  std::vector<int> out;
  const auto status = static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->Encode(
      std::string(text, size), &out);
  if (!status.ok()) {
    *error = copy_out(status.ToString());
    return 1;
  }
  *ids = static_cast<int*>(std::malloc((out.size() + 1) * sizeof(int)));
  std::memcpy(*ids, out.data(), out.size() * sizeof(int));
  *n = out.size();
  return 0;
}

// DecodeIds(ids), released with ezt_ref_free.
EZT_REF_API char* ezt_ref_decode_ids(const void* sp, const int* ids, size_t n) {
  const auto* p = static_cast<const sentencepiece::SentencePieceProcessor*>(sp);
  return copy_out(p->DecodeIds(std::vector<int>(ids, ids + n)));
}

EZT_REF_API int ezt_ref_piece_size(const void* sp) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->GetPieceSize();
}
EZT_REF_API int ezt_ref_piece_to_id(const void* sp, const char* piece) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->PieceToId(piece);
}
EZT_REF_API int ezt_ref_bos_id(const void* sp) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->bos_id();
}
EZT_REF_API int ezt_ref_eos_id(const void* sp) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->eos_id();
}

EZT_REF_API void ezt_ref_free(void* p) {
  std::free(p);
}
