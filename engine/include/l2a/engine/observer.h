// Hooks through which a prefill run reports what it does. The engine calls them on the thread
// that runs the prefill; implementations (routing capture, host timers, the CUPTI tracer) live
// outside the engine.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace l2a {

class PrefillObserver {
public:
    virtual ~PrefillObserver() = default;
    virtual void on_layer_begin(int /*layer*/) {}
    virtual void on_layer_end(int /*layer*/) {}
    // Once per layer: the router logit of every token and the decision that was applied
    // (1 = the token ran global attention). A pruned layer reports all-zero decisions.
    virtual void on_routing(int /*layer*/, std::span<const float> /*logits*/,
                            std::span<const std::uint8_t> /*decisions*/) {}
    // Timed ranges by their display name (range_name in timed_range.h: "embed",
    // "layer 7 / local", "layer 7 / router", "layer 7 / global", "layer 7 / mlp", "lm_head").
    // Properly nested, begin/end pairs.
    virtual void on_range_begin(std::string_view /*name*/) {}
    virtual void on_range_end(std::string_view /*name*/) {}
};

}  // namespace l2a
