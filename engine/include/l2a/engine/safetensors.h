// safetensors: reading (memory-mapped, validated before anything is trusted) and writing
// (streamed, atomic). Format: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace l2a {

enum class DType : std::uint8_t { F32, F16, BF16, I32, I64, U8, BOOL };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "F32", "BF16", ...
std::optional<DType> parse_dtype(std::string_view name);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape;
    std::uint64_t begin = 0;  // byte offsets relative to the start of the data section
    std::uint64_t end = 0;
    std::int64_t numel() const;
};

// A read-only view of one tensor's bytes inside a mapped file.
struct TensorView {
    const TensorInfo* info = nullptr;
    const std::byte* data = nullptr;  // info->end - info->begin bytes
    std::size_t size_bytes() const { return info ? info->end - info->begin : 0; }
};

class SafetensorsFile {
public:
    // Maps and validates `path`: header length inside the file, JSON well formed, known
    // dtypes, non-negative shapes whose byte size equals the offset range, offsets inside the
    // data section, no two tensors overlapping. Throws l2a::Error naming the file.
    static SafetensorsFile open(const std::filesystem::path& path);
    // Same validation on bytes already in memory (used by the fuzzer); `origin` names them.
    static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::string origin);

    SafetensorsFile(SafetensorsFile&&) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
    ~SafetensorsFile();

    const std::filesystem::path& path() const;
    const std::vector<TensorInfo>& tensors() const;  // in file order of data offsets
    const TensorInfo* find(std::string_view name) const;
    TensorView view(const TensorInfo& info) const;
    // Throws l2a::Error naming file and tensor when missing.
    TensorView view(std::string_view name) const;
    const std::map<std::string, std::string>& metadata() const;

private:
    struct Impl;
    explicit SafetensorsFile(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Streams tensors into a safetensors file. All tensors are declared first (so the header can be
// written), then their bytes are supplied in declaration order, possibly in several pieces.
// finish() checks that every tensor received exactly its byte size, then renames the
// temporary file over `path`. Destroying an unfinished writer removes the temporary file.
class SafetensorsWriter {
public:
    explicit SafetensorsWriter(std::filesystem::path path);
    // Writes the file's bytes to `out` (appended) instead; `origin` names it in errors.
    SafetensorsWriter(std::vector<std::byte>& out, std::string origin);
    SafetensorsWriter(const SafetensorsWriter&) = delete;
    SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
    ~SafetensorsWriter();

    void set_metadata(std::string key, std::string value);
    void declare(std::string name, DType dtype, std::vector<std::int64_t> shape);
    // Appends bytes to the current tensor (the first declared tensor not yet complete).
    void write(const void* data, std::size_t size);
    void finish();

    // Convenience for small tensors: declare + write in one go is not possible (header first),
    // so this collects whole tensors in memory and writes them on finish().
    void add(std::string name, DType dtype, std::vector<std::int64_t> shape,
             std::span<const std::byte> bytes);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace l2a
