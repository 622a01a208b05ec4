#include "l2a/engine/document.h"

#include <cstdint>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"

namespace l2a {

namespace {

constexpr std::string_view replacement_character = "\xEF\xBF\xBD";
constexpr std::string_view byte_order_mark = "\xEF\xBB\xBF";

// Unicode Table 3-7 (well-formed UTF-8): a lead byte fixes the sequence length and the range of
// the second byte; the rest are always 80..BF. Narrow second-byte ranges are what exclude
// overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
struct LeadByte {
    int continuation_bytes = 0;  // 0 for a byte that can never start a sequence
    std::uint8_t second_min = 0x80;
    std::uint8_t second_max = 0xBF;
};

LeadByte classify_lead(std::uint8_t byte) {
    if (byte >= 0xC2 && byte <= 0xDF) return {1, 0x80, 0xBF};
    if (byte == 0xE0) return {2, 0xA0, 0xBF};
    if (byte == 0xED) return {2, 0x80, 0x9F};
    if (byte >= 0xE1 && byte <= 0xEF) return {2, 0x80, 0xBF};
    if (byte == 0xF0) return {3, 0x90, 0xBF};
    if (byte >= 0xF1 && byte <= 0xF3) return {3, 0x80, 0xBF};
    if (byte == 0xF4) return {3, 0x80, 0x8F};
    return {};
}

}  // namespace

std::size_t sanitize_utf8(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    std::size_t replaced = 0;
    std::size_t i = 0;
    while (i < in.size()) {
        const auto lead = static_cast<std::uint8_t>(in[i]);
        if (lead < 0x80) {
            out.push_back(in[i]);
            ++i;
            continue;
        }
        const LeadByte rule = classify_lead(lead);
        // Consume the longest prefix that could still begin a well-formed sequence: that prefix
        // (or a lone bad byte) is one maximal subpart and becomes one U+FFFD; the byte that broke
        // it is looked at again as the start of what follows.
        std::size_t end = i + 1;
        for (int k = 0; k < rule.continuation_bytes && end < in.size(); ++k) {
            const auto byte = static_cast<std::uint8_t>(in[end]);
            const std::uint8_t min = k == 0 ? rule.second_min : std::uint8_t{0x80};
            const std::uint8_t max = k == 0 ? rule.second_max : std::uint8_t{0xBF};
            if (byte < min || byte > max) {
                break;
            }
            ++end;
        }
        if (rule.continuation_bytes > 0 &&
            end - i == static_cast<std::size_t>(rule.continuation_bytes) + 1) {
            out.append(in.substr(i, end - i));
        } else {
            out.append(replacement_character);
            ++replaced;
        }
        i = end;
    }
    return replaced;
}

Document load_document(const std::filesystem::path& path) {
    std::string bytes = read_text_file(path);
    std::string_view text = bytes;
    if (text.starts_with(byte_order_mark)) {
        text.remove_prefix(byte_order_mark.size());
    }
    if (text.empty()) {
        fail(path.string(), "the document is empty");
    }
    Document document;
    document.path = path;
    document.replaced_sequences = sanitize_utf8(text, document.text);
    return document;
}

}  // namespace l2a
