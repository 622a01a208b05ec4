// Numbers with units as the views show them: QString forms of l2a/engine/units.h, so that the
// app, the CLI and the reports write a number the same way.
#pragma once

#include <QString>
#include <cmath>
#include <cstdint>

#include "l2a/engine/units.h"

namespace l2a::ui {

// "512 B", "1.50 MiB", "-2.00 MiB" (binary units; `digits` after the point above bytes).
inline QString byte_size_text(std::int64_t bytes, int digits = 2) {
    return QString::fromStdString(format_bytes(bytes, digits));
}

// "+0.25", "-1.50", and "0.00" for anything that rounds to zero (never "-0.00" or "+0.00");
// "n/a" when not finite.
inline QString signed_number(double v, int digits) {
    return QString::fromStdString(format_signed(v, digits));
}

// "3.142"; "0.0" for -0.01 with one digit; "n/a", "inf", "-inf" when not finite.
inline QString fixed_text(double v, int digits) {
    return QString::fromStdString(format_fixed(v, digits));
}

// A ratio as "2.750x"; "unbounded" for +inf (a denominator of 0), "n/a" when undefined.
inline QString ratio_text(double v, int digits = 3) {
    if (std::isinf(v) && v > 0) return QStringLiteral("unbounded");
    if (!std::isfinite(v)) return QStringLiteral("n/a");
    return fixed_text(v, digits) + "x";
}

// 12345 -> "12,345".
inline QString count_text(std::int64_t n) { return QString::fromStdString(group_digits(n)); }

// 5712640 -> "5.7M".
inline QString count_short_text(std::int64_t n) {
    return QString::fromStdString(format_count_short(n));
}

// "12.3%" for 0.123.
inline QString percent_text(double fraction, int digits = 1) {
    return QString::fromStdString(format_percent(fraction, digits));
}

// A share as it was set: "50%", "0.05%".
inline QString setting_percent_text(double fraction) {
    return QString::fromStdString(format_setting_percent(fraction));
}

// A change in percentage points: "+1.2 pp", "+<0.1 pp", "0.0 pp".
inline QString points_text(double change) { return QString::fromStdString(format_points(change)); }

// "1.234 s", "12.5 ms", "500.0 µs" with the digits given per unit; "0" for zero.
inline QString duration_text(double seconds, DurationDigits digits = {}) {
    return QString::fromStdString(format_duration(seconds, digits));
}

}  // namespace l2a::ui
