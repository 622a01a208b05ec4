// Unicode services for the tokenizer, on ICU: UTF-8 walking, NFC with a per-byte map back to the
// original text, the character classes HuggingFace tokenizers tests with, and the difference
// between ICU's and PCRE2's Unicode tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace l2a::unicode {

// Byte range [first, second) in an original text.
using ByteSpan = std::pair<std::uint32_t, std::uint32_t>;

// Text derived from an original text. Each byte of `text` knows the byte range of the original
// character it came from, which is how HuggingFace's NormalizedString aligns, so token offsets
// computed from it agree with theirs.
struct AlignedText {
    std::string text;
    std::vector<ByteSpan> origin;  // one per byte of `text`

    void clear() {
        text.clear();
        origin.clear();
    }
};

// Offset of the first byte that is not part of well-formed UTF-8, or npos when there is none.
std::size_t find_invalid_utf8(std::string_view text);

// The code point that starts at `pos` in valid UTF-8; moves `pos` past it.
char32_t next_code_point(std::string_view text, std::size_t& pos);
// The code point that ends at `end` in valid UTF-8; moves `end` to its first byte.
char32_t previous_code_point(std::string_view text, std::size_t& end);

void append_utf8(std::string& out, char32_t cp);

// Appends `text` unchanged; `base` is its offset in the original.
void append_identity(std::string_view text, std::uint32_t base, AlignedText& out);

// Appends NFC(text); `base` is its offset in the original. Each output character maps to one
// original character: composed characters to the first character they were composed from,
// characters that a decomposition added to the character before them (HuggingFace's rule,
// which leaves the absorbed combining marks outside every token).
void append_nfc(std::string_view text, std::uint32_t base, AlignedText& out);

// NFC of valid UTF-8 through ICU's normalizer directly (reference for append_nfc).
std::string nfc(std::string_view text);

// Unicode White_Space (Rust's char::is_whitespace and regex \s).
bool is_white_space(char32_t cp);
// Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_char(char32_t cp);

// Replaces each maximal invalid subsequence by U+FFFD (the same practice as
// String::from_utf8_lossy).
std::string to_valid_utf8(std::string_view bytes);

// Characters of general category `category` ("L", "N", "Lu", ...) that HuggingFace's regex
// engine (Oniguruma, Unicode 16) counts in it and this PCRE2 build does not, because PCRE2's
// tables come from an older Unicode version: those ICU knows to be newer than PCRE2's tables,
// and for L and N also the 15.1/16.0 additions that ICU may not know yet. Written as the inside
// of a character class ("\x{31350}-\x{323AF}..."); empty when nothing is missing.
const std::string& pcre2_missing_category_chars(std::string_view category);

}  // namespace l2a::unicode
