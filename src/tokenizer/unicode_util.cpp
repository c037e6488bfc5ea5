// UTF-8 validation/replacement, NFC (utf8proc) and the GPT-2 byte alphabet.
#include "tokenizer/unicode_util.h"

#include <utf8proc.h>

#include <cstdlib>
#include <stdexcept>

namespace eztinker::tokenizer::detail {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Valid second-byte range for a lead byte (Unicode Table 3-7), lo > hi when the lead is invalid.
void second_byte_range(unsigned char lead, unsigned char& lo, unsigned char& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (lead == 0xE0)
    lo = 0xA0;
  else if (lead == 0xED)
    hi = 0x9F;
  else if (lead == 0xF0)
    lo = 0x90;
  else if (lead == 0xF4)
    hi = 0x8F;
}

size_t sequence_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Number of bytes of a well-formed prefix of the sequence at i (possibly the whole one).
size_t valid_prefix(std::string_view s, size_t i, size_t& need) {
  const auto lead = static_cast<unsigned char>(s[i]);
  need = sequence_len(lead);
  if (need <= 1) return need;
  unsigned char lo, hi;
  second_byte_range(lead, lo, hi);
  size_t k = 1;
  for (; k < need && i + k < s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    const bool ok = (k == 1) ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) break;
  }
  return k;
}
}  // namespace

size_t utf8_valid_len(std::string_view s, size_t i) {
  size_t need = 0;
  const size_t got = valid_prefix(s, i, need);
  return (need != 0 && got == need) ? need : 0;
}

size_t utf8_invalid_len(std::string_view s, size_t i) {
  size_t need = 0;
  const size_t got = valid_prefix(s, i, need);
  return got == 0 ? 1 : got;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_valid_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_valid_len(s, i);
    if (n != 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out.append(kReplacement);
      i += utf8_invalid_len(s, i);
    }
  }
  return out;
}

bool nfc_may_change(std::string_view s) {
  // note: code points below U+0300 are NFC-stable and compose with nothing unless a combining
  // mark (>= U+0300) follows, so text without such code points is already NFC.
  for (unsigned char c : s) {
    if (c >= 0xCC) return true;  // lead bytes of U+0300 and above
  }
  return false;
}

std::string nfc(std::string_view s) {
  if (!nfc_may_change(s)) return std::string(s);
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                              static_cast<utf8proc_ssize_t>(s.size()),
                              &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0)
    throw std::runtime_error(std::string("NFC normalization failed: ") + utf8proc_errmsg(n));
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

const std::array<uint32_t, 256>& byte_to_codepoint() {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return kTable;
}

int codepoint_to_byte(uint32_t cp) {
  static const std::array<int, 324> kInverse = [] {
    std::array<int, 324> inv{};
    inv.fill(-1);
    const auto& fwd = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) inv[fwd[b]] = b;
    return inv;
  }();
  return cp < kInverse.size() ? kInverse[cp] : -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string bytes_to_unicode_string(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  const auto& table = byte_to_codepoint();
  for (unsigned char b : bytes) append_utf8(out, table[b]);
  return out;
}

std::string unicode_string_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8_valid_len(text, i);
    if (n == 0) {  // not expected for vocab strings; keep the byte as is
      out.push_back(text[i++]);
      continue;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(text.data() + i);
    uint32_t cp = 0;
    if (n == 1)
      cp = p[0];
    else if (n == 2)
      cp = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    else if (n == 3)
      cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    else
      cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    const int b = codepoint_to_byte(cp);
    if (b >= 0)
      out.push_back(static_cast<char>(b));
    else
      out.append(text.data() + i, n);
    i += n;
  }
  return out;
}

}  // namespace eztinker::tokenizer::detail
