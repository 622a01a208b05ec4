// libFuzzer target for the `.l2a` profile loader: any bytes must give either a profile that the
// tools can summarize and export, or an l2a::Error. Crashes, sanitizer reports, std::bad_alloc
// and other exceptions are bugs (a profile that claims 10^12 layers of no tokens once ended in
// std::bad_alloc).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes(size);
    if (size != 0) std::memcpy(bytes.data(), data, size);
    try {
        const l2a::Profile p = l2a::load_profile_from_bytes(std::move(bytes), "fuzz-input");
        // What every view and export does first with a loaded profile.
        const l2a::TimelineSummary summary = l2a::summarize_timeline(p);
        const std::string json = l2a::profile_to_json(p);
        volatile std::size_t sink = summary.layers.size() + json.size();
        (void)sink;
    } catch (const l2a::Error&) {
    }
    return 0;
}
