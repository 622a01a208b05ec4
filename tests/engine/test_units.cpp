#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "l2a/engine/bench.h"
#include "l2a/engine/units.h"

namespace l2a {
namespace {

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

TEST(Units, FixedNeverShowsNegativeZero) {
    EXPECT_EQ(format_fixed(3.14159, 2), "3.14");
    EXPECT_EQ(format_fixed(-0.0, 1), "0.0");
    EXPECT_EQ(format_fixed(-0.0001, 2), "0.00");
    EXPECT_EQ(format_fixed(-0.006, 2), "-0.01");  // rounds away from zero: keeps its sign
    EXPECT_EQ(format_fixed(kNan, 2), "n/a");
    EXPECT_EQ(format_fixed(kInf, 2), "inf");
    EXPECT_EQ(format_fixed(-kInf, 2), "-inf");
}

TEST(Units, SignedNumbers) {
    EXPECT_EQ(format_signed(0.25, 2), "+0.25");
    EXPECT_EQ(format_signed(-1.5, 2), "-1.50");
    EXPECT_EQ(format_signed(0.0, 2), "0.00");
    EXPECT_EQ(format_signed(-0.0, 1), "0.0");
    EXPECT_EQ(format_signed(-0.0001, 1), "0.0");
    EXPECT_EQ(format_signed(0.0004, 3), "0.000");
    EXPECT_EQ(format_signed(-0.05, 1), "-0.1");
    EXPECT_EQ(format_signed(kNan, 2), "n/a");
    EXPECT_EQ(format_signed(kInf, 2), "n/a");
}

TEST(Units, GroupDigits) {
    EXPECT_EQ(group_digits(0), "0");
    EXPECT_EQ(group_digits(999), "999");
    EXPECT_EQ(group_digits(1000), "1,000");
    EXPECT_EQ(group_digits(1234567), "1,234,567");
    EXPECT_EQ(group_digits(-1), "-1");
    EXPECT_EQ(group_digits(-123456), "-123,456");  // no comma after the sign
    EXPECT_EQ(group_digits(-1234567), "-1,234,567");
    EXPECT_EQ(group_digits(std::numeric_limits<std::int64_t>::max()), "9,223,372,036,854,775,807");
    EXPECT_EQ(group_digits(std::numeric_limits<std::int64_t>::min()), "-9,223,372,036,854,775,808");
}

TEST(Units, CountShort) {
    EXPECT_EQ(format_count_short(0), "0");
    EXPECT_EQ(format_count_short(999), "999");
    EXPECT_EQ(format_count_short(1234), "1.2K");
    EXPECT_EQ(format_count_short(5712640), "5.7M");
    EXPECT_EQ(format_count_short(7615616512), "7.62B");
}

TEST(Units, Percent) {
    EXPECT_EQ(format_percent(0.123), "12.3%");
    EXPECT_EQ(format_percent(1.0), "100.0%");
    EXPECT_EQ(format_percent(0.5, 0), "50%");
    EXPECT_EQ(format_percent(-0.00001), "0.0%");
    EXPECT_EQ(format_percent(kNan), "n/a");
    // Something never reads as nothing, nor nearly all as all.
    EXPECT_EQ(format_percent(2.0 / 8206.0), "<0.1%");
    EXPECT_EQ(format_percent(0.0), "0.0%");
    EXPECT_EQ(format_percent(0.0004, 0), "<1%");
    EXPECT_EQ(format_percent(0.00049, 1), "<0.1%");
    EXPECT_EQ(format_percent(0.99996, 2), ">99.99%");
    EXPECT_EQ(format_percent(0.9994), "99.9%");
    EXPECT_EQ(format_percent(1.0004), "100.0%");
}

TEST(Units, PercentagePoints) {
    EXPECT_EQ(format_points(-0.022), "-2.2 pp");
    EXPECT_EQ(format_points(0.012), "+1.2 pp");
    EXPECT_EQ(format_points(0.0), "0.0 pp");
    EXPECT_EQ(format_points(-2.0 / 8206.0), "-<0.1 pp");
    EXPECT_EQ(format_points(0.0001), "+<0.1 pp");
    EXPECT_EQ(format_points(1.0 / 1048576.0), "+<0.1 pp");   // one token in 1M
    EXPECT_EQ(format_points(-1.0 / 4194304.0), "-<0.1 pp");  // one token in 4M
    EXPECT_EQ(format_points(0.1 - 0.1), "0.0 pp");
    EXPECT_EQ(format_points(kNan), "n/a");
}

TEST(Units, AxisStepsAreRoundAndLeaveRoomForTheirLabels) {
    const auto room = [](double each) { return [each](double) { return each; }; };
    // A 376 ms view 800 px wide: every 50 ms with 30 px labels, every 100 with 200 px ones.
    EXPECT_DOUBLE_EQ(axis_step(376.0, 800.0, room(30.0)), 50.0);
    EXPECT_DOUBLE_EQ(axis_step(376.0, 800.0, room(200.0)), 100.0);
    // Too narrow for any: the widest round step no longer than the view, so one tick remains.
    EXPECT_DOUBLE_EQ(axis_step(376.0, 10.0, room(200.0)), 200.0);
    // Never finer than asked (whole tokens).
    EXPECT_DOUBLE_EQ(axis_step(10.0, 1000.0, room(1.0)), 2.0);
    EXPECT_DOUBLE_EQ(axis_step(10.0, 1000.0, room(1.0), 5.0), 5.0);
    // The room may depend on the step (labels with more decimals at finer steps).
    EXPECT_DOUBLE_EQ(axis_step(1.0, 100.0, [](double step) { return step < 0.5 ? 80.0 : 10.0; }),
                     0.5);
}

TEST(Units, ExactDecimalsAndRoundSteps) {
    EXPECT_EQ(exact_decimals(35.5, 3), 1);
    EXPECT_EQ(exact_decimals(100.0, 3), 0);
    EXPECT_EQ(exact_decimals(0.05, 3), 2);
    EXPECT_EQ(exact_decimals(1e-8, 10), 8);  // a small step is never shown as 0
    EXPECT_EQ(exact_decimals(1.0 / 3.0, 3), 3);
    EXPECT_DOUBLE_EQ(round_step(0.082), 0.1);
    EXPECT_DOUBLE_EQ(round_step(1.5), 2.0);
    EXPECT_DOUBLE_EQ(round_step(3.0), 5.0);
    EXPECT_DOUBLE_EQ(round_step(5.0), 5.0);
    EXPECT_DOUBLE_EQ(round_step(7.5), 10.0);
}

TEST(Units, KvElement) {
    EXPECT_EQ(kv_element_text(2), "bf16");
    EXPECT_EQ(kv_element_text(4), "fp32");
    EXPECT_EQ(kv_element_text(1), "8-bit");
    EXPECT_EQ(kv_element_text(3), "3 B/element");
}

TEST(Units, SettingPercent) {
    // A threshold is shown as it was set, never clamped like a measured share.
    EXPECT_EQ(format_setting_percent(0.5), "50%");
    EXPECT_EQ(format_setting_percent(0.355), "35.5%");
    EXPECT_EQ(format_setting_percent(0.001), "0.1%");
    EXPECT_EQ(format_setting_percent(0.0005), "0.05%");
    EXPECT_EQ(format_setting_percent(0.9996), "99.96%");
    EXPECT_EQ(format_setting_percent(kNan), "n/a");
}

TEST(Units, InterleavedOrderIsBalanced) {
    // Each part directly follows every other equally often: over n rounds for even n, 2n for odd
    // n; every round holds each part once.
    for (std::size_t n = 1; n <= 6; ++n) {
        const int rounds = static_cast<int>(n % 2 == 0 ? n : 2 * n);
        std::map<std::pair<std::size_t, std::size_t>, int> follows;
        for (int round = 0; round < rounds; ++round) {
            std::vector<std::size_t> order = interleaved_order(round, n);
            ASSERT_EQ(order.size(), n);
            for (std::size_t j = 1; j < n; ++j) ++follows[{order[j - 1], order[j]}];
            std::sort(order.begin(), order.end());
            for (std::size_t j = 0; j < n; ++j) EXPECT_EQ(order[j], j) << "round " << round;
        }
        EXPECT_EQ(follows.size(), n * (n - 1)) << n;
        for (const auto& [pair, count] : follows) EXPECT_EQ(count, n % 2 == 0 ? 1 : 2) << n;
    }
    EXPECT_EQ(interleaved_order(0, 4), (std::vector<std::size_t>{0, 1, 3, 2}));
    EXPECT_EQ(interleaved_order(4, 4), interleaved_order(0, 4));
}

TEST(Units, DurationUnits) {
    EXPECT_EQ(format_duration(0.0), "0");
    EXPECT_EQ(format_duration(-0.0), "0");
    EXPECT_EQ(format_duration(5e-6), "5.0 µs");
    EXPECT_EQ(format_duration(12.345e-3), "12.345 ms");
    EXPECT_EQ(format_duration(1.2344), "1.234 s");
    EXPECT_EQ(format_duration(120.0), "120.000 s");
    EXPECT_EQ(format_duration(-2.5e-6), "-2.5 µs");
    EXPECT_EQ(format_duration(kNan), "n/a");
    EXPECT_EQ(format_duration(kInf), "n/a");
    // Never the ASCII spelling of the micro sign.
    EXPECT_EQ(format_duration(1e-6).find("us"), std::string::npos);
}

TEST(Units, DurationRoundsIntoTheNextUnit) {
    // 999.95 µs shown with one decimal would read "1000.0 µs": it is 1 ms.
    EXPECT_EQ(format_duration(999.95e-6), "1.000 ms");
    EXPECT_EQ(format_duration(999.94e-6), "999.9 µs");
    EXPECT_EQ(format_duration(0.9999996), "1.000 s");
    EXPECT_EQ(format_duration(0.9994), "999.400 ms");
    EXPECT_EQ(format_duration(-999.95e-6), "-1.000 ms");
    // Other digits per unit, as the views use them.
    EXPECT_EQ(format_duration(0.5e-3, {3, 2, 1}), "500.0 µs");
    EXPECT_EQ(format_duration(1e-3, {3, 2, 1}), "1.00 ms");
    EXPECT_EQ(format_duration(0.9996, {3, 1, 1}), "999.6 ms");
    EXPECT_EQ(format_duration(0.99996, {3, 1, 1}), "1.000 s");
}

TEST(Units, Elapsed) {
    EXPECT_EQ(format_elapsed(0.844), "0.84 s");
    EXPECT_EQ(format_elapsed(12.34), "12.3 s");
    EXPECT_EQ(format_elapsed(125.0), "2 min 05 s");
    EXPECT_EQ(format_elapsed(kNan), "n/a");
}

TEST(Units, Bytes) {
    EXPECT_EQ(format_bytes(0), "0 B");
    EXPECT_EQ(format_bytes(512), "512 B");
    EXPECT_EQ(format_bytes(1023), "1023 B");
    EXPECT_EQ(format_bytes(1024), "1.00 KiB");
    EXPECT_EQ(format_bytes(1536), "1.50 KiB");
    EXPECT_EQ(format_bytes(3 * 1024 * 1024), "3.00 MiB");
    EXPECT_EQ(format_bytes(std::int64_t(5) << 30, 1), "5.0 GiB");
    EXPECT_EQ(format_bytes(std::int64_t(2) << 40), "2.00 TiB");
    EXPECT_EQ(format_bytes(std::int64_t(3) << 50), "3.00 PiB");
    EXPECT_EQ(format_bytes(-2 * 1024 * 1024), "-2.00 MiB");
    EXPECT_EQ(format_bytes(-100), "-100 B");
}

TEST(Units, BytesShortKeepThreeSignificantDigits) {
    EXPECT_EQ(format_bytes_short(512), "512 B");
    EXPECT_EQ(format_bytes_short(1536), "1.50 KiB");
    EXPECT_EQ(format_bytes_short(std::int64_t(25) * 1024 * 1024 / 2), "12.5 MiB");
    EXPECT_EQ(format_bytes_short(std::int64_t(768) * 1024), "768 KiB");
    EXPECT_EQ(format_bytes_short(std::int64_t(512) << 30), "512 GiB");
    EXPECT_EQ(format_bytes_short(-1536), "-1.50 KiB");
}

}  // namespace
}  // namespace l2a
