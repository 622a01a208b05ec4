// libFuzzer entry: any bytes, made valid UTF-8 as documents are, must encode without a crash and
// give well-formed offsets and ids; decoding them and encoding the result again must give the
// same ids (the text is NFC after the first round, and the fixture's added tokens are ASCII, which
// NFC leaves alone). The tokenizer is built once, at start-up, from the Qwen-style fixture unless
// L2A_FUZZ_TOKENIZER names another tokenizer.json.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/tokenizer.h"

namespace {

const l2a::Tokenizer* fixture = nullptr;

// The fixture, looked for above the working directory and above the executable (the build
// folder sits inside the source tree).
std::filesystem::path find_fixture() {
    if (const char* chosen = std::getenv("L2A_FUZZ_TOKENIZER")) {
        return chosen;
    }
    const std::filesystem::path relative =
        std::filesystem::path("tests") / "data" / "tokenizers" / "qwen_style.json";
    std::error_code error;
    for (std::filesystem::path start : {std::filesystem::current_path(error),
                                        std::filesystem::read_symlink("/proc/self/exe", error)}) {
        for (std::filesystem::path dir = start; !dir.empty(); dir = dir.parent_path()) {
            if (std::filesystem::exists(dir / relative, error)) {
                return dir / relative;
            }
            if (dir == dir.parent_path()) {
                break;
            }
        }
    }
    return relative;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const std::filesystem::path path = find_fixture();
    try {
        static const l2a::Tokenizer tokenizer = l2a::Tokenizer::from_file(path);
        fixture = &tokenizer;
    } catch (const l2a::Error& error) {
        std::fprintf(stderr, "fuzz_tokenizer: %s (set L2A_FUZZ_TOKENIZER to a tokenizer.json)\n",
                     error.what());
        std::exit(1);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const l2a::Tokenizer& tokenizer = *fixture;
    std::string text;
    l2a::sanitize_utf8(std::string_view(reinterpret_cast<const char*>(data), size), text);

    const l2a::Encoding encoding = tokenizer.encode(text);
    if (encoding.ids.size() != encoding.offsets.size() || (text.empty() != encoding.ids.empty())) {
        std::abort();
    }
    std::uint32_t previous_begin = 0;
    for (std::size_t k = 0; k < encoding.ids.size(); ++k) {
        const auto [begin, end] = encoding.offsets[k];
        if (encoding.ids[k] < 0 || encoding.ids[k] >= tokenizer.vocab_size() || begin > end ||
            end > text.size() || begin < previous_begin) {
            std::abort();
        }
        previous_begin = begin;
    }

    const std::string decoded = tokenizer.decode(encoding.ids);
    std::string checked;
    if (l2a::sanitize_utf8(decoded, checked) != 0) {
        std::abort();  // whole encodings decode to whole characters
    }
    if (tokenizer.encode(decoded).ids != encoding.ids) {
        std::abort();
    }
    return 0;
}
