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
// gives). A NaN logit ranks as -inf.
inline void route_top(std::span<const float> z, std::size_t keep, std::span<std::uint8_t> out) {
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
    // to it fill what is left. After the selection the ranks above it all lie before it.
    std::vector<float> ranks(t);
    for (std::size_t i = 0; i < t; ++i) ranks[i] = rank(z[i]);
    const auto kth = ranks.begin() + static_cast<std::ptrdiff_t>(keep - 1);
    std::nth_element(ranks.begin(), kth, ranks.end(), std::greater<float>());
    const float cut = *kth;
    std::size_t ties = keep - static_cast<std::size_t>(std::count_if(
                                  ranks.begin(), kth, [&](float r) { return r > cut; }));
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
