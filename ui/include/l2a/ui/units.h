// Numbers with units as the views show them.
#pragma once

#include <QString>
#include <cmath>
#include <cstdint>

namespace l2a::ui {

// "512 B", "1.50 MiB", "-2.00 MiB" (binary units; `digits` after the point above bytes).
inline QString byte_size_text(std::int64_t bytes, int digits = 2) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = std::abs(static_cast<double>(bytes));
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    if (u == 0) return QString::number(bytes) + " B";
    return (bytes < 0 ? "-" : "") + QString::number(v, 'f', digits) + " " + units[u];
}

// "+0.25", "-1.50", and "0.00" for anything that rounds to zero (never "-0.00" or "+0.00");
// "n/a" when not finite.
inline QString signed_number(double v, int digits) {
    if (!std::isfinite(v)) return "n/a";
    QString text = QString::number(v, 'f', digits);
    bool zero = true;
    for (QChar c : text) {
        if (c.isDigit() && c != QChar('0')) zero = false;
    }
    if (zero) return QString::number(0.0, 'f', digits);
    return (v > 0 ? "+" : "") + text;
}

}  // namespace l2a::ui
