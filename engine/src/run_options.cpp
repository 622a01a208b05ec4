#include "l2a/engine/run_options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

#include "l2a/engine/error.h"

namespace l2a {

namespace {

std::string_view trim(std::string_view text) {
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!text.empty() && is_space(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_space(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

[[noreturn]] void routing_error(const std::string& message) {
    throw Error("--routing: " + message);
}

[[noreturn]] void prune_error(const std::string& message) { throw Error("--prune: " + message); }

double parse_fraction(std::string_view policy, std::string_view text) {
    const std::string quoted = "'" + std::string(text) + "'";
    double value = 0.0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value, std::chars_format::general);
    if (text.empty() || ec != std::errc() || ptr != end) {
        routing_error("fraction " + quoted + " of " + std::string(policy) + " is not a number");
    }
    if (!(value >= 0.0 && value <= 1.0)) {
        routing_error("fraction " + quoted + " of " + std::string(policy) +
                      " must be between 0 and 1");
    }
    return value + 0.0;  // "-0" reads as 0, not as a negative zero that prints back as "-0"
}

}  // namespace

RoutingPolicy RoutingPolicy::parse(std::string_view text) {
    const std::string_view trimmed = trim(text);
    const std::size_t colon = trimmed.find(':');
    const std::string_view name = trim(trimmed.substr(0, colon));
    const bool has_fraction = colon != std::string_view::npos;

    RoutingPolicy policy;
    if (name == "learned" || name == "global" || name == "local") {
        if (has_fraction) {
            routing_error("'" + std::string(name) + "' takes no fraction, got '" +
                          std::string(trimmed) + "'");
        }
        policy.kind = name == "learned"  ? RoutingKind::Learned
                      : name == "global" ? RoutingKind::Global
                                         : RoutingKind::Local;
        return policy;
    }
    if (name == "random" || name == "top") {
        if (!has_fraction) {
            routing_error("'" + std::string(name) + "' needs a fraction, e.g. '" +
                          std::string(name) + ":0.2'");
        }
        policy.kind = name == "random" ? RoutingKind::Random : RoutingKind::Top;
        policy.fraction = parse_fraction(name, trim(trimmed.substr(colon + 1)));
        return policy;
    }
    routing_error("unknown policy '" + std::string(trimmed) +
                  "' (expected learned, global, local, random:F or top:F with 0 <= F <= 1)");
}

std::string RoutingPolicy::to_string() const {
    switch (kind) {
        case RoutingKind::Learned:
            return "learned";
        case RoutingKind::Global:
            return "global";
        case RoutingKind::Local:
            return "local";
        case RoutingKind::Random:
        case RoutingKind::Top: {
            // Shortest text that reads back as the same double, so parse(to_string()) round-trips.
            char buffer[32];
            auto [ptr, ec] = std::to_chars(std::begin(buffer), std::end(buffer), fraction);
            std::string number = ec == std::errc() ? std::string(buffer, ptr) : std::string("nan");
            return std::string(kind == RoutingKind::Random ? "random:" : "top:") + number;
        }
    }
    return "learned";
}

PruningPlan parse_pruning_plan(std::string_view text) {
    PruningPlan plan;
    if (trim(text).empty()) {
        return plan;
    }
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) {
            comma = text.size();
        }
        const std::string_view item = trim(text.substr(start, comma - start));
        if (item.empty()) {
            prune_error("empty layer index in '" + std::string(text) + "'");
        }
        if (item.front() == '-') {
            prune_error("layer index must not be negative, got '" + std::string(item) + "'");
        }
        int layer = 0;
        const char* end = item.data() + item.size();
        auto [ptr, ec] = std::from_chars(item.data(), end, layer);
        if (ec == std::errc::result_out_of_range) {
            prune_error("layer index '" + std::string(item) + "' is too large");
        }
        if (ec != std::errc() || ptr != end) {
            prune_error("'" + std::string(item) + "' is not a layer index");
        }
        plan.push_back(layer);
        start = comma + 1;
    }
    std::sort(plan.begin(), plan.end());
    plan.erase(std::unique(plan.begin(), plan.end()), plan.end());
    return plan;
}

std::string format_pruning_plan(const PruningPlan& plan) {
    std::string text;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        if (i > 0) {
            text += ',';
        }
        text += std::to_string(plan[i]);
    }
    return text;
}

}  // namespace l2a
