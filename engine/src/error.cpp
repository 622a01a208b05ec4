#include "l2a/engine/error.h"

#include <algorithm>
#include <string>

namespace l2a {

void fail(std::string_view path, std::string_view message) {
    if (path.empty()) {
        throw Error(std::string(message));
    }
    std::string text;
    text.reserve(path.size() + 2 + message.size());
    text.append(path).append(": ").append(message);
    throw Error(text);
}

namespace {

constexpr std::string_view kJsonTag = "[json.exception.";

// One printable line of at most `max_bytes`: control bytes become '?', and the cut never splits
// a UTF-8 sequence.
std::string one_clipped_line(std::string_view text, std::size_t max_bytes) {
    std::string out;
    out.reserve(std::min(text.size(), max_bytes + 3));
    std::size_t i = 0;
    while (i < text.size()) {
        const auto byte = static_cast<unsigned char>(text[i]);
        std::size_t length = 1;
        if (byte >= 0xC2 && byte <= 0xF4) {
            length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2;
            bool whole = i + length <= text.size();
            for (std::size_t k = 1; whole && k < length; ++k) {
                whole = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
            }
            if (!whole) length = 0;
        } else if (byte < 0x20 || byte >= 0x7F) {
            length = 0;
        }
        const std::size_t step = length == 0 ? 1 : length;
        if (out.size() + step > max_bytes) {
            out += "...";
            break;
        }
        if (length == 0) {
            out.push_back('?');
        } else {
            out.append(text.substr(i, length));
        }
        i += step;
    }
    return out;
}

}  // namespace

std::string describe_json_error(std::string_view what) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> the kind of
    // error, then the text after the tag.
    std::string_view kind;
    if (what.starts_with(kJsonTag)) {
        const std::size_t close = what.find("] ");
        if (close != std::string_view::npos) {
            kind = what.substr(kJsonTag.size(), close - kJsonTag.size());
            what.remove_prefix(close + 2);
        }
    }
    constexpr std::size_t kMaxBytes = 200;
    constexpr std::string_view kParseAt = "parse error at ";
    constexpr std::string_view kParse = "parse error: ";
    constexpr std::string_view kParse2 = "parse error - ";
    if (what.starts_with(kParseAt)) {
        return "malformed JSON at " + one_clipped_line(what.substr(kParseAt.size()), kMaxBytes);
    }
    for (const std::string_view prefix : {kParse, kParse2}) {
        if (what.starts_with(prefix)) {
            return "malformed JSON: " + one_clipped_line(what.substr(prefix.size()), kMaxBytes);
        }
    }
    if (kind.starts_with("parse_error")) {
        return "malformed JSON: " + one_clipped_line(what, kMaxBytes);
    }
    return "unexpected JSON content: " + one_clipped_line(what, kMaxBytes);
}

std::string without_library_tags(std::string_view what) {
    if (what.starts_with(kJsonTag)) return describe_json_error(what);
    // "path: [json.exception...] ..." from a caller that added only the file name.
    const std::size_t tag = what.find(kJsonTag);
    if (tag != std::string_view::npos) {
        return std::string(what.substr(0, tag)) + describe_json_error(what.substr(tag));
    }
    return std::string(what);
}

}  // namespace l2a
