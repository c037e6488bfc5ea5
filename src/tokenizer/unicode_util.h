// UTF-8 helpers for the tokenizer: validation with U+FFFD replacement (Python errors="replace"
// semantics), NFC through utf8proc, and GPT-2's byte <-> unicode alphabet used by byte-level
// BPE vocabularies (bytes_to_unicode() in openai/gpt-2 encoder.py).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace eztinker::tokenizer::detail {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid/truncated there.
// Follows the Unicode "maximal subpart" rules (no overlongs, no surrogates, <= U+10FFFF).
size_t utf8_valid_len(std::string_view s, size_t i);

// Length of the maximal invalid subpart at s[i] (>= 1); replace it with one U+FFFD.
size_t utf8_invalid_len(std::string_view s, size_t i);

bool is_valid_utf8(std::string_view s);

// s with every maximal invalid subpart replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);

// False when s is certainly NFC already (no code point >= U+0300), so nfc() can be skipped.
bool nfc_may_change(std::string_view s);

// Unicode NFC of valid UTF-8 (ASCII fast path, no allocation beyond the result).
std::string nfc(std::string_view s);

// GPT-2's reversible byte <-> printable-codepoint map.
const std::array<uint32_t, 256>& byte_to_codepoint();
// codepoint -> byte, or -1 when the codepoint is not in the alphabet (table covers < 324).
int codepoint_to_byte(uint32_t cp);
// The byte-level vocab form of raw bytes ("\x20Hi" -> "ĠHi").
std::string bytes_to_unicode_string(std::string_view bytes);
// Vocab form -> raw bytes. A codepoint outside the alphabet keeps its UTF-8 bytes (as HF's
// ByteLevel decoder does). Expects valid UTF-8.
std::string unicode_string_to_bytes(std::string_view text);

void append_utf8(std::string& out, uint32_t cp);

}  // namespace eztinker::tokenizer::detail
