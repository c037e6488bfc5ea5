// Small file/text helpers shared by the dataset loaders and recipes/demo.cpp. Private to
// eztinker_datasets and eztinker_recipes (not installed).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace eztinker::datasets::detail {

// Whole file as bytes; throws DatasetError naming the path when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);
// Writes atomically (temp file in the same directory, then rename); throws DatasetError.
void write_text_file_atomic(const std::filesystem::path& path, const std::string& text);
// Lines without their terminator ("\n" or "\r\n"); a final line without "\n" is included.
std::vector<std::string_view> split_lines(std::string_view text);
std::string_view trim(std::string_view s);

}  // namespace eztinker::datasets::detail
