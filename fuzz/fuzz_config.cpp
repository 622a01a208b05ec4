// libFuzzer entry: config.json parsing must end in a ModelConfig or an l2a::Error, whatever the
// bytes. Anything else (a crash, a sanitizer report, another exception type) is a bug, and so
// is a parsed config that does not survive model_config_to_json and a second parse unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "l2a/engine/config.h"
#include "l2a/engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    l2a::ModelConfig config;
    try {
        config = l2a::parse_model_config(text, "fuzz/config.json");
    } catch (const l2a::Error&) {
        return 0;
    }
    const std::string written = l2a::model_config_to_json(config);
    try {
        const l2a::ModelConfig again = l2a::parse_model_config(written, "fuzz/written.json");
        if (l2a::model_config_to_json(again) != written) {
            std::abort();
        }
    } catch (const l2a::Error&) {
        std::abort();
    }
    return 0;
}
