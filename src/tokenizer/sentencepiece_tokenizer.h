// SentencePiece (tokenizer.model) behind the Tokenizer interface, via libsentencepiece.
#pragma once

#include "eztinker/tokenizer.h"

#include <filesystem>
#include <memory>

namespace eztinker::tokenizer::detail {

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir);

}  // namespace eztinker::tokenizer::detail
