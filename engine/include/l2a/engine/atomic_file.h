// Files the user keeps are written to a temporary file beside the target and renamed over it,
// so an interrupted write never leaves a half-written file under the final name.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string_view>

namespace l2a {

// Calls write(FILE*) on a temporary file in the target's folder, flushes, fsyncs and renames it
// to `path`. On any failure the temporary file is removed and l2a::Error names `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::FILE*)>& write);

void write_text_atomically(const std::filesystem::path& path, std::string_view text);

// Reads a whole file; l2a::Error names the file when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace l2a
