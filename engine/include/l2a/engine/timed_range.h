// The host-timed ranges of a run: what ran (a part of a layer, a whole layer, or a stage outside
// the layers) as typed fields, and when. Names such as "layer 7 / global" are only made for
// display, from the fields, by range_name; nothing reads them back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace l2a {

enum class Phase : std::uint8_t {
    // The parts of a layer, in the order they run (LayerTiming::phases is indexed by them);
    // plain layers have only Global and Mlp.
    Local,
    Router,
    Global,
    Mlp,
    Layer,   // a whole layer, around its parts
    Embed,   // the token embedding, before the layers
    LmHead,  // final norm and LM head, after the layers
    Other,   // a range the engine does not record (kept by name from an older file)
    // A collective of a tensor-parallel run (the sum of the ranks' partial outputs), inside the
    // layer part it belongs to; carries that layer. Its time is part of the enclosing phase.
    AllReduce,
};

// The parts of a layer: Local, Router, Global, Mlp.
inline constexpr int kNumPhases = 4;
inline constexpr Phase kLayerPhases[kNumPhases] = {Phase::Local, Phase::Router, Phase::Global,
                                                   Phase::Mlp};

// Local..Layer and AllReduce: the phases that belong to one layer (and carry its index).
constexpr bool is_layer_phase(Phase phase) {
    return phase <= Phase::Layer || phase == Phase::AllReduce;
}
// Local..Mlp: the index into LayerTiming::phases.
constexpr bool is_layer_part(Phase phase) { return phase < Phase::Layer; }

// "local", "router", "global", "mlp", "layer", "embed", "lm_head", "other", "all-reduce".
const char* phase_name(Phase phase);
// The inverse of phase_name; nullopt for any other text.
std::optional<Phase> parse_phase(std::string_view name);

struct TimedRange {
    Phase phase = Phase::Other;
    std::int32_t layer = -1;    // the layer of a layer phase; -1 for the others
    std::int64_t begin_ns = 0;  // since the start of the run
    std::int64_t end_ns = 0;
    int depth = 0;
    std::string other_name;  // Phase::Other only: the name the range was recorded under
    // The tensor-parallel rank that recorded it (0 for a single-process run). A merged profile
    // times the run by rank 0's ranges; the others' are extra tracks of the timeline.
    std::int32_t rank = 0;
    bool operator==(const TimedRange&) const = default;
};

// The display name: "layer 7 / global", "layer 7 / all-reduce", "layer 7", "embed", "lm_head";
// an Other range's own name. The one place these names are made (Chrome trace, timeline labels,
// exports, observers).
std::string range_name(Phase phase, std::int32_t layer);
std::string range_name(const TimedRange& range);

}  // namespace l2a
