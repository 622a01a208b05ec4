#include "l2a/engine/timed_range.h"

namespace l2a {

const char* phase_name(Phase phase) {
    switch (phase) {
        case Phase::Local:
            return "local";
        case Phase::Router:
            return "router";
        case Phase::Global:
            return "global";
        case Phase::Mlp:
            return "mlp";
        case Phase::Layer:
            return "layer";
        case Phase::Embed:
            return "embed";
        case Phase::LmHead:
            return "lm_head";
        case Phase::Other:
            return "other";
        case Phase::AllReduce:
            return "all-reduce";
    }
    return "other";
}

std::optional<Phase> parse_phase(std::string_view name) {
    for (Phase phase : {Phase::Local, Phase::Router, Phase::Global, Phase::Mlp, Phase::Layer,
                        Phase::Embed, Phase::LmHead, Phase::Other, Phase::AllReduce}) {
        if (name == phase_name(phase)) return phase;
    }
    return std::nullopt;
}

std::string range_name(Phase phase, std::int32_t layer) {
    if (!is_layer_phase(phase)) return phase_name(phase);
    std::string name = "layer " + std::to_string(layer);
    if (phase != Phase::Layer) name += std::string(" / ") + phase_name(phase);
    return name;
}

std::string range_name(const TimedRange& range) {
    return range.phase == Phase::Other ? range.other_name : range_name(range.phase, range.layer);
}

}  // namespace l2a
