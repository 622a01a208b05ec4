// safetensors: our writer and reader agree with each other and with the Python `safetensors`
// package, and every malformed file is refused with a message naming the file and the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using l2a::DType;
using l2a::test::message_of;
using l2a::test::python_can_import;
using nlohmann::json;

namespace {

fs::path scratch_dir() { return l2a::test::scratch_dir("safetensors"); }

std::vector<std::byte> to_bytes(std::string_view text) {
    std::vector<std::byte> bytes(text.size());
    std::memcpy(bytes.data(), text.data(), text.size());
    return bytes;
}

template <typename T>
std::vector<std::byte> bytes_of(const std::vector<T>& values) {
    std::vector<std::byte> bytes(values.size() * sizeof(T));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

// A file made by hand: 8-byte length, header text as given (no padding), then data.
std::vector<std::byte> raw_file(std::string_view header, std::size_t data_size = 0) {
    std::string text;
    for (int i = 0; i < 8; ++i) {
        text.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
    }
    text += header;
    text.append(data_size, '\x01');
    return to_bytes(text);
}

void write_file(const fs::path& path, const std::vector<std::byte>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
}

std::vector<std::byte> read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

std::string bytes_error(std::string_view header, std::size_t data_size = 0) {
    return message_of(
        [&] { l2a::SafetensorsFile::from_bytes(raw_file(header, data_size), "m.safetensors"); });
}

std::vector<std::byte> view_bytes(const l2a::TensorView& view) {
    return {view.data, view.data + view.size_bytes()};
}

// One tensor of every dtype, with values that make byte order and element order visible.
struct Sample {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> bytes;
};

std::vector<Sample> every_dtype() {
    using u16 = std::uint16_t;
    return {
        {"f32", DType::F32, {2, 3}, bytes_of<float>({1.5f, -2.f, 0.f, 3.25f, 1e-8f, -0.f})},
        // 1.0, -2.0, 0.5, 65504 (the largest half)
        {"f16", DType::F16, {4}, bytes_of<u16>({0x3C00, 0xC000, 0x3800, 0x7BFF})},
        // 1.0, -3.0, 0.5, 2^100 (beyond half's range)
        {"bf16", DType::BF16, {2, 2}, bytes_of<u16>({0x3F80, 0xC040, 0x3F00, 0x7180})},
        {"i32", DType::I32, {3}, bytes_of<std::int32_t>({-1, 2147483647, 7})},
        {"i64", DType::I64, {2, 1}, bytes_of<std::int64_t>({-5, 1LL << 40})},
        {"u8", DType::U8, {5}, bytes_of<std::uint8_t>({0, 1, 127, 128, 255})},
        {"bool", DType::BOOL, {3}, bytes_of<std::uint8_t>({1, 0, 1})},
        {"scalar", DType::F32, {}, bytes_of<float>({42.f})},
        {"empty", DType::I64, {0, 4}, {}},
    };
}

// Streams the first tensors in several pieces and adds the rest whole, so both paths are used.
void write_samples(const fs::path& path, const std::vector<Sample>& samples) {
    l2a::SafetensorsWriter writer(path);
    writer.set_metadata("format", "pt");
    writer.set_metadata("note", "caf\xC3\xA9 \"quoted\"");
    const std::size_t streamed = samples.size() / 2;
    for (std::size_t i = 0; i < streamed; ++i) {
        writer.declare(samples[i].name, samples[i].dtype, samples[i].shape);
    }
    for (std::size_t i = streamed; i < samples.size(); ++i) {
        writer.add(samples[i].name, samples[i].dtype, samples[i].shape, samples[i].bytes);
    }
    for (std::size_t i = 0; i < streamed; ++i) {
        const auto& bytes = samples[i].bytes;
        const std::size_t half = bytes.size() / 2;
        writer.write(bytes.data(), half);
        writer.write(bytes.data() + half, bytes.size() - half);
    }
    writer.finish();
}

std::vector<std::byte> from_hex(const std::string& hex) {
    std::vector<std::byte> bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<std::byte>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
}

}  // namespace

TEST(DType, NamesSizesAndParsing) {
    const std::vector<std::tuple<DType, const char*, std::size_t>> table = {
        {DType::F32, "F32", 4},  {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
        {DType::I32, "I32", 4},  {DType::I64, "I64", 8}, {DType::U8, "U8", 1},
        {DType::BOOL, "BOOL", 1}};
    for (const auto& [dtype, name, size] : table) {
        EXPECT_STREQ(l2a::dtype_name(dtype), name);
        EXPECT_EQ(l2a::dtype_size(dtype), size);
        EXPECT_EQ(l2a::parse_dtype(name), dtype);
    }
    EXPECT_FALSE(l2a::parse_dtype("F64"));
    EXPECT_FALSE(l2a::parse_dtype("f32"));
    EXPECT_FALSE(l2a::parse_dtype(""));
}

TEST(SafetensorsRoundTrip, EveryDtype) {
    const fs::path path = scratch_dir() / "all.safetensors";
    const auto samples = every_dtype();
    write_samples(path, samples);

    const auto file = l2a::SafetensorsFile::open(path);
    EXPECT_EQ(file.path(), path);
    ASSERT_EQ(file.tensors().size(), samples.size());
    for (const Sample& s : samples) {
        SCOPED_TRACE(s.name);
        const l2a::TensorInfo* info = file.find(s.name);
        ASSERT_NE(info, nullptr);
        EXPECT_EQ(info->dtype, s.dtype);
        EXPECT_EQ(info->shape, s.shape);
        const l2a::TensorView view = file.view(s.name);
        EXPECT_EQ(view.info, info);
        EXPECT_EQ(view_bytes(view), s.bytes);
    }
    EXPECT_EQ(file.find("scalar")->numel(), 1);
    EXPECT_EQ(file.find("empty")->numel(), 0);
    const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                         {"note", "caf\xC3\xA9 \"quoted\""}};
    EXPECT_EQ(file.metadata(), metadata);
}

TEST(SafetensorsRoundTrip, TensorsAreListedInOffsetOrderAndContiguous) {
    const fs::path path = scratch_dir() / "order.safetensors";
    write_samples(path, every_dtype());
    const auto file = l2a::SafetensorsFile::open(path);
    std::uint64_t expected_begin = 0;
    for (const l2a::TensorInfo& info : file.tensors()) {
        EXPECT_EQ(info.begin, expected_begin) << info.name;
        expected_begin = info.end;
    }
    // Python's reader insists that the data section ends where the last tensor does.
    const auto bytes = read_file(path);
    std::uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    EXPECT_EQ(8 + header_size + expected_begin, bytes.size());
}

TEST(SafetensorsRoundTrip, HeaderIsPaddedWithSpacesToEightBytes) {
    const fs::path path = scratch_dir() / "pad.safetensors";
    l2a::SafetensorsWriter writer(path);
    writer.add("x", DType::U8, {1}, to_bytes("A"));
    writer.finish();
    const auto bytes = read_file(path);
    std::uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    EXPECT_EQ((8 + header_size) % 8, 0u);
    const std::string header(reinterpret_cast<const char*>(bytes.data()) + 8, header_size);
    const std::size_t close = header.rfind('}');
    ASSERT_NE(close, std::string::npos);
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << header;
    EXPECT_EQ(json::parse(header),
              json::parse(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"));
    EXPECT_EQ(static_cast<char>(bytes.back()), 'A');
}

TEST(SafetensorsRoundTrip, EmptyFileWithOnlyMetadata) {
    const fs::path path = scratch_dir() / "meta.safetensors";
    l2a::SafetensorsWriter writer(path);
    writer.set_metadata("k", "v");
    writer.finish();
    const auto file = l2a::SafetensorsFile::open(path);
    EXPECT_TRUE(file.tensors().empty());
    EXPECT_EQ(file.metadata().at("k"), "v");
}

TEST(SafetensorsRoundTrip, FromBytesMatchesOpenAndSurvivesMove) {
    const fs::path path = scratch_dir() / "m.safetensors";
    write_samples(path, every_dtype());
    auto file = l2a::SafetensorsFile::from_bytes(read_file(path), "memory");
    EXPECT_EQ(file.path(), fs::path("memory"));
    const l2a::TensorView before = file.view("i64");
    l2a::SafetensorsFile moved = std::move(file);
    EXPECT_EQ(view_bytes(moved.view("i64")), view_bytes(before));
    // A TensorInfo copied out of the file still finds the file's own bytes.
    const l2a::TensorInfo copy = *moved.find("u8");
    EXPECT_EQ(view_bytes(moved.view(copy)), every_dtype()[5].bytes);
}

TEST(SafetensorsRead, MissingTensorLookup) {
    const fs::path path = scratch_dir() / "m.safetensors";
    write_samples(path, every_dtype());
    const auto file = l2a::SafetensorsFile::open(path);
    EXPECT_EQ(file.find("absent"), nullptr);
    EXPECT_EQ(message_of([&] { file.view("absent"); }),
              path.string() + ": missing tensor 'absent'");
    l2a::TensorInfo foreign;
    foreign.name = "other";
    EXPECT_EQ(message_of([&] { file.view(foreign); }), path.string() + ": missing tensor 'other'");
}

TEST(SafetensorsRead, TruncatedFiles) {
    const fs::path dir = scratch_dir();
    write_samples(dir / "whole.safetensors", every_dtype());
    const auto whole = read_file(dir / "whole.safetensors");

    write_file(dir / "empty.safetensors", {});
    const std::string empty =
        message_of([&] { l2a::SafetensorsFile::open(dir / "empty.safetensors"); });
    EXPECT_CONTAINS(empty, (dir / "empty.safetensors").string() + ": ");
    EXPECT_CONTAINS(empty, "too short (0 bytes)");

    write_file(dir / "five.safetensors", {whole.begin(), whole.begin() + 5});
    EXPECT_CONTAINS(message_of([&] { l2a::SafetensorsFile::open(dir / "five.safetensors"); }),
                    "five.safetensors: file is too short (5 bytes)");

    write_file(dir / "header.safetensors", {whole.begin(), whole.begin() + 40});
    const std::string header =
        message_of([&] { l2a::SafetensorsFile::open(dir / "header.safetensors"); });
    EXPECT_CONTAINS(header, "header.safetensors: header length");
    EXPECT_CONTAINS(header, "runs past the end of the file (40 bytes)");

    write_file(dir / "data.safetensors", {whole.begin(), whole.end() - 3});
    const std::string data =
        message_of([&] { l2a::SafetensorsFile::open(dir / "data.safetensors"); });
    EXPECT_CONTAINS(data, "data.safetensors: tensor '");
    EXPECT_CONTAINS(data, "run past the end of the data section");
}

TEST(SafetensorsRead, NotAFile) {
    const fs::path dir = scratch_dir();
    const std::string missing =
        message_of([&] { l2a::SafetensorsFile::open(dir / "nope.safetensors"); });
    EXPECT_CONTAINS(missing, "nope.safetensors: cannot open");
    const std::string folder = message_of([&] { l2a::SafetensorsFile::open(dir); });
    EXPECT_CONTAINS(folder, dir.string() + ": is a folder");
}

TEST(SafetensorsRead, HeaderLength) {
    std::vector<std::byte> huge = raw_file("{}");
    huge[3] = std::byte{0x10};  // 0x10000000 + 2 bytes: past the 100 MB limit
    EXPECT_CONTAINS(message_of([&] { l2a::SafetensorsFile::from_bytes(huge, "m.safetensors"); }),
                    "m.safetensors: header length 268435458 is larger than the 100 MB limit");

    std::vector<std::byte> past = raw_file("{}");
    past[0] = std::byte{3};
    EXPECT_EQ(message_of([&] { l2a::SafetensorsFile::from_bytes(past, "m.safetensors"); }),
              "m.safetensors: header length 3 runs past the end of the file (10 bytes); the file "
              "is truncated or not safetensors");
}

TEST(SafetensorsRead, MalformedJson) {
    const std::string message = bytes_error(R"({"a": {"dtype": "F32",)");
    EXPECT_CONTAINS(message, "m.safetensors: header: malformed JSON at line 1, column ");
    EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
    const std::string invalid = bytes_error("{\"a\xFF\": 1}");
    EXPECT_CONTAINS(invalid, "m.safetensors: header: malformed JSON");
    EXPECT_EQ(invalid.find('\xFF'), std::string::npos) << invalid;  // the bad byte is not echoed
    EXPECT_CONTAINS(bytes_error(""), "m.safetensors: header: malformed JSON");
    EXPECT_EQ(bytes_error("[1, 2]"), "m.safetensors: header is not a JSON object but array");
    EXPECT_EQ(bytes_error(R"({"a": 5})"),
              "m.safetensors: tensor 'a': expected an object, found number");
    EXPECT_CONTAINS(bytes_error(std::string(100, '[') + std::string(100, ']')),
                    "m.safetensors: header JSON is nested more than");
}

TEST(SafetensorsRead, MissingFields) {
    EXPECT_EQ(bytes_error(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4),
              "m.safetensors: tensor 'a': missing \"dtype\" string");
    EXPECT_EQ(bytes_error(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
              "m.safetensors: tensor 'a': missing \"shape\" array");
    EXPECT_EQ(bytes_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
              "m.safetensors: tensor 'a': missing \"data_offsets\" [begin, end]");
}

TEST(SafetensorsRead, UnknownDtype) {
    EXPECT_EQ(
        bytes_error(R"({"lm_head.weight": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})",
                    8),
        "m.safetensors: tensor 'lm_head.weight': dtype 'F64' is not supported (supported: "
        "F32, F16, BF16, I32, I64, U8, BOOL)");
}

TEST(SafetensorsRead, BadShapes) {
    EXPECT_CONTAINS(
        bytes_error(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})"),
        "m.safetensors: tensor 'a': shape must hold non-negative integers");
    EXPECT_CONTAINS(
        bytes_error(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 0]}})"),
        "m.safetensors: tensor 'a': shape must hold non-negative integers, found a number");
    EXPECT_CONTAINS(
        bytes_error(R"({"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 0]}})"),
        "found a string");
    // Each dimension fits in 63 bits, their product does not.
    EXPECT_EQ(
        bytes_error(
            R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0,0]}})"),
        "m.safetensors: tensor 'a': shape [4294967296, 4294967296] of F32 is too large (size "
        "overflows)");
    // The element count fits, the byte count does not.
    EXPECT_CONTAINS(
        bytes_error(
            R"({"a": {"dtype": "I64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})"),
        "too large");
}

TEST(SafetensorsRead, ShapeAndOffsetSizeMismatch) {
    EXPECT_EQ(
        bytes_error(R"({"a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})",
                    16),
        "m.safetensors: tensor 'a.weight': data_offsets [0, 12] hold 12 bytes but F32 [2, 2] "
        "needs 16");
    EXPECT_EQ(bytes_error(R"({"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 0]}})"),
              "m.safetensors: tensor 's': data_offsets [0, 0] hold 0 bytes but BF16 [] needs 2");
}

TEST(SafetensorsRead, OffsetsOutOfRange) {
    EXPECT_EQ(bytes_error(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})", 4),
              "m.safetensors: tensor 'a': data_offsets [2, 6] run past the end of the data section "
              "(4 bytes)");
    EXPECT_EQ(bytes_error(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [3, 1]}})", 4),
              "m.safetensors: tensor 'a': data_offsets [3, 1] begin after they end");
    EXPECT_CONTAINS(
        bytes_error(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [-1, 0]}})", 4),
        "m.safetensors: tensor 'a': data_offsets must hold two non-negative integers");
    EXPECT_CONTAINS(
        bytes_error(
            R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [18446744073709551615, 0]}})",
            4),
        "begin after they end");
}

TEST(SafetensorsRead, OverlappingTensors) {
    EXPECT_EQ(bytes_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          12),
              "m.safetensors: tensors 'a' [0, 8] and 'b' [4, 12] overlap in the data section");
    // A tensor inside a larger one, listed after a third that lies between them.
    EXPECT_CONTAINS(bytes_error(R"({"big": {"dtype": "U8", "shape": [10], "data_offsets": [0, 10]},
                                    "mid": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
                                    "in": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}})",
                                10),
                    "tensors 'big' [0, 10] and 'mid' [2, 4] overlap");
    // Two tensors sharing the same bytes.
    EXPECT_CONTAINS(bytes_error(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                                    "b": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})",
                                2),
                    "overlap");
    // Empty tensors hold no bytes, so they overlap nothing.
    const auto file = l2a::SafetensorsFile::from_bytes(
        raw_file(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                     "e": {"dtype": "F32", "shape": [0], "data_offsets": [2, 2]}})",
                 4),
        "m.safetensors");
    EXPECT_EQ(file.view("e").size_bytes(), 0u);
}

TEST(SafetensorsRead, Metadata) {
    const auto file = l2a::SafetensorsFile::from_bytes(
        raw_file(R"({"__metadata__": {"a": "1", "b": ""}})"), "m.safetensors");
    EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"a", "1"}, {"b", ""}}));
    EXPECT_TRUE(file.tensors().empty());
    EXPECT_EQ(bytes_error(R"({"__metadata__": {"a": 1}})"),
              "m.safetensors: __metadata__ 'a' must be a string, found number");
    EXPECT_EQ(bytes_error(R"({"__metadata__": ["a"]})"),
              "m.safetensors: __metadata__ must be an object, found array");
}

TEST(SafetensorsRead, ToleratesUnalignedDataAndExtraFields) {
    // Other writers need not pad the header; the reader must not assume alignment.
    const auto file = l2a::SafetensorsFile::from_bytes(
        raw_file(R"({"a": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4], "x": 1}})", 4),
        "m.safetensors");
    const auto view = file.view("a");
    std::int32_t value = 0;
    std::memcpy(&value, view.data, 4);
    EXPECT_EQ(value, 0x01010101);
}

TEST(SafetensorsWriter, FinishWithMissingBytesFailsAndLeavesNothing) {
    const fs::path dir = scratch_dir();
    const fs::path path = dir / "out.safetensors";
    {
        l2a::SafetensorsWriter writer(path);
        writer.declare("a", DType::F32, {2, 2});
        writer.declare("b", DType::U8, {3});
        const std::vector<float> a = {1, 2, 3, 4};
        writer.write(a.data(), 16);
        writer.write("xy", 2);
        EXPECT_EQ(message_of([&] { writer.finish(); }),
                  path.string() + ": tensor 'b' received 2 of its 3 bytes before finish()");
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(dir));
}

TEST(SafetensorsWriter, ExtraBytesAreRefused) {
    const fs::path dir = scratch_dir();
    const fs::path path = dir / "out.safetensors";
    l2a::SafetensorsWriter writer(path);
    writer.declare("a", DType::I32, {1});
    EXPECT_EQ(message_of([&] { writer.write("12345", 5); }),
              path.string() + ": tensor 'a': write() of 5 bytes, but only 4 of its 4 bytes remain");
    writer.write("1234", 4);
    EXPECT_EQ(message_of([&] { writer.write("5", 1); }),
              path.string() + ": write() of 1 bytes after every declared tensor is complete");
    writer.finish();
    const auto file = l2a::SafetensorsFile::open(path);
    EXPECT_EQ(view_bytes(file.view("a")), to_bytes("1234"));
}

TEST(SafetensorsWriter, UnfinishedWriterKeepsThePreviousFile) {
    const fs::path dir = scratch_dir();
    const fs::path path = dir / "out.safetensors";
    write_samples(path, every_dtype());
    const auto before = read_file(path);
    {
        l2a::SafetensorsWriter writer(path);
        writer.declare("a", DType::F32, {1000});
        std::vector<float> half(500, 1.f);
        writer.write(half.data(), half.size() * sizeof(float));
        // The streamed bytes went to a temporary file beside the target, never to the target.
        EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2);
    }
    EXPECT_EQ(read_file(path), before);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(SafetensorsWriter, MisuseIsRefused) {
    const fs::path dir = scratch_dir();
    const fs::path path = dir / "out.safetensors";
    const std::string prefix = path.string() + ": ";
    l2a::SafetensorsWriter writer(path);
    writer.declare("a", DType::U8, {2});
    EXPECT_EQ(message_of([&] { writer.declare("a", DType::U8, {2}); }),
              prefix + "tensor 'a' is declared twice");
    EXPECT_EQ(message_of([&] { writer.add("a", DType::U8, {1}, to_bytes("x")); }),
              prefix + "tensor 'a' is declared twice");
    EXPECT_EQ(message_of([&] { writer.declare("__metadata__", DType::U8, {1}); }),
              prefix + "'__metadata__' is reserved and cannot name a tensor");
    EXPECT_EQ(message_of([&] {
                  writer.declare("neg", DType::U8, {2, -1});
              }),
              prefix +
                  "tensor 'neg': shape [2, -1] must hold non-negative sizes whose byte size "
                  "fits in 63 bits");
    EXPECT_CONTAINS(message_of([&] {
                        writer.declare("big", DType::F32, {1LL << 31, 1LL << 31, 1LL << 2});
                    }),
                    "tensor 'big': shape [2147483648, 2147483648, 4] must hold");
    EXPECT_EQ(message_of([&] { writer.add("b", DType::F32, {2}, to_bytes("1234")); }),
              prefix + "tensor 'b': add() got 4 bytes but F32 [2] needs 8");
    writer.write("1", 1);
    EXPECT_EQ(message_of([&] { writer.declare("c", DType::U8, {1}); }),
              prefix + "declare() after tensor data began (the header is written)");
    EXPECT_EQ(message_of([&] { writer.set_metadata("k", "v"); }),
              prefix + "set_metadata() after tensor data began (the header is written)");
    EXPECT_EQ(message_of([&] { writer.add("d", DType::U8, {1}, to_bytes("x")); }),
              prefix + "add() after tensor data began (the header is written)");
    writer.write("2", 1);
    writer.finish();
    EXPECT_EQ(message_of([&] { writer.finish(); }), prefix + "finish() after finish()");
    EXPECT_EQ(message_of([&] { writer.write("3", 1); }), prefix + "write() after finish()");
    const auto file = l2a::SafetensorsFile::open(path);
    ASSERT_EQ(file.tensors().size(), 1u);
    EXPECT_EQ(view_bytes(file.view("a")), to_bytes("12"));
}

TEST(SafetensorsWriter, MissingFolderIsAnErrorNamingTheFile) {
    const fs::path path = scratch_dir() / "absent" / "out.safetensors";
    l2a::SafetensorsWriter writer(path);
    writer.add("a", DType::U8, {1}, to_bytes("x"));
    EXPECT_CONTAINS(message_of([&] { writer.finish(); }), path.string() + ": cannot create");
}

TEST(SafetensorsWriter, InvalidUtf8NameIsAnError) {
    const fs::path path = scratch_dir() / "out.safetensors";
    l2a::SafetensorsWriter writer(path);
    writer.add("bad\xFF", DType::U8, {1}, to_bytes("x"));
    EXPECT_CONTAINS(message_of([&] { writer.finish(); }),
                    path.string() + ": cannot write the header: ");
    EXPECT_FALSE(fs::exists(path));
}

// ---- agreement with the Python `safetensors` package ----------------------------------------

namespace {

// Reads a safetensors file with Python and prints {name: {dtype, shape, hex}} plus metadata.
constexpr const char* python_reader = R"PY(
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
import safetensors.torch, torch
path, out = sys.argv[1], sys.argv[2]
names = {"float32": "F32", "float16": "F16", "int32": "I32", "int64": "I64", "uint8": "U8",
         "bool": "BOOL"}
result = {}
with safe_open(path, framework="pt") as f:
    result["__metadata__"] = f.metadata()
    dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
numpy_names = [k for k, d in dtypes.items() if d != "BF16"]
if len(numpy_names) == len(dtypes):
    arrays = load_file(path)
else:  # numpy has no bfloat16, so load_file refuses the whole file
    with safe_open(path, framework="np") as f:
        arrays = {k: f.get_tensor(k) for k in numpy_names}
for k in numpy_names:
    a = arrays[k]
    result[k] = {"dtype": names[str(a.dtype)], "shape": list(a.shape),
                 "hex": np.ascontiguousarray(a).tobytes().hex()}
tensors = safetensors.torch.load_file(path)
for k, d in dtypes.items():
    if d == "BF16":
        t = tensors[k]
        result[k] = {"dtype": "BF16", "shape": list(t.shape),
                     "hex": t.contiguous().view(torch.int16).numpy().tobytes().hex()}
json.dump(result, open(out, "w"))
)PY";

// Writes two files with Python (numpy for the dtypes numpy knows, torch for all of them) and
// a JSON description of what they hold.
constexpr const char* python_writer = R"PY(
import json, sys
import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch
folder = sys.argv[1]
arrays = {
    "w.f32": np.array([[1.5, -2.0, 3.0], [0.25, 1e-8, -0.0]], dtype=np.float32),
    "w.f16": np.array([1.0, -2.0, 0.5, 65504.0], dtype=np.float16),
    "w.i32": np.array([-1, 2147483647, 7], dtype=np.int32),
    "w.i64": np.array([[-5], [1 << 40]], dtype=np.int64),
    "w.u8": np.array([0, 1, 127, 128, 255], dtype=np.uint8),
    "w.bool": np.array([True, False, True]),
    "scalar": np.array(42.0, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.int64),
}
save_numpy(arrays, folder + "/numpy.safetensors", metadata={"format": "np", "k": "v"})
tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
tensors["w.bf16"] = torch.tensor([[1.0, -3.0], [0.5, 2.0 ** 100]], dtype=torch.bfloat16)
save_torch(tensors, folder + "/torch.safetensors", metadata={"format": "pt"})
names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32",
         torch.int64: "I64", torch.uint8: "U8", torch.bool: "BOOL"}
def describe(t):
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return {"dtype": names[t.dtype], "shape": list(t.shape), "hex": raw.hex()}
json.dump({"numpy": {k: describe(tensors[k]) for k in arrays},
           "torch": {k: describe(t) for k, t in tensors.items()}},
          open(folder + "/expected.json", "w"))
)PY";

bool run_python(const fs::path& script, const std::string& args) {
    const std::string command =
        std::string("\"") + L2A_PYTHON + "\" \"" + script.string() + "\" " + args;
    return std::system(command.c_str()) == 0;
}

}  // namespace

TEST(SafetensorsPython, PythonReadsWhatWeWrite) {
    if (!python_can_import("safetensors.numpy, numpy, torch")) {
        GTEST_SKIP() << L2A_PYTHON << " cannot import safetensors, numpy and torch";
    }
    const fs::path dir = scratch_dir();
    l2a::test::write_file(dir / "read.py", python_reader);
    auto without_bf16 = every_dtype();
    std::erase_if(without_bf16, [](const Sample& s) { return s.dtype == DType::BF16; });
    // numpy has no bfloat16: the file without it goes through safetensors.numpy.load_file.
    for (const auto& samples : {every_dtype(), without_bf16}) {
        const std::string name = samples.size() == without_bf16.size() ? "numpy" : "all";
        SCOPED_TRACE(name);
        const fs::path ours = dir / (name + ".safetensors");
        const fs::path seen_path = dir / (name + ".json");
        write_samples(ours, samples);
        ASSERT_TRUE(run_python(dir / "read.py",
                               "\"" + ours.string() + "\" \"" + seen_path.string() + "\""));
        const json seen = json::parse(std::ifstream(seen_path));
        EXPECT_EQ(seen.size(), samples.size() + 1);
        EXPECT_EQ(seen["__metadata__"],
                  (json{{"format", "pt"}, {"note", "caf\xC3\xA9 \"quoted\""}}));
        for (const Sample& s : samples) {
            SCOPED_TRACE(s.name);
            ASSERT_TRUE(seen.contains(s.name));
            EXPECT_EQ(seen[s.name]["dtype"], l2a::dtype_name(s.dtype));
            EXPECT_EQ(seen[s.name]["shape"].get<std::vector<std::int64_t>>(), s.shape);
            EXPECT_EQ(from_hex(seen[s.name]["hex"].get<std::string>()), s.bytes);
        }
    }
}

TEST(SafetensorsPython, WeReadWhatPythonWrites) {
    if (!python_can_import("safetensors.numpy, safetensors.torch, numpy, torch")) {
        GTEST_SKIP() << L2A_PYTHON << " cannot import safetensors, numpy and torch";
    }
    const fs::path dir = scratch_dir();
    l2a::test::write_file(dir / "write.py", python_writer);
    ASSERT_TRUE(run_python(dir / "write.py", "\"" + dir.string() + "\""));
    const json expected = json::parse(std::ifstream(dir / "expected.json"));
    const std::map<std::string, std::map<std::string, std::string>> metadata = {
        {"numpy", {{"format", "np"}, {"k", "v"}}}, {"torch", {{"format", "pt"}}}};
    for (const std::string kind : {"numpy", "torch"}) {
        SCOPED_TRACE(kind);
        const auto file = l2a::SafetensorsFile::open(dir / (kind + ".safetensors"));
        EXPECT_EQ(file.metadata(), metadata.at(kind));
        EXPECT_EQ(file.tensors().size(), expected[kind].size());
        for (const auto& [name, description] : expected[kind].items()) {
            SCOPED_TRACE(name);
            const l2a::TensorView view = file.view(name);
            EXPECT_STREQ(l2a::dtype_name(view.info->dtype),
                         description["dtype"].get<std::string>().c_str());
            EXPECT_EQ(view.info->shape, description["shape"].get<std::vector<std::int64_t>>());
            EXPECT_EQ(view_bytes(view), from_hex(description["hex"].get<std::string>()));
        }
    }
}
