// What the exporters share: number formatting and the layer facts every format reports.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "l2a/engine/error.h"
#include "l2a/engine/profile.h"

namespace l2a::export_support {

// The shortest text that reads back as the same double; "" for NaN and infinities, which CSV and
// HTML readers would otherwise take for words.
inline std::string number_text(double value) {
    if (!std::isfinite(value)) return "";
    std::array<char, 32> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return std::string(buffer.data(), result.ptr);
}

// The exporters index the arrays by L and T: a profile built in memory may not have been
// through save/load's checks.
inline void check_arrays(const Profile& p, std::string_view exporter) {
    const auto t = static_cast<std::size_t>(p.num_tokens());
    const auto l = static_cast<std::size_t>(std::max<std::int64_t>(p.num_layers, 0));
    if (p.num_layers < 0 || p.decisions.size() != l * t || p.router_logits.size() != l * t ||
        p.token_nll.size() != t || p.token_begin.size() != t || p.token_end.size() != t) {
        fail(exporter, "the profile's arrays do not match its " + std::to_string(t) +
                           " tokens and " + std::to_string(p.num_layers) + " layers");
    }
    if (!p.distant_mass.empty() && p.distant_mass.size() != l * t) {
        fail(exporter, "the profile's distant masses do not match its " + std::to_string(t) +
                           " tokens and " + std::to_string(p.num_layers) + " layers");
    }
    for (std::size_t i = 0; i < t; ++i) {
        if (p.token_begin[i] > p.token_end[i] || p.token_end[i] > p.document_text.size()) {
            fail(exporter, "token " + std::to_string(i) + " lies outside the document text");
        }
    }
}

inline bool is_pruned(const Profile& p, std::int64_t layer) {
    return std::find(p.options.prune.begin(), p.options.prune.end(), static_cast<int>(layer)) !=
           p.options.prune.end();
}

// Tokens of `layer` that ran global attention.
inline std::int64_t routed_tokens(const Profile& p, std::int64_t layer) {
    const std::int64_t t = p.num_tokens();
    const auto first = p.decisions.begin() + layer * t;
    return std::count_if(first, first + t, [](std::uint8_t d) { return d != 0; });
}

inline double global_fraction(const Profile& p, std::int64_t layer) {
    const auto i = static_cast<std::size_t>(layer);
    if (i < p.metrics.global_fraction.size()) return p.metrics.global_fraction[i];
    const std::int64_t t = p.num_tokens();
    return t > 0 ? static_cast<double>(routed_tokens(p, layer)) / static_cast<double>(t) : 0.0;
}

}  // namespace l2a::export_support
