#include "l2a/engine/units.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace l2a {
namespace {

constexpr std::array<const char*, 6> kByteUnits = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};

// The magnitude of `bytes` in the largest binary unit that keeps it at 1 or more.
double scaled_bytes(std::int64_t bytes, std::size_t& unit) {
    double value = std::abs(static_cast<double>(bytes));
    unit = 0;
    while (value >= 1024.0 && unit + 1 < kByteUnits.size()) {
        value /= 1024.0;
        ++unit;
    }
    return value;
}

bool rounds_to_zero(const std::string& text) {
    for (char c : text) {
        if (c >= '1' && c <= '9') return false;
    }
    return true;
}

}  // namespace

std::string format_fixed(double value, int decimals) {
    if (!std::isfinite(value)) return std::isnan(value) ? "n/a" : (value > 0 ? "inf" : "-inf");
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    std::string text = buffer;
    if (text.front() == '-' && rounds_to_zero(text)) text.erase(0, 1);
    return text;
}

std::string format_signed(double value, int decimals) {
    if (!std::isfinite(value)) return "n/a";
    const std::string text = format_fixed(value, decimals);
    if (rounds_to_zero(text) || text.front() == '-') return text;
    return "+" + text;
}

std::string group_digits(std::int64_t value) {
    // Through the unsigned magnitude: -INT64_MIN does not exist as a signed number.
    const std::uint64_t magnitude =
        value < 0 ? ~static_cast<std::uint64_t>(value) + 1 : static_cast<std::uint64_t>(value);
    const std::string digits = std::to_string(magnitude);
    std::string out = value < 0 ? "-" : "";
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string format_count_short(std::int64_t value) {
    const double v = static_cast<double>(value);
    if (value >= 1'000'000'000) return format_fixed(v / 1e9, 2) + "B";
    if (value >= 1'000'000) return format_fixed(v / 1e6, 1) + "M";
    if (value >= 1'000) return format_fixed(v / 1e3, 1) + "K";
    return std::to_string(value);
}

std::string format_percent(double fraction, int decimals) {
    if (!std::isfinite(fraction)) return "n/a";
    decimals = std::max(decimals, 0);
    const double percent = 100.0 * fraction;
    const std::string text = format_fixed(percent, decimals);
    // A share that is something never reads as nothing, and one short of all never as all: a
    // layer that routes 2 of 8,206 tokens is "<0.1%", not "0.0%".
    const double step = std::pow(10.0, -decimals);
    if (percent > 0.0 && rounds_to_zero(text)) return "<" + format_fixed(step, decimals) + "%";
    if (percent < 100.0 && text == format_fixed(100.0, decimals)) {
        return ">" + format_fixed(100.0 - step, decimals) + "%";
    }
    return text + "%";
}

std::string kv_element_text(int bytes_per_element) {
    switch (bytes_per_element) {
        case 1:
            return "8-bit";
        case 2:
            return "bf16";
        case 4:
            return "fp32";
        default:
            return std::to_string(bytes_per_element) + " B/element";
    }
}

int exact_decimals(double value, int most) {
    for (int decimals = 0; decimals < most; ++decimals) {
        const double scaled = std::abs(value) * std::pow(10.0, decimals);
        if (std::abs(scaled - std::round(scaled)) <= 1e-6 * scaled) return decimals;
    }
    return std::max(most, 0);
}

double round_step(double at_least) {
    const double decade = std::pow(10.0, std::floor(std::log10(at_least)));
    for (double factor : {1.0, 2.0, 5.0}) {
        if (factor * decade >= at_least * (1.0 - 1e-12)) return factor * decade;
    }
    return 10.0 * decade;
}

double axis_step(double span, double width, const std::function<double(double)>& room,
                 double at_least) {
    double step = std::max(at_least, round_step(span / 8.0));
    // The round steps in turn (1, 2, 5, 10 ... times the first's decade); the bound only guards
    // the loop, which leaves within a few steps once a step nears the span.
    for (int candidate = 0; candidate < 12; ++candidate) {
        if (span / step * room(step) <= width) return step;
        const double wider = round_step(step * 1.5);
        if (wider > span) return step;
        step = wider;
    }
    return step;
}

std::string format_setting_percent(double fraction) {
    if (!std::isfinite(fraction)) return "n/a";
    const double percent = 100.0 * fraction;
    return format_fixed(percent, exact_decimals(percent, 3)) + "%";
}

std::string format_points(double change, int decimals) {
    if (!std::isfinite(change)) return "n/a";
    const double points = 100.0 * change;
    const std::string text = format_signed(points, decimals);
    if (points != 0.0 && rounds_to_zero(text)) {
        return std::string(points > 0 ? "+<" : "-<") +
               format_fixed(std::pow(10.0, -std::max(decimals, 0)), decimals) + " pp";
    }
    return text + " pp";
}

std::string format_duration(double seconds, DurationDigits digits) {
    if (!std::isfinite(seconds)) return "n/a";
    if (seconds == 0.0) return "0";
    const double magnitude = std::abs(seconds);
    // The unit is chosen on the rounded value, so that 999.96 µs reads "1.000 ms", not
    // "1000.0 µs".
    const auto below = [](double value, int decimals, double limit) {
        const double scale = std::pow(10.0, decimals);
        return std::round(value * scale) / scale < limit;
    };
    if (below(magnitude * 1e6, digits.us, 1000.0)) {
        return format_fixed(seconds * 1e6, digits.us) + " µs";
    }
    if (below(magnitude * 1e3, digits.ms, 1000.0)) {
        return format_fixed(seconds * 1e3, digits.ms) + " ms";
    }
    return format_fixed(seconds, digits.s) + " s";
}

std::string format_elapsed(double seconds) {
    if (!std::isfinite(seconds)) return "n/a";
    if (seconds < 10) return format_fixed(seconds, 2) + " s";
    if (seconds < 60) return format_fixed(seconds, 1) + " s";
    const auto whole = static_cast<std::int64_t>(std::llround(seconds));
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%lld min %02lld s", static_cast<long long>(whole / 60),
                  static_cast<long long>(whole % 60));
    return buffer;
}

std::string format_bytes(std::int64_t bytes, int decimals) {
    std::size_t unit = 0;
    const double value = scaled_bytes(bytes, unit);
    if (unit == 0) return std::to_string(bytes) + " B";
    return (bytes < 0 ? "-" : "") + format_fixed(value, decimals) + " " + kByteUnits[unit];
}

std::string format_bytes_short(std::int64_t bytes) {
    std::size_t unit = 0;
    const double value = scaled_bytes(bytes, unit);
    if (unit == 0) return std::to_string(bytes) + " B";
    const int decimals = value < 10 ? 2 : (value < 100 ? 1 : 0);
    return (bytes < 0 ? "-" : "") + format_fixed(value, decimals) + " " + kByteUnits[unit];
}

}  // namespace l2a
