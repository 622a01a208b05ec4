#include "unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uset.h>
#include <unicode/ustring.h>
#include <unicode/uversion.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <mutex>

#include "l2a/engine/error.h"

namespace l2a::unicode {

namespace {

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Length of the well-formed sequence at text[pos], or 0 when it is ill-formed; then
// `maximal_subpart` is the number of bytes to replace by one U+FFFD (Unicode's "maximal subpart"
// practice, which is also what Rust's from_utf8_lossy does).
std::size_t sequence_length(std::string_view text, std::size_t pos, std::size_t& maximal_subpart) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    maximal_subpart = 1;
    if (lead < 0x80) {
        return 1;
    }
    std::size_t length = 0;
    unsigned char second_low = 0x80;
    unsigned char second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) {
            second_low = 0xA0;  // overlong below
        } else if (lead == 0xED) {
            second_high = 0x9F;  // surrogates above
        }
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) {
            second_low = 0x90;  // overlong below
        } else if (lead == 0xF4) {
            second_high = 0x8F;  // beyond U+10FFFF above
        }
    } else {
        return 0;
    }
    for (std::size_t k = 1; k < length; ++k) {
        if (pos + k >= text.size()) {
            return 0;
        }
        const auto byte = static_cast<unsigned char>(text[pos + k]);
        const bool fits =
            k == 1 ? (byte >= second_low && byte <= second_high) : is_continuation(byte);
        if (!fits) {
            return 0;
        }
        maximal_subpart = k + 1;
    }
    return length;
}

const UNormalizer2* nfc_normalizer() {
    static const UNormalizer2* const instance = [] {
        UErrorCode status = U_ZERO_ERROR;
        const UNormalizer2* normalizer = unorm2_getNFCInstance(&status);
        return U_SUCCESS(status) ? normalizer : nullptr;
    }();
    if (instance == nullptr) {
        throw Error("ICU: the NFC normalization data cannot be loaded");
    }
    return instance;
}

std::u16string to_utf16(std::string_view text) {
    std::u16string out(text.size() + 1, u'\0');
    UErrorCode status = U_ZERO_ERROR;
    int32_t length = 0;
    u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &length,
                  text.data(), static_cast<int32_t>(text.size()), &status);
    if (U_FAILURE(status)) {
        throw Error(std::string("ICU: cannot convert text to UTF-16: ") + u_errorName(status));
    }
    out.resize(static_cast<std::size_t>(length));
    return out;
}

std::string to_utf8(std::u16string_view text) {
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        char32_t cp = text[pos++];
        if (cp >= 0xD800 && cp <= 0xDBFF && pos < text.size() && text[pos] >= 0xDC00 &&
            text[pos] <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (text[pos++] - 0xDC00);
        }
        append_utf8(out, cp);
    }
    return out;
}

// One character in the middle of normalization. `weight` counts the original characters it
// stands for: 1 for the first character of a decomposition, 0 for the ones a decomposition
// added, the sum of both when two are composed.
struct TrackedChar {
    char32_t cp;
    std::uint8_t combining_class;
    std::uint32_t weight;
};

void emit(char32_t cp, ByteSpan span, AlignedText& out) {
    const std::size_t before = out.text.size();
    append_utf8(out.text, cp);
    out.origin.insert(out.origin.end(), out.text.size() - before, span);
}

// Normalizes cps[first, last) (one normalization segment: nothing outside it interacts with
// it) by canonical decomposition, reordering and composition, keeping track of how many
// original characters each result stands for.
void normalize_segment(const std::vector<char32_t>& cps, const std::vector<ByteSpan>& spans,
                       std::size_t first, std::size_t last, std::uint32_t base, AlignedText& out) {
    const UNormalizer2* normalizer = nfc_normalizer();
    std::vector<TrackedChar> chars;
    for (std::size_t k = first; k < last; ++k) {
        std::array<UChar, 64> buffer{};
        UErrorCode status = U_ZERO_ERROR;
        const int32_t length =
            unorm2_getDecomposition(normalizer, static_cast<UChar32>(cps[k]), buffer.data(),
                                    static_cast<int32_t>(buffer.size()), &status);
        if (U_FAILURE(status) || length < 0) {
            chars.push_back({cps[k], u_getCombiningClass(static_cast<UChar32>(cps[k])), 1});
            continue;
        }
        const std::string decomposed = to_utf8(std::u16string_view(
            reinterpret_cast<const char16_t*>(buffer.data()), static_cast<std::size_t>(length)));
        std::size_t pos = 0;
        std::uint32_t weight = 1;
        while (pos < decomposed.size()) {
            const char32_t cp = next_code_point(decomposed, pos);
            chars.push_back({cp, u_getCombiningClass(static_cast<UChar32>(cp)), weight});
            weight = 0;
        }
    }

    // Canonical ordering: each run of non-starters sorted by combining class, stably.
    for (std::size_t a = 0; a < chars.size();) {
        if (chars[a].combining_class == 0) {
            ++a;
            continue;
        }
        std::size_t b = a;
        while (b < chars.size() && chars[b].combining_class != 0) {
            ++b;
        }
        std::stable_sort(chars.begin() + static_cast<std::ptrdiff_t>(a),
                         chars.begin() + static_cast<std::ptrdiff_t>(b),
                         [](const TrackedChar& x, const TrackedChar& y) {
                             return x.combining_class < y.combining_class;
                         });
        a = b;
    }

    // Canonical composition (UAX #15): a character joins the last starter unless something
    // between them blocks it.
    std::vector<TrackedChar> composed;
    std::ptrdiff_t starter = -1;
    std::uint8_t last_class = 0;
    for (const TrackedChar& c : chars) {
        if (starter >= 0) {
            const bool adjacent = composed.size() == static_cast<std::size_t>(starter) + 1;
            const bool blocked = !adjacent && (last_class == 0 || last_class >= c.combining_class);
            if (!blocked) {
                const UChar32 pair = unorm2_composePair(
                    normalizer,
                    static_cast<UChar32>(composed[static_cast<std::size_t>(starter)].cp),
                    static_cast<UChar32>(c.cp));
                if (pair >= 0) {
                    TrackedChar& target = composed[static_cast<std::size_t>(starter)];
                    target.cp = static_cast<char32_t>(pair);
                    target.weight += c.weight;
                    continue;
                }
            }
        }
        if (c.combining_class == 0) {
            starter = static_cast<std::ptrdiff_t>(composed.size());
        }
        last_class = c.combining_class;
        composed.push_back(c);
    }

    // ICU's own result is the reference for the text; the tracking only adds the alignment.
    std::string segment;
    for (std::size_t k = first; k < last; ++k) {
        append_utf8(segment, cps[k]);
    }
    std::string tracked;
    for (const TrackedChar& c : composed) {
        append_utf8(tracked, c.cp);
    }
    const std::string reference = nfc(segment);
    if (tracked != reference) {
        // Not expected to happen; stay correct in text and map the segment as a whole.
        const ByteSpan whole{spans[first].first, spans[last - 1].second};
        std::size_t pos = 0;
        while (pos < reference.size()) {
            emit(next_code_point(reference, pos), whole, out);
        }
        return;
    }

    // HuggingFace's positional rule: a character standing for n >= 1 originals takes the span
    // of the next unconsumed original and consumes n of them; an added one (n = 0) takes the
    // span of the last consumed original.
    std::size_t next = first;
    for (const TrackedChar& c : composed) {
        ByteSpan span{base, base};
        if (c.weight > 0) {
            span = spans[next];
            next += c.weight;
        } else if (next > 0) {
            span = spans[next - 1];
        }
        emit(c.cp, span, out);
    }
}

bool has_boundary_before(char32_t cp) {
    return cp < 0x80 || unorm2_hasBoundaryBefore(nfc_normalizer(), static_cast<UChar32>(cp));
}

bool is_nfc_quick_check_yes(char32_t cp) {
    return cp < 0x80 ||
           u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_NFC_QUICK_CHECK) == UNORM_YES;
}

std::array<unsigned, 4> parse_version(const char* text) {
    std::array<unsigned, 4> version{};
    std::sscanf(text, "%u.%u.%u.%u", &version[0], &version[1], &version[2], &version[3]);
    return version;
}

struct CodeRange {
    char32_t first;
    char32_t last;
};

// Letters and numbers assigned in Unicode 15.1 and 16.0 (CJK extension I, Garay, Sunuwar, Kirat
// Rai, Egyptian hieroglyphs extension A, ...). HuggingFace's Oniguruma knows them; ICU before 76
// does not, so they are listed here for as long as the ICU in use is older.
constexpr std::array<CodeRange, 22> letters_after_unicode_15{{
    {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CD},   {0xA7DA, 0xA7DC},   {0x105C0, 0x105F3},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0}, {0x13460, 0x143FA},
    {0x16100, 0x1611D}, {0x16D40, 0x16D6C}, {0x18CFF, 0x18CFF}, {0x1E5D0, 0x1E5ED},
    {0x1E5F0, 0x1E5F0}, {0x2EBF0, 0x2EE5D},
}};
constexpr std::array<CodeRange, 7> numbers_after_unicode_15{{
    {0x10D40, 0x10D49},
    {0x116D0, 0x116E3},
    {0x11BF0, 0x11BF9},
    {0x16130, 0x16139},
    {0x16D70, 0x16D79},
    {0x1CCF0, 0x1CCF9},
    {0x1E5F1, 0x1E5FA},
}};

void append_range(std::string& out, char32_t from, char32_t to) {
    std::array<char, 40> buffer{};
    if (from == to) {
        std::snprintf(buffer.data(), buffer.size(), "\\x{%X}", static_cast<unsigned>(from));
    } else {
        std::snprintf(buffer.data(), buffer.size(), "\\x{%X}-\\x{%X}", static_cast<unsigned>(from),
                      static_cast<unsigned>(to));
    }
    out += buffer.data();
}

std::string build_missing_category_chars(std::string_view category) {
    const std::string name(category);
    const int32_t mask = u_getPropertyValueEnum(UCHAR_GENERAL_CATEGORY_MASK, name.c_str());
    if (mask == UCHAR_INVALID_CODE) {
        return {};
    }
    std::array<char, 64> pcre2_text{};
    if (pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, pcre2_text.data()) < 0) {
        return {};
    }
    const std::array<unsigned, 4> pcre2_version = parse_version(pcre2_text.data());
    UVersionInfo icu_raw{};
    u_getUnicodeVersion(icu_raw);
    const std::array<unsigned, 4> icu_version{icu_raw[0], icu_raw[1], icu_raw[2], icu_raw[3]};
    std::string ranges;

    if (icu_version > pcre2_version) {
        const auto newer_than_pcre2 = [&](UChar32 cp) {
            UVersionInfo age{};
            u_charAge(cp, age);
            return std::array<unsigned, 4>{age[0], age[1], age[2], age[3]} > pcre2_version;
        };
        UErrorCode status = U_ZERO_ERROR;
        USet* set = uset_openEmpty();
        uset_applyIntPropertyValue(set, UCHAR_GENERAL_CATEGORY_MASK, mask, &status);
        const int32_t count = U_SUCCESS(status) ? uset_getItemCount(set) : 0;
        for (int32_t item = 0; item < count; ++item) {
            UChar32 start = 0;
            UChar32 end = 0;
            UErrorCode item_status = U_ZERO_ERROR;
            if (uset_getItem(set, item, &start, &end, nullptr, 0, &item_status) != 0) {
                continue;  // a string item; general categories have none
            }
            UChar32 run_start = -1;
            for (UChar32 cp = start; cp <= end; ++cp) {
                if (newer_than_pcre2(cp)) {
                    if (run_start < 0) {
                        run_start = cp;
                    }
                } else if (run_start >= 0) {
                    append_range(ranges, static_cast<char32_t>(run_start),
                                 static_cast<char32_t>(cp - 1));
                    run_start = -1;
                }
            }
            if (run_start >= 0) {
                append_range(ranges, static_cast<char32_t>(run_start), static_cast<char32_t>(end));
            }
        }
        uset_close(set);
    }

    const bool letters = category == "L" || category == "Letter";
    const bool numbers = category == "N" || category == "Number";
    if (letters || numbers) {
        for (const CodeRange& range :
             letters ? std::vector<CodeRange>(letters_after_unicode_15.begin(),
                                              letters_after_unicode_15.end())
                     : std::vector<CodeRange>(numbers_after_unicode_15.begin(),
                                              numbers_after_unicode_15.end())) {
            // Only what ICU does not know yet; duplicates in a class would be harmless anyway.
            if (u_charType(static_cast<UChar32>(range.first)) == U_UNASSIGNED) {
                append_range(ranges, range.first, range.last);
            }
        }
    }
    return ranges;
}

}  // namespace

std::size_t find_invalid_utf8(std::string_view text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        if (static_cast<unsigned char>(text[pos]) < 0x80) {
            ++pos;
            continue;
        }
        std::size_t subpart = 0;
        const std::size_t length = sequence_length(text, pos, subpart);
        if (length == 0) {
            return pos;
        }
        pos += length;
    }
    return std::string_view::npos;
}

char32_t next_code_point(std::string_view text, std::size_t& pos) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead < 0x80) {
        ++pos;
        return lead;
    }
    const std::size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    char32_t cp = lead & (0x7F >> length);
    for (std::size_t k = 1; k < length && pos + k < text.size(); ++k) {
        cp = (cp << 6) | (static_cast<unsigned char>(text[pos + k]) & 0x3F);
    }
    pos = std::min(pos + length, text.size());
    return cp;
}

char32_t previous_code_point(std::string_view text, std::size_t& end) {
    std::size_t start = end - 1;
    while (start > 0 && is_continuation(static_cast<unsigned char>(text[start]))) {
        --start;
    }
    std::size_t pos = start;
    const char32_t cp = next_code_point(text, pos);
    end = start;
    return cp;
}

void append_utf8(std::string& out, char32_t cp) {
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

void append_identity(std::string_view text, std::uint32_t base, AlignedText& out) {
    out.text.append(text);
    out.origin.reserve(out.origin.size() + text.size());
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t start = pos;
        next_code_point(text, pos);
        const ByteSpan span{base + static_cast<std::uint32_t>(start),
                            base + static_cast<std::uint32_t>(pos)};
        out.origin.insert(out.origin.end(), pos - start, span);
    }
}

void append_nfc(std::string_view text, std::uint32_t base, AlignedText& out) {
    if (std::all_of(text.begin(), text.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
        append_identity(text, base, out);
        return;
    }
    std::vector<char32_t> cps;
    std::vector<ByteSpan> spans;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t start = pos;
        cps.push_back(next_code_point(text, pos));
        spans.emplace_back(base + static_cast<std::uint32_t>(start),
                           base + static_cast<std::uint32_t>(pos));
    }
    out.text.reserve(out.text.size() + text.size());
    out.origin.reserve(out.origin.size() + text.size());
    std::size_t first = 0;
    while (first < cps.size()) {
        std::size_t last = first + 1;
        while (last < cps.size() && !has_boundary_before(cps[last])) {
            ++last;
        }
        if (last == first + 1 && is_nfc_quick_check_yes(cps[first])) {
            emit(cps[first], spans[first], out);
        } else {
            normalize_segment(cps, spans, first, last, base, out);
        }
        first = last;
    }
}

std::string nfc(std::string_view text) {
    const std::u16string source = to_utf16(text);
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2* normalizer = nfc_normalizer();
    std::u16string result(source.size() * 3 + 8, u'\0');
    const int32_t length = unorm2_normalize(
        normalizer, reinterpret_cast<const UChar*>(source.data()),
        static_cast<int32_t>(source.size()), reinterpret_cast<UChar*>(result.data()),
        static_cast<int32_t>(result.size()), &status);
    if (U_FAILURE(status)) {
        throw Error(std::string("ICU: NFC normalization failed: ") + u_errorName(status));
    }
    result.resize(static_cast<std::size_t>(length));
    return to_utf8(result);
}

bool is_white_space(char32_t cp) {
    return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE) != 0;
}

bool is_word_char(char32_t cp) {
    const auto c = static_cast<UChar32>(cp);
    if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) {
        return true;
    }
    const auto category_mask = static_cast<uint32_t>(U_GET_GC_MASK(c));
    return (category_mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

std::string to_valid_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        std::size_t subpart = 0;
        const std::size_t length = sequence_length(bytes, pos, subpart);
        if (length == 0) {
            out.append("\xEF\xBF\xBD");
            pos += subpart;
        } else {
            out.append(bytes.substr(pos, length));
            pos += length;
        }
    }
    return out;
}

const std::string& pcre2_missing_category_chars(std::string_view category) {
    static std::mutex mutex;
    static std::map<std::string, std::string, std::less<>> cache;
    const std::lock_guard lock(mutex);
    auto found = cache.find(category);
    if (found == cache.end()) {
        found = cache.emplace(std::string(category), build_missing_category_chars(category)).first;
    }
    return found->second;
}

}  // namespace l2a::unicode
