// Numbers with units as people read them, one convention for the CLI, the reports and the app
// (ui/include/l2a/ui/units.h wraps these in QString). Qt-free and torch-free.
//
// Durations: "s", "ms" and "µs" (never "us"); zero reads "0"; a value that rounds up to the next
// unit is shown in it (999.96 µs with one decimal -> "1.000 ms"). Bytes: binary units ("512 B",
// "1.50 KiB"). Digits are grouped by commas ("-1,234,567"). No text reads "-0.0": a value that
// rounds to zero is shown without its sign. Anything not finite reads "n/a" (format_fixed keeps
// "inf" / "-inf", which a table of numbers should show as such).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace l2a {

// "3.14" for (3.14159, 2); "n/a" for NaN, "inf" / "-inf"; "0.00" for -0.001 (never "-0.00").
std::string format_fixed(double value, int decimals);

// "+0.25", "-1.50", and "0.00" for anything that rounds to zero; "n/a" when not finite.
std::string format_signed(double value, int decimals);

// 12345 -> "12,345", -1234 -> "-1,234".
std::string group_digits(std::int64_t value);

// A count in three or four significant digits: 5712640 -> "5.7M", 1234 -> "1.2K",
// 7615616512 -> "7.62B", 999 -> "999".
std::string format_count_short(std::int64_t value);

// The fewest decimals, at most `most`, that show `value` exactly (within a millionth of it):
// 35.5 -> 1, 100 -> 0, 0.05 -> 2, 1e-8 -> 8.
int exact_decimals(double value, int most);

// The smallest round step at or above `at_least` (> 0): 1, 2 or 5 times a power of ten, as an
// axis's ticks are spaced (0.082 -> 0.1, 1.5 -> 2, 3 -> 5).
double round_step(double at_least);

// The step between an axis's ticks across a view `span` long and `width` wide (in the units of
// `room`): a round step (round_step), the smallest from span / 8 (at most eight intervals, at
// least `at_least`) up that leaves each interval room(step), a label and its gap, of the width;
// in a view too narrow for that, the widest round step no longer than the view, so that a tick
// remains. Shared by the timeline's time axis and the routing map's token axis.
double axis_step(double span, double width, const std::function<double(double)>& room,
                 double at_least = 0.0);

// "12.3%" for 0.123 (fraction of 1); "n/a" when not finite. A positive share that would round
// to zero reads "<0.1%", one below 1 that would round to 100% reads ">99.9%" (with the decimals
// asked for); a tiny negative one reads "0.0%".
std::string format_percent(double fraction, int decimals = 1);

// The element a KV-cache size is counted in (RunOptions::kv_bytes_per_element): "bf16" for 2
// bytes (the default: the cache a deployment keeps, whatever dtype the run computed in),
// "fp32" for 4, "8-bit" for 1, else "N B/element".
std::string kv_element_text(int bytes_per_element);

// A setting given as a share (a threshold the user chose), as it is: "50%", "35.5%", "0.1%",
// "0.05%", with as few decimals as show it (at most 3), never clamped as format_percent clamps
// measured shares; "n/a" when not finite.
std::string format_setting_percent(double fraction);

// A change of a share in percentage points, signed: "+1.2 pp", "-2.2 pp", "0.0 pp" for none,
// and "+<0.1 pp" / "-<0.1 pp" for a change that would round to none (shares are ratios of token
// counts, so any change is a token's); "n/a" when not finite.
std::string format_points(double change, int decimals = 1);

// Decimals for each unit of a duration.
struct DurationDigits {
    int s = 3;
    int ms = 3;
    int us = 1;
};
// "1.234 s", "12.345 ms", "5.0 µs" (with the default digits); "0" for zero; "n/a" when not
// finite. Negative durations keep their sign ("-2.5 µs").
std::string format_duration(double seconds, DurationDigits digits = {});

// Elapsed wall time of a run: "0.84 s", "12.3 s", "2 min 05 s".
std::string format_elapsed(double seconds);

// Binary units with `decimals` after the point above bytes: "512 B", "1.50 KiB", "-2.00 MiB".
std::string format_bytes(std::int64_t bytes, int decimals = 2);

// Binary units with three significant digits: "512 B", "1.50 KiB", "12.5 MiB", "512 GiB".
std::string format_bytes_short(std::int64_t bytes);

}  // namespace l2a
