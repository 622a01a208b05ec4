#include "l2a/engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"

namespace l2a {

namespace {

using nlohmann::json;

// Real checkpoints have headers of a few hundred KB; anything near this limit is hostile or
// corrupt, and parsing it would cost gigabytes of memory.
constexpr std::uint64_t max_header_bytes = 100u * 1000u * 1000u;
// A safetensors header is {name: {field: [numbers]}}: three levels. Deeper input is rejected
// before it is built, so nesting cannot exhaust memory.
constexpr int max_header_depth = 8;

std::string in_quotes(std::string_view name) { return "'" + std::string(name) + "'"; }

std::string shape_text(const std::vector<std::int64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        text += (i == 0 ? "" : ", ") + std::to_string(shape[i]);
    }
    return text + "]";
}

std::string range_text(std::uint64_t begin, std::uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Element count and byte size of a shape, or nullopt when either overflows 63 bits.
struct ShapeSize {
    std::uint64_t numel = 1;
    std::uint64_t bytes = 0;
};

std::optional<ShapeSize> shape_size(const std::vector<std::int64_t>& shape, DType dtype) {
    constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    ShapeSize size;
    for (const std::int64_t dim : shape) {
        if (dim < 0 ||
            __builtin_mul_overflow(size.numel, static_cast<std::uint64_t>(dim), &size.numel) ||
            size.numel > limit) {
            return std::nullopt;
        }
    }
    if (__builtin_mul_overflow(size.numel, dtype_size(dtype), &size.bytes) || size.bytes > limit) {
        return std::nullopt;
    }
    return size;
}

std::uint64_t read_le64(const std::byte* p) {
    std::uint64_t value = 0;
    for (int i = 7; i >= 0; --i) {
        value = (value << 8) | std::to_integer<std::uint64_t>(p[i]);
    }
    return value;
}

void append_le64(std::string& out, std::uint64_t value) {
    for (int i = 0; i < 8; ++i) {
        out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
    }
}

// Parses and validates the header of a file of `size` bytes at `bytes`.
struct ParsedHeader {
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::string> metadata;
    std::uint64_t data_start = 0;
};

std::uint64_t offset_value(const std::string& origin, const std::string& tensor, const json& v) {
    if (v.is_number_unsigned()) {
        return v.get<std::uint64_t>();
    }
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
        return static_cast<std::uint64_t>(v.get<std::int64_t>());
    }
    fail(origin, "tensor " + in_quotes(tensor) +
                     ": data_offsets must hold two non-negative integers, found a " +
                     (v.is_number_integer() ? std::string("negative number") : v.type_name()));
}

TensorInfo parse_entry(const std::string& origin, const std::string& name, const json& entry,
                       std::uint64_t data_size) {
    const std::string where = "tensor " + in_quotes(name);
    if (!entry.is_object()) {
        fail(origin, where + ": expected an object, found " + entry.type_name());
    }
    TensorInfo info;
    info.name = name;

    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
        fail(origin, where + ": missing \"dtype\" string");
    }
    const auto& dtype_name_text = dtype_it->get_ref<const std::string&>();
    const auto dtype = parse_dtype(dtype_name_text);
    if (!dtype) {
        fail(origin, where + ": dtype " + in_quotes(dtype_name_text) +
                         " is not supported (supported: F32, F16, BF16, I32, I64, U8, BOOL)");
    }
    info.dtype = *dtype;

    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) {
        fail(origin, where + ": missing \"shape\" array");
    }
    for (const json& dim : *shape_it) {
        if (dim.is_number_unsigned() &&
            dim.get<std::uint64_t>() <=
                static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            info.shape.push_back(static_cast<std::int64_t>(dim.get<std::uint64_t>()));
        } else if (dim.is_number_integer() && !dim.is_number_unsigned() &&
                   dim.get<std::int64_t>() >= 0) {
            info.shape.push_back(dim.get<std::int64_t>());
        } else {
            fail(origin, where + ": shape must hold non-negative integers, found " +
                             (dim.is_number_integer() ? std::string("a negative or huge number")
                                                      : std::string("a ") + dim.type_name()));
        }
    }

    const auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
        fail(origin, where + ": missing \"data_offsets\" [begin, end]");
    }
    info.begin = offset_value(origin, name, (*offsets_it)[0]);
    info.end = offset_value(origin, name, (*offsets_it)[1]);
    const std::string offsets = "data_offsets " + range_text(info.begin, info.end);
    if (info.begin > info.end) {
        fail(origin, where + ": " + offsets + " begin after they end");
    }
    if (info.end > data_size) {
        fail(origin, where + ": " + offsets + " run past the end of the data section (" +
                         std::to_string(data_size) + " bytes)");
    }
    const auto size = shape_size(info.shape, info.dtype);
    if (!size) {
        fail(origin, where + ": shape " + shape_text(info.shape) + " of " + dtype_name(info.dtype) +
                         " is too large (size overflows)");
    }
    if (info.end - info.begin != size->bytes) {
        fail(origin, where + ": " + offsets + " hold " + std::to_string(info.end - info.begin) +
                         " bytes but " + dtype_name(info.dtype) + " " + shape_text(info.shape) +
                         " needs " + std::to_string(size->bytes));
    }
    return info;
}

ParsedHeader parse_header(const std::string& origin, const std::byte* bytes, std::uint64_t size) {
    if (size < 8) {
        fail(origin, "file is too short (" + std::to_string(size) +
                         " bytes) to be safetensors: it needs at least the 8-byte header length");
    }
    const std::uint64_t header_size = read_le64(bytes);
    if (header_size > max_header_bytes) {
        fail(origin, "header length " + std::to_string(header_size) +
                         " is larger than the 100 MB limit (the file is corrupt or not "
                         "safetensors)");
    }
    if (header_size > size - 8) {
        fail(origin, "header length " + std::to_string(header_size) +
                         " runs past the end of the file (" + std::to_string(size) +
                         " bytes); the file is truncated or not safetensors");
    }
    const auto* header_begin = reinterpret_cast<const char*>(bytes + 8);
    json header;
    try {
        const json::parser_callback_t limit_depth = [&](int depth, json::parse_event_t,
                                                        json&) -> bool {
            if (depth > max_header_depth) {
                fail(origin, "header JSON is nested more than " + std::to_string(max_header_depth) +
                                 " levels deep");
            }
            return true;
        };
        header = json::parse(header_begin, header_begin + header_size, limit_depth);
    } catch (const json::exception& e) {
        fail(origin, "header: " + describe_json_error(e.what()));
    }
    if (!header.is_object()) {
        fail(origin, std::string("header is not a JSON object but ") + header.type_name());
    }

    ParsedHeader parsed;
    parsed.data_start = 8 + header_size;
    const std::uint64_t data_size = size - parsed.data_start;
    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            if (!value.is_object()) {
                fail(origin,
                     std::string("__metadata__ must be an object, found ") + value.type_name());
            }
            for (const auto& [meta_key, meta_value] : value.items()) {
                if (!meta_value.is_string()) {
                    fail(origin, "__metadata__ " + in_quotes(meta_key) +
                                     " must be a string, found " + meta_value.type_name());
                }
                parsed.metadata.emplace(meta_key, meta_value.get<std::string>());
            }
            continue;
        }
        parsed.tensors.push_back(parse_entry(origin, key, value, data_size));
    }

    std::sort(parsed.tensors.begin(), parsed.tensors.end(),
              [](const TensorInfo& a, const TensorInfo& b) {
                  return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
              });
    // Empty tensors hold no bytes and so cannot overlap anything.
    const TensorInfo* furthest = nullptr;
    for (const TensorInfo& info : parsed.tensors) {
        if (info.begin == info.end) {
            continue;
        }
        if (furthest != nullptr && info.begin < furthest->end) {
            fail(origin, "tensors " + in_quotes(furthest->name) + " " +
                             range_text(furthest->begin, furthest->end) + " and " +
                             in_quotes(info.name) + " " + range_text(info.begin, info.end) +
                             " overlap in the data section");
        }
        if (furthest == nullptr || info.end > furthest->end) {
            furthest = &info;
        }
    }
    return parsed;
}

}  // namespace

std::size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::F32:
            return 4;
        case DType::F16:
            return 2;
        case DType::BF16:
            return 2;
        case DType::I32:
            return 4;
        case DType::I64:
            return 8;
        case DType::U8:
            return 1;
        case DType::BOOL:
            return 1;
    }
    fail("", "invalid dtype value " + std::to_string(static_cast<int>(dtype)));
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::F32:
            return "F32";
        case DType::F16:
            return "F16";
        case DType::BF16:
            return "BF16";
        case DType::I32:
            return "I32";
        case DType::I64:
            return "I64";
        case DType::U8:
            return "U8";
        case DType::BOOL:
            return "BOOL";
    }
    fail("", "invalid dtype value " + std::to_string(static_cast<int>(dtype)));
}

std::optional<DType> parse_dtype(std::string_view name) {
    for (const DType dtype :
         {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::BOOL}) {
        if (name == dtype_name(dtype)) {
            return dtype;
        }
    }
    return std::nullopt;
}

std::int64_t TensorInfo::numel() const {
    std::int64_t count = 1;
    for (const std::int64_t dim : shape) {
        if (dim < 0 || __builtin_mul_overflow(count, dim, &count)) {
            fail("", "tensor " + in_quotes(name) + ": shape " + shape_text(shape) +
                         " has no valid element count");
        }
    }
    return count;
}

// ---- SafetensorsFile -------------------------------------------------------------------------

struct SafetensorsFile::Impl {
    std::filesystem::path path;
    std::string origin;
    // Exactly one of the two holds the file: a read-only mapping, or bytes given in memory.
    void* mapping = nullptr;
    std::size_t mapping_size = 0;
    std::vector<std::byte> owned;
    const std::byte* data = nullptr;  // start of the data section
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::size_t, std::less<>> index;
    std::map<std::string, std::string> metadata;

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        if (mapping != nullptr) {
            ::munmap(mapping, mapping_size);
        }
    }

    void load(const std::byte* bytes, std::uint64_t size) {
        ParsedHeader parsed = parse_header(origin, bytes, size);
        data = bytes + parsed.data_start;
        tensors = std::move(parsed.tensors);
        metadata = std::move(parsed.metadata);
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            index.emplace(tensors[i].name, i);
        }
    }
};

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->origin = path.string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        fail(impl->origin, std::string("cannot open: ") + std::strerror(error));
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        const int error = errno;
        ::close(fd);
        fail(impl->origin, std::string("cannot read: ") + std::strerror(error));
    }
    if (!S_ISREG(info.st_mode)) {
        ::close(fd);
        fail(impl->origin, S_ISDIR(info.st_mode) ? "is a folder, not a safetensors file"
                                                 : "is not a regular file");
    }
    const auto size = static_cast<std::uint64_t>(info.st_size);
    if (size < 8) {
        // Also keeps mmap away from empty files, which it refuses.
        ::close(fd);
        parse_header(impl->origin, nullptr, size);
    }
    impl->mapping_size = static_cast<std::size_t>(size);
    void* mapping = ::mmap(nullptr, impl->mapping_size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_error = errno;
    ::close(fd);
    if (mapping == MAP_FAILED) {
        fail(impl->origin, std::string("cannot map into memory: ") + std::strerror(map_error));
    }
    impl->mapping = mapping;
    impl->load(static_cast<const std::byte*>(mapping), size);
    return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<std::byte> bytes, std::string origin) {
    auto impl = std::make_unique<Impl>();
    impl->path = origin;
    impl->origin = std::move(origin);
    impl->owned = std::move(bytes);
    impl->load(impl->owned.data(), impl->owned.size());
    return SafetensorsFile(std::move(impl));
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

const std::filesystem::path& SafetensorsFile::path() const { return impl_->path; }

const std::vector<TensorInfo>& SafetensorsFile::tensors() const { return impl_->tensors; }

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
    const auto it = impl_->index.find(name);
    return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
}

TensorView SafetensorsFile::view(const TensorInfo& info) const {
    // Only offsets this file validated are trusted; a TensorInfo from elsewhere is looked up.
    const TensorInfo* own = &info;
    const std::less<const TensorInfo*> before;
    if (before(own, impl_->tensors.data()) ||
        !before(own, impl_->tensors.data() + impl_->tensors.size())) {
        own = find(info.name);
        if (own == nullptr) {
            fail(impl_->origin, "missing tensor " + in_quotes(info.name));
        }
    }
    return TensorView{own, impl_->data + own->begin};
}

TensorView SafetensorsFile::view(std::string_view name) const {
    const TensorInfo* info = find(name);
    if (info == nullptr) {
        fail(impl_->origin, "missing tensor " + in_quotes(name));
    }
    return TensorView{info, impl_->data + info->begin};
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
    return impl_->metadata;
}

// ---- SafetensorsWriter -----------------------------------------------------------------------

struct SafetensorsWriter::Impl {
    struct Entry {
        TensorInfo info;
        std::vector<std::byte> bytes;  // tensors given whole to add()
    };

    std::filesystem::path path;
    std::string origin;
    std::map<std::string, std::string> metadata;
    std::vector<Entry> streamed;  // declare(): bytes arrive through write()
    std::vector<Entry> added;     // add(): bytes written after the streamed tensors
    std::set<std::string, std::less<>> names;
    std::unique_ptr<AtomicFile> file;          // opened when the header is written
    std::vector<std::byte>* memory = nullptr;  // the in-memory writer's output instead of a file
    bool started = false;                      // the header is written
    std::size_t current = 0;                   // first streamed tensor not yet complete
    std::uint64_t current_written = 0;
    bool finished = false;
    bool failed = false;

    void check_open(const char* call) const {
        if (finished) {
            fail(origin, std::string(call) + " after finish()");
        }
        if (failed) {
            fail(origin, std::string(call) + " after an earlier write failed");
        }
    }

    void check_header_open(const char* call) const {
        check_open(call);
        if (started) {
            fail(origin, std::string(call) + " after tensor data began (the header is written)");
        }
    }

    TensorInfo make_info(std::string name, DType dtype, std::vector<std::int64_t> shape) {
        if (name == "__metadata__") {
            fail(origin, "'__metadata__' is reserved and cannot name a tensor");
        }
        if (names.find(name) != names.end()) {
            fail(origin, "tensor " + in_quotes(name) + " is declared twice");
        }
        TensorInfo info;
        info.name = std::move(name);
        info.dtype = dtype;
        info.shape = std::move(shape);
        const auto size = shape_size(info.shape, dtype);
        if (!size) {
            fail(origin, "tensor " + in_quotes(info.name) + ": shape " + shape_text(info.shape) +
                             " must hold non-negative sizes whose byte size fits in 63 bits");
        }
        info.end = size->bytes;  // a length until the header assigns offsets
        return info;
    }

    std::uint64_t size_of(const Entry& entry) const { return entry.info.end - entry.info.begin; }

    void skip_complete() {
        while (current < streamed.size() && current_written == size_of(streamed[current])) {
            ++current;
            current_written = 0;
        }
    }

    void write_header() {
        std::uint64_t offset = 0;
        json header = json::object();
        if (!metadata.empty()) {
            header["__metadata__"] = metadata;
        }
        for (auto* list : {&streamed, &added}) {
            for (Entry& entry : *list) {
                const std::uint64_t size = size_of(entry);
                if (__builtin_add_overflow(offset, size, &offset)) {
                    fail(origin, "tensors are too large for one file");
                }
                entry.info.begin = offset - size;
                entry.info.end = offset;
                header[entry.info.name] = {{"dtype", dtype_name(entry.info.dtype)},
                                           {"shape", entry.info.shape},
                                           {"data_offsets", {entry.info.begin, entry.info.end}}};
            }
        }
        std::string text;
        try {
            text = header.dump();
        } catch (const json::exception& e) {
            fail(origin, "cannot write the header: " + describe_json_error(e.what()));
        }
        // The format allows trailing spaces; they make the data section start 8-byte aligned.
        text.append((8 - text.size() % 8) % 8, ' ');
        std::string prefix;
        append_le64(prefix, text.size());
        if (!memory) file = std::make_unique<AtomicFile>(path);
        started = true;
        write_bytes(prefix.data(), prefix.size());
        write_bytes(text.data(), text.size());
        skip_complete();
    }

    void write_bytes(const void* data, std::size_t size) {
        if (memory) {
            const auto* first = static_cast<const std::byte*>(data);
            memory->insert(memory->end(), first, first + size);
            return;
        }
        try {
            file->write(data, size);
        } catch (const Error&) {
            failed = true;
            throw;
        }
    }
};

SafetensorsWriter::SafetensorsWriter(std::filesystem::path path) : impl_(std::make_unique<Impl>()) {
    impl_->path = std::move(path);
    impl_->origin = impl_->path.string();
}

SafetensorsWriter::SafetensorsWriter(std::vector<std::byte>& out, std::string origin)
    : impl_(std::make_unique<Impl>()) {
    impl_->memory = &out;
    impl_->origin = std::move(origin);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
    impl_->check_header_open("set_metadata()");
    impl_->metadata[std::move(key)] = std::move(value);
}

void SafetensorsWriter::declare(std::string name, DType dtype, std::vector<std::int64_t> shape) {
    impl_->check_header_open("declare()");
    TensorInfo info = impl_->make_info(std::move(name), dtype, std::move(shape));
    impl_->names.insert(info.name);
    impl_->streamed.push_back({std::move(info), {}});
}

void SafetensorsWriter::write(const void* data, std::size_t size) {
    Impl& w = *impl_;
    w.check_open("write()");
    if (!w.started) {
        w.write_header();
    }
    if (size == 0) {
        return;
    }
    if (w.current >= w.streamed.size()) {
        fail(w.origin, "write() of " + std::to_string(size) +
                           " bytes after every declared tensor is complete");
    }
    const Impl::Entry& entry = w.streamed[w.current];
    const std::uint64_t missing = w.size_of(entry) - w.current_written;
    if (size > missing) {
        fail(w.origin, "tensor " + in_quotes(entry.info.name) + ": write() of " +
                           std::to_string(size) + " bytes, but only " + std::to_string(missing) +
                           " of its " + std::to_string(w.size_of(entry)) + " bytes remain");
    }
    w.write_bytes(data, size);
    w.current_written += size;
    w.skip_complete();
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<std::int64_t> shape,
                            std::span<const std::byte> bytes) {
    impl_->check_header_open("add()");
    TensorInfo info = impl_->make_info(std::move(name), dtype, std::move(shape));
    if (bytes.size() != info.end) {
        fail(impl_->origin, "tensor " + in_quotes(info.name) + ": add() got " +
                                std::to_string(bytes.size()) + " bytes but " + dtype_name(dtype) +
                                " " + shape_text(info.shape) + " needs " +
                                std::to_string(info.end));
    }
    impl_->names.insert(info.name);
    impl_->added.push_back({std::move(info), {bytes.begin(), bytes.end()}});
}

void SafetensorsWriter::finish() {
    Impl& w = *impl_;
    w.check_open("finish()");
    if (!w.started) {
        w.write_header();
    }
    if (w.current < w.streamed.size()) {
        const Impl::Entry& entry = w.streamed[w.current];
        fail(w.origin, "tensor " + in_quotes(entry.info.name) + " received " +
                           std::to_string(w.current_written) + " of its " +
                           std::to_string(w.size_of(entry)) + " bytes before finish()");
    }
    for (const Impl::Entry& entry : w.added) {
        w.write_bytes(entry.bytes.data(), entry.bytes.size());
    }
    try {
        if (w.file) w.file->commit();
    } catch (const Error&) {
        w.failed = true;
        throw;
    }
    w.finished = true;
}

}  // namespace l2a
