// SentencePiece (tokenizer.model) behind the Tokenizer interface, via libsentencepiece.
#pragma once

#include <filesystem>
#include <memory>

#include "eztinker/tokenizer.h"

namespace eztinker::tokenizer::detail {

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir);

}  // namespace eztinker::tokenizer::detail
