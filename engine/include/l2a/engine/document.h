// Documents the user loads: plain text or Markdown in UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace l2a {

struct Document {
    std::filesystem::path path;
    std::string text;                    // valid UTF-8
    std::size_t replaced_sequences = 0;  // invalid byte sequences replaced by U+FFFD
    // false: `text` is only the beginning of the file (load_document with max_bytes).
    bool complete = true;
    // The file's size in bytes when it is a regular file; else the bytes read.
    std::uint64_t file_bytes = 0;
    // Bytes of the file before `text` begins (a UTF-8 byte order mark: 3, else 0).
    std::uint64_t skipped_bytes = 0;
    // The file's bytes read (skipped ones included), kept only where replacements make offsets
    // in `text` differ from the file's (see file_offset).
    std::string raw;
};

// Where in the file the character at `text_offset` of `document.text` begins, for an offset of
// 0 or one that follows an ASCII character (line breaks and spaces: where a cut is made). The
// same as skipped_bytes + text_offset unless invalid sequences were replaced (each U+FFFD is
// three bytes in `text`, one to three in the file); ASCII bytes are never part of a replaced
// sequence, so the n-th ASCII byte of `text` is the n-th of the file's.
std::uint64_t file_offset(const Document& document, std::size_t text_offset);

// Documents are limited to what 32-bit token offsets can address.
inline constexpr std::uint64_t kMaxDocumentBytes = 0xFFFFFFFFull;
// Pipes and devices (/dev/zero, a FIFO) have no size to check up front: reading one stops here.
inline constexpr std::uint64_t kMaxStreamedDocumentBytes = 64ull << 20;

// Replaces each maximal invalid subsequence by U+FFFD (the WHATWG / Unicode "substitution of
// maximal subparts" practice) and returns how many were replaced.
std::size_t sanitize_utf8(std::string_view in, std::string& out);

// Reads and sanitizes. Throws l2a::Error naming the file when it cannot be read, is empty, is
// larger than kMaxDocumentBytes, or is a pipe or device that gives more than
// kMaxStreamedDocumentBytes. With `max_bytes` > 0 only the first max_bytes bytes are read (cut
// back to a whole UTF-8 character), and `complete` says whether that was all of it.
Document load_document(const std::filesystem::path& path, std::uint64_t max_bytes = 0);

}  // namespace l2a
