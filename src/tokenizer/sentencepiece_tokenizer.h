// SentencePiece (tokenizer.model) behind the Tokenizer interface. libsentencepiece is never
// linked: it is reached through eztinker_sentencepiece_shim.so (sentencepiece_shim/), dlopened
// with RTLD_LOCAL | RTLD_DEEPBIND so the protobuf-lite it bundles binds to itself and never meets
// libtorch's libprotobuf (see docs/tokenizer.md).
#pragma once

#include "eztinker/tokenizer.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace eztinker::tokenizer::detail {

// Loads dir/tokenizer.model. Throws std::runtime_error naming the file when the model does not
// load, or when no shim can be loaded (then also naming every place searched).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir);

// Where the shim is searched, in order: $EZTINKER_SENTENCEPIECE_SHIM alone when set; else next
// to the executable, <exe dir>/../<libdir>/eztinker/, the build tree, the install libdir's
// eztinker/, then the bare file name (dlopen's own search: LD_LIBRARY_PATH, ld.so.cache).
std::vector<std::string> sentencepiece_shim_candidates();

// dlopens the first usable candidate (it loads, exports every function and has our ABI
// version) and returns its path; throws std::runtime_error listing each candidate and why it
// was skipped. The process-wide shim is found once with sentencepiece_shim_candidates().
std::string find_sentencepiece_shim(const std::vector<std::string>& candidates);

}  // namespace eztinker::tokenizer::detail
