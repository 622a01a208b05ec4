// Documents the user loads: plain text or Markdown in UTF-8.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace l2a {

struct Document {
    std::filesystem::path path;
    std::string text;                    // valid UTF-8
    std::size_t replaced_sequences = 0;  // invalid byte sequences replaced by U+FFFD
};

// Replaces each maximal invalid subsequence by U+FFFD (the WHATWG / Unicode "substitution of
// maximal subparts" practice) and returns how many were replaced.
std::size_t sanitize_utf8(std::string_view in, std::string& out);

// Reads and sanitizes. Throws l2a::Error naming the file when it cannot be read or is empty.
Document load_document(const std::filesystem::path& path);

}  // namespace l2a
