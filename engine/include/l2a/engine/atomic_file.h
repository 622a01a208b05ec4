// Files the user keeps are written to a temporary file beside the target and renamed over it,
// so an interrupted write never leaves a half-written file under the final name.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace l2a {

// A temporary file beside `path` for writers that produce a file over several calls (the
// safetensors writer streams tensor by tensor). commit() flushes, fsyncs and renames it over
// `path`; destroying an uncommitted one removes the temporary file. Failures throw l2a::Error
// naming `path`.
class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path path);
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile();

    std::FILE* stream() const { return stream_; }
    const std::filesystem::path& path() const { return path_; }
    const std::filesystem::path& temp_path() const { return temp_path_; }

    void write(const void* data, std::size_t size);
    void commit();
    // Removes the temporary file now; nothing is written under `path`.
    void discard() noexcept;

private:
    std::filesystem::path path_;
    std::filesystem::path temp_path_;
    std::FILE* stream_ = nullptr;
};

// Calls write(FILE*) on a temporary file in the target's folder, flushes, fsyncs and renames it
// to `path`. On any failure the temporary file is removed and l2a::Error names `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::FILE*)>& write);

void write_text_atomically(const std::filesystem::path& path, std::string_view text);

// Reads a whole file; l2a::Error names the file when it cannot be read, or when it is a pipe or
// device that gives more than 256 MiB.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace l2a
