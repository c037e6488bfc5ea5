// C ABI of eztinker_sentencepiece_shim.so, the one library that links libsentencepiece.
// Debian's libsentencepiece bundles protobuf-lite 3.14 and exports it; linked into a libtorch
// process (libprotobuf 3.21) the two clash. sentencepiece_tokenizer.cpp therefore dlopens this
// shim with RTLD_LOCAL | RTLD_DEEPBIND and reaches SentencePieceProcessor only through these
// plain C functions: no C++ type, exception or allocation crosses the boundary.
#pragma once

#include <stddef.h>
#include <stdint.h>

// Bumped on any change below; the loader skips a shim that reports another value.
#define EZT_SPM_ABI_VERSION 1

// ezt_spm_piece_flags bits (SentencePieceProcessor::IsControl/IsUnknown/IsByte/IsUnused).
#define EZT_SPM_CONTROL 1u
#define EZT_SPM_UNKNOWN 2u
#define EZT_SPM_BYTE 4u
#define EZT_SPM_UNUSED 8u

// The shim is built with hidden visibility; these are its only exports.
#define EZT_SPM_API __attribute__((visibility("default")))

extern "C" {

// One loaded model (a SentencePieceProcessor). Const functions are thread-safe, as the
// processor's const methods are.
typedef struct EztSpm EztSpm;

EZT_SPM_API int ezt_spm_abi_version(void);

// Loads a tokenizer.model. Returns NULL and sets *error on failure.
EZT_SPM_API EztSpm* ezt_spm_load(const char* path, char** error);
EZT_SPM_API void ezt_spm_destroy(EztSpm* spm);

// Text -> ids (the processor's Encode). 0 on success (*ids owned by the caller, released with
// ezt_spm_free), else non-zero and *error.
EZT_SPM_API int ezt_spm_encode(const EztSpm* spm,
                               const char* text,
                               size_t text_size,
                               int32_t** ids,
                               size_t* ids_size,
                               char** error);
// Ids -> text (the processor's Decode). 0 on success (*text owned by the caller, released with
// ezt_spm_free; not NUL-terminated), else non-zero and *error.
EZT_SPM_API int ezt_spm_decode(const EztSpm* spm,
                               const int32_t* ids,
                               size_t ids_size,
                               char** text,
                               size_t* text_size,
                               char** error);

EZT_SPM_API int32_t ezt_spm_piece_size(const EztSpm* spm);
// The piece's id, or the unknown id when the piece is not in the vocabulary.
EZT_SPM_API int32_t ezt_spm_piece_to_id(const EztSpm* spm, const char* piece, size_t piece_size);
// The piece text of an id (empty when out of range), owned by the model (valid until
// ezt_spm_destroy).
EZT_SPM_API const char* ezt_spm_id_to_piece(const EztSpm* spm, int32_t id, size_t* piece_size);
// EZT_SPM_* bits of an id (0 when out of range).
EZT_SPM_API uint32_t ezt_spm_piece_flags(const EztSpm* spm, int32_t id);
// -1 when the model defines no such piece.
EZT_SPM_API int32_t ezt_spm_unk_id(const EztSpm* spm);
EZT_SPM_API int32_t ezt_spm_bos_id(const EztSpm* spm);
EZT_SPM_API int32_t ezt_spm_eos_id(const EztSpm* spm);
EZT_SPM_API int32_t ezt_spm_pad_id(const EztSpm* spm);

// Releases what the shim allocated (ids, text, error). Never free(): under RTLD_DEEPBIND the
// shim's malloc may not be the caller's.
EZT_SPM_API void ezt_spm_free(void* p);

}  // extern "C"
