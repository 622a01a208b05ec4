#include "l2a/engine/document.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

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

namespace {

std::string size_text(std::uint64_t bytes) {
    if (bytes >= (1ull << 20)) return std::to_string(bytes >> 20) + " MiB";
    return std::to_string(bytes) + " bytes";
}

// The first `limit` bytes of the file (all of it when shorter); `more` says whether it goes on.
std::string read_prefix(const std::filesystem::path& path, std::uint64_t max_bytes, bool& more,
                        std::uint64_t& file_bytes) {
    const std::string origin = path.string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        fail(origin, std::string("cannot open: ") + std::strerror(error));
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        const int error = errno;
        fail(origin, std::string("cannot read: ") + std::strerror(error));
    }
    if (S_ISDIR(info.st_mode)) fail(origin, "is a folder, not a file");
    const bool regular = S_ISREG(info.st_mode);
    std::uint64_t limit = max_bytes;
    if (regular) {
        file_bytes = static_cast<std::uint64_t>(info.st_size);
        if (max_bytes == 0 && file_bytes > kMaxDocumentBytes) {
            fail(origin, "the document is " + size_text(file_bytes) +
                             "; at most 4 GiB can be run (give --max-tokens to run its beginning)");
        }
        if (limit == 0) limit = kMaxDocumentBytes;
    } else if (limit == 0 || limit > kMaxStreamedDocumentBytes) {
        limit = kMaxStreamedDocumentBytes;
    }
    std::string text;
    if (regular) text.reserve(static_cast<std::size_t>(std::min(file_bytes, limit)));
    // One byte past the limit says whether there is more.
    std::uint64_t want = limit + 1;
    char buffer[1 << 16];
    while (want > 0) {
        const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(want, sizeof buffer));
        const ssize_t got = ::read(fd, buffer, chunk);
        if (got < 0) {
            if (errno == EINTR) continue;
            const int error = errno;
            fail(origin, std::string("cannot read: ") + std::strerror(error));
        }
        if (got == 0) break;
        text.append(buffer, static_cast<std::size_t>(got));
        want -= static_cast<std::uint64_t>(got);
    }
    more = text.size() > limit;
    if (more) text.resize(static_cast<std::size_t>(limit));
    if (!regular) {
        if (more && (max_bytes == 0 || max_bytes > kMaxStreamedDocumentBytes)) {
            fail(origin, "is not a regular file (a pipe or device) and gives more than " +
                             size_text(kMaxStreamedDocumentBytes) +
                             "; save the document to a file, or give --max-tokens");
        }
        file_bytes = text.size();
    }
    return text;
}

// The length of the longest prefix of `text` that does not end inside a UTF-8 sequence.
std::size_t whole_characters(std::string_view text) {
    std::size_t end = text.size();
    // Step back over at most three continuation bytes to the lead byte of the last sequence.
    std::size_t i = end;
    int continuation = 0;
    while (i > 0 && continuation < 3 && (static_cast<std::uint8_t>(text[i - 1]) & 0xC0) == 0x80) {
        --i;
        ++continuation;
    }
    if (i == 0) return end;
    const auto lead = static_cast<std::uint8_t>(text[i - 1]);
    const int needed = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (needed > continuation) return i - 1;  // an incomplete sequence: leave it out
    return end;
}

}  // namespace

Document load_document(const std::filesystem::path& path, std::uint64_t max_bytes) {
    bool more = false;
    std::uint64_t file_bytes = 0;
    std::string bytes = read_prefix(path, max_bytes, more, file_bytes);
    if (more) bytes.resize(whole_characters(bytes));
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
    document.complete = !more;
    document.file_bytes = file_bytes;
    document.skipped_bytes = bytes.size() - text.size();
    // Only a part of the file, and offsets in it that no longer match the file's: keep the bytes
    // (moved, byte order mark included) to map a cut back (file_offset).
    if (more && document.replaced_sequences > 0) document.raw = std::move(bytes);
    return document;
}

std::uint64_t file_offset(const Document& document, std::size_t text_offset) {
    if (text_offset == 0 || document.replaced_sequences == 0 || document.raw.empty()) {
        return document.skipped_bytes + text_offset;
    }
    const std::string_view text = document.text;
    std::size_t ascii = 0;
    for (std::size_t i = 0; i < text_offset && i < text.size(); ++i) {
        if (static_cast<unsigned char>(text[i]) < 0x80) ++ascii;
    }
    // The file offset just past the ascii-th ASCII byte of the file's (after the skipped ones).
    std::size_t seen = 0;
    for (std::size_t i = document.skipped_bytes; i < document.raw.size(); ++i) {
        if (static_cast<unsigned char>(document.raw[i]) < 0x80 && ++seen == ascii) {
            // The character at text_offset follows an ASCII one, as it does in the file.
            return i + 1;
        }
    }
    return document.raw.size();
}

}  // namespace l2a
