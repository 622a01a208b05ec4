// libFuzzer target: bytes as a remote engine request (engine.proto's ClientMessage), decoded as
// the server decodes them. Malformed messages and bad values must be refused with l2a::Error,
// never crash or hang.
#include <cstddef>
#include <cstdint>

#include "engine.pb.h"
#include "l2a/engine/error.h"
#include "wire.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    l2a::remote::ClientMessage message;
    if (!message.ParseFromArray(data, static_cast<int>(size))) return 0;
    try {
        switch (message.kind_case()) {
            case l2a::remote::ClientMessage::kOpenModel:
                l2a::wire::get(message.open_model());
                break;
            case l2a::remote::ClientMessage::kRun:
                l2a::wire::get(message.run());
                break;
            case l2a::remote::ClientMessage::kAdopt:
                l2a::wire::profile_from_bytes(message.adopt().profile(), "fuzz");
                l2a::wire::get(message.adopt().model());
                break;
            case l2a::remote::ClientMessage::kWhatif:
                l2a::wire::get(message.whatif().variant());
                break;
            case l2a::remote::ClientMessage::kMeasureTtft:
                l2a::wire::get(message.measure_ttft().variant());
                break;
            default:
                break;
        }
    } catch (const l2a::Error&) {
    }
    return 0;
}
