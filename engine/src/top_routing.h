// The `top:F` routing policy's choice of tokens, in time linear in the tokens. Private to the
// engine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <vector>

namespace l2a {

// Routes the `keep` tokens of highest logit z: out[t] = 1 for those, 0 for the rest. Among equal
// logits the earlier token wins (what a stable sort by descending logit, cut after `keep`,
// gives). A NaN logit ranks as -inf. `scratch` is working space (a caller may keep it).
inline void route_top(std::span<const float> z, std::size_t keep, std::span<std::uint8_t> out,
                      std::vector<float>& scratch) {
    const std::size_t t = out.size();
    const auto rank = [](float v) {
        return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
    };
    keep = std::min(keep, t);
    if (keep == 0 || keep == t) {
        std::fill(out.begin(), out.end(), keep == t ? 1 : 0);
        return;
    }
    // The keep-th highest rank: every token above it is routed, and the earliest of those equal
    // to it fill what is left.
    scratch.resize(t);
    for (std::size_t i = 0; i < t; ++i) scratch[i] = rank(z[i]);
    const auto kth = scratch.begin() + static_cast<std::ptrdiff_t>(keep - 1);
    std::nth_element(scratch.begin(), kth, scratch.end(), std::greater<float>());
    const float cut = *kth;
    std::size_t above = 0;
    for (std::size_t i = 0; i < t; ++i) above += rank(z[i]) > cut ? 1 : 0;
    std::size_t ties = keep - above;
    for (std::size_t i = 0; i < t; ++i) {
        const float r = rank(z[i]);
        std::uint8_t routed = r > cut ? 1 : 0;
        if (r == cut && ties > 0) {
            routed = 1;
            --ties;
        }
        out[i] = routed;
    }
}

}  // namespace l2a
