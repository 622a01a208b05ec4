// libFuzzer target for the safetensors reader: any bytes must give either a file whose every
// tensor view lies inside the input, or an l2a::Error. Crashes, sanitizer reports and other
// exceptions are bugs.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"

namespace {

void check(std::vector<std::byte> bytes) {
    const std::byte* first = bytes.data();
    const std::size_t size = bytes.size();
    try {
        const auto file = l2a::SafetensorsFile::from_bytes(std::move(bytes), "fuzz-input");
        // from_bytes keeps the vector's buffer, so views must point into [first, first + size).
        unsigned checksum = 0;
        for (const l2a::TensorInfo& info : file.tensors()) {
            const l2a::TensorView view = file.view(info);
            if (view.size_bytes() != 0 &&
                (view.data < first || view.data + view.size_bytes() > first + size)) {
                __builtin_trap();
            }
            for (std::size_t i = 0; i < view.size_bytes(); ++i) {
                checksum += std::to_integer<unsigned>(view.data[i]);
            }
            if (file.find(info.name) != &info) {
                __builtin_trap();
            }
        }
        for (const auto& [key, value] : file.metadata()) {
            checksum += static_cast<unsigned>(key.size() + value.size());
        }
        volatile unsigned sink = checksum;
        (void)sink;
    } catch (const l2a::Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes(size);
    if (size != 0) {
        std::memcpy(bytes.data(), data, size);
    }
    // Random header lengths almost never fit the input, which would leave the JSON checks
    // unexplored; a second pass folds the length into range.
    if (size >= 8) {
        std::vector<std::byte> folded = bytes;
        std::uint64_t length = 0;
        std::memcpy(&length, data, 8);
        length %= size - 8 + 1;
        for (int i = 0; i < 8; ++i) {
            folded[static_cast<std::size_t>(i)] =
                static_cast<std::byte>((length >> (8 * i)) & 0xff);
        }
        check(std::move(folded));
    }
    check(std::move(bytes));
    return 0;
}
