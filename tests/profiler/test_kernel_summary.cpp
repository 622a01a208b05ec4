// Where a traced run's GPU time went: kernel time per phase and per kernel (no GPU needed).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "l2a/profiler/gpu_clocks.h"
#include "l2a/profiler/kernel_summary.h"
#include "scoped_env.h"

namespace l2a {
namespace {

KernelRecord kernel(const std::string& name, std::int64_t begin, std::int64_t end,
                    std::int64_t range) {
    KernelRecord k;
    k.name = name;
    k.begin_ns = begin;
    k.end_ns = end;
    k.range = range;
    return k;
}

// A phase's name, idle time before its kernels and the part of it across range boundaries.
void expect_idle(const KernelSummary::Total& phase, const std::string& name, std::int64_t before,
                 std::int64_t across) {
    EXPECT_EQ(phase.name, name);
    EXPECT_EQ(phase.idle_before_ns, before) << name;
    EXPECT_EQ(phase.idle_across_ranges_ns, across) << name;
}

TEST(KernelSummary, ShortNamesDropReturnTypeArgumentsAndTheProjectsNamespace) {
    EXPECT_EQ(short_kernel_name("void l2a::kernels::detail::attention_sm90_kernel<__nv_bfloat16, "
                                "128, l2a::kernels::detail::RoutedQueries, "
                                "l2a::kernels::detail::CausalKeys, false>(l2a::kernels::detail::"
                                "AttentionParams, CUtensorMap_st, CUtensorMap_st, int)"),
              "attention_sm90_kernel<__nv_bfloat16, 128, RoutedQueries, CausalKeys, false>");
    // Parentheses inside the template arguments stay; only the trailing argument list goes.
    EXPECT_EQ(short_kernel_name("void at::native::vectorized_elementwise_kernel<4, "
                                "at::native::(anonymous namespace)::silu_kernel(at::"
                                "TensorIteratorBase&)::{lambda()#1}>(int, float)"),
              "at::native::vectorized_elementwise_kernel<4, at::native::(anonymous "
              "namespace)::silu_kernel(at::TensorIteratorBase&)::{lambda()#1}>");
    EXPECT_EQ(short_kernel_name("sm90_xmma_gemm_bf16bf16_bf16f32"),
              "sm90_xmma_gemm_bf16bf16_bf16f32");
    EXPECT_EQ(short_kernel_name("void f()"), "f");
}

TEST(KernelSummary, SumsPerPhaseAndPerKernelMostTimeFirst) {
    std::vector<TimedRange> ranges(4);
    const Phase phases[] = {Phase::Layer, Phase::Local, Phase::Global, Phase::Mlp};
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        ranges[i].phase = phases[i];
        ranges[i].layer = 0;
    }
    const std::vector<KernelRecord> kernels = {
        kernel("void gemm(int)", 100, 400, 1),            // local 300
        kernel("void attention<1>(int)", 400, 600, 1),    // local 200
        kernel("void gemm(int)", 700, 1200, 3),           // mlp 500
        kernel("void attention<1>(int)", 1300, 1350, 2),  // global 50
        kernel("void copy(int)", 1400, 1410, -1),         // outside every range
        kernel("void copy(int)", 1500, 1520, 9),          // a range the run did not record
        kernel("void layer_tail(int)", 1600, 1601, 0),    // the layer, outside its parts
    };
    const KernelSummary s = summarize_kernels(kernels, ranges);
    EXPECT_EQ(s.calls, 7);
    EXPECT_EQ(s.kernel_ns, 300 + 200 + 500 + 50 + 10 + 20 + 1);
    EXPECT_EQ(s.span_ns, 1601 - 100);
    ASSERT_EQ(s.phases.size(), 5u);
    EXPECT_EQ(s.phases[0].name, "local");
    EXPECT_EQ(s.phases[0].ns, 500);
    EXPECT_EQ(s.phases[0].calls, 2);
    EXPECT_EQ(s.phases[1].name, "global");
    EXPECT_EQ(s.phases[1].ns, 50);
    EXPECT_EQ(s.phases[2].name, "mlp");
    EXPECT_EQ(s.phases[2].ns, 500);
    EXPECT_EQ(s.phases[3].name, "layer");
    EXPECT_EQ(s.phases[3].ns, 1);
    EXPECT_EQ(s.phases[4].name, "outside ranges");
    EXPECT_EQ(s.phases[4].ns, 30);
    EXPECT_EQ(s.phases[4].calls, 2);
    // The GPU's idle gaps, each counted for the phase of the kernel that ended it.
    EXPECT_EQ(s.phases[0].idle_before_ns, 0);        // local: from the first kernel on, no gap
    EXPECT_EQ(s.phases[1].idle_before_ns, 100);      // global: 1200 -> 1300
    EXPECT_EQ(s.phases[2].idle_before_ns, 100);      // mlp: 600 -> 700
    EXPECT_EQ(s.phases[3].idle_before_ns, 80);       // layer: 1520 -> 1600
    EXPECT_EQ(s.phases[4].idle_before_ns, 50 + 90);  // outside: 1350 -> 1400, 1410 -> 1500
    EXPECT_EQ(s.idle_ns, 420);
    EXPECT_EQ(s.idle_ns, s.span_ns - s.kernel_ns) << "one stream: the span is kernels and gaps";
    // Of those, the gaps across a range boundary: every one but 1410 -> 1500, between two
    // kernels outside every recorded range (an unrecorded range counts as outside).
    EXPECT_EQ(s.phases[0].idle_across_ranges_ns, 0);
    EXPECT_EQ(s.phases[1].idle_across_ranges_ns, 100);
    EXPECT_EQ(s.phases[2].idle_across_ranges_ns, 100);
    EXPECT_EQ(s.phases[3].idle_across_ranges_ns, 80);
    EXPECT_EQ(s.phases[4].idle_across_ranges_ns, 50);
    EXPECT_EQ(s.idle_across_ranges_ns, 330);
    ASSERT_EQ(s.kernels.size(), 4u);
    EXPECT_EQ(s.kernels[0].name, "gemm");
    EXPECT_EQ(s.kernels[0].ns, 800);
    EXPECT_EQ(s.kernels[0].calls, 2);
    EXPECT_EQ(s.kernels[1].name, "attention<1>");
    EXPECT_EQ(s.kernels[1].ns, 250);
    EXPECT_EQ(s.kernels[2].name, "copy");
    EXPECT_EQ(s.kernels[3].name, "layer_tail");
}

// Kernels of two streams overlap: a gap is time when no kernel of any stream ran, whatever the
// order the records come in.
TEST(KernelSummary, IdleGapsAreWhereNoStreamRanAKernel) {
    std::vector<TimedRange> ranges(2);
    ranges[0].phase = Phase::Router;
    ranges[1].phase = Phase::Global;
    const std::vector<KernelRecord> kernels = {
        kernel("void late(int)", 500, 600, 1),   // global, after a gap of 250 (250 -> 500)
        kernel("void a(int)", 0, 100, 0),        // router, first: no gap before it
        kernel("void inside(int)", 60, 80, 1),   // global, inside a's time: no gap
        kernel("void b(int)", 50, 250, 0),       // router, overlaps a: no gap
        kernel("void after(int)", 650, 700, 0),  // router, after a gap of 50
    };
    const KernelSummary s = summarize_kernels(kernels, ranges);
    EXPECT_EQ(s.span_ns, 700);
    EXPECT_EQ(s.idle_ns, 300);
    ASSERT_EQ(s.phases.size(), 2u);
    EXPECT_EQ(s.phases[0].name, "router");
    EXPECT_EQ(s.phases[0].idle_before_ns, 50);
    EXPECT_EQ(s.phases[1].name, "global");
    EXPECT_EQ(s.phases[1].idle_before_ns, 250);
    // The summed durations count the overlapping time twice; the gaps do not.
    EXPECT_GT(s.idle_ns, s.span_ns - s.kernel_ns);

    // A record that ends before it begins is no time, busy or idle.
    const KernelSummary reversed = summarize_kernels(
        std::vector<KernelRecord>{kernel("void a(int)", 0, 10, 0), kernel("void b(int)", 20, 15, 0),
                                  kernel("void c(int)", 30, 40, 0)},
        ranges);
    EXPECT_EQ(reversed.kernel_ns, 20);
    EXPECT_EQ(reversed.idle_ns, 20);  // 10 -> 20 and 20 -> 30
}

// A gap between two kernels of one range is the range's own (launch gaps, or host work inside
// it); a gap between kernels of two ranges is a boundary's. Two ranges of one phase are two.
TEST(KernelSummary, IdleAcrossRangesIsBetweenKernelsOfTwoRanges) {
    std::vector<TimedRange> ranges(4);
    ranges[0].phase = Phase::Mlp;
    ranges[1].phase = Phase::Global;
    ranges[2].phase = Phase::Mlp;
    ranges[3].phase = Phase::Layer;
    const std::vector<KernelRecord> kernels = {
        kernel("void norm(int)", 0, 10, 0),       // mlp range 0 begins: first kernel, no gap
        kernel("void gemm(int)", 13, 50, 0),      // 3 within range 0
        kernel("void gemm(int)", 55, 90, 0),      // 5 within range 0
        kernel("void gather(int)", 190, 200, 1),  // 100 across: range 0 -> global range 1
        kernel("void gemm(int)", 201, 300, 1),    // 1 within range 1
        kernel("void norm(int)", 320, 330, 2),    // 20 across: range 1 -> mlp range 2
        kernel("void gemm(int)", 334, 400, 2),    // 4 within range 2
        kernel("void check(int)", 410, 420, 3),   // 10 across: into the enclosing layer range
        kernel("void gemm(int)", 450, 460, 2),    // 30 across: back into range 2
    };
    const KernelSummary s = summarize_kernels(kernels, ranges);
    ASSERT_EQ(s.phases.size(), 3u);
    expect_idle(s.phases[0], "global", 101, 100);
    expect_idle(s.phases[1], "mlp", 3 + 5 + 20 + 4 + 30, 20 + 30);
    EXPECT_EQ(s.phases[2].name, "layer");
    EXPECT_EQ(s.phases[2].idle_across_ranges_ns, 10);
    EXPECT_EQ(s.idle_ns, 173);
    EXPECT_EQ(s.idle_across_ranges_ns, 160);
}

// With two streams and records in any order, the kernel before a gap is the one whose end the
// gap follows, not the one that began last.
TEST(KernelSummary, IdleAcrossRangesFollowsTheKernelThatEndedLast) {
    std::vector<TimedRange> ranges(2);
    ranges[0].phase = Phase::Router;
    ranges[1].phase = Phase::Global;
    const std::vector<KernelRecord> kernels = {
        kernel("void late(int)", 500, 600, 1),  // 90 after d (router): across
        kernel("void d(int)", 400, 410, 0),     // 80 after c (global): across
        kernel("void inside(int)", 60, 80, 0),  // router, inside b's time: ends before b
        kernel("void a(int)", 0, 100, 0),       // router, first
        kernel("void c(int)", 300, 320, 1),     // 50 after b (global): within
        kernel("void b(int)", 50, 250, 1),      // global, overlaps a and ends last
    };
    const KernelSummary s = summarize_kernels(kernels, ranges);
    ASSERT_EQ(s.phases.size(), 2u);
    expect_idle(s.phases[0], "router", 80, 80);
    expect_idle(s.phases[1], "global", 50 + 90, 90);
    EXPECT_EQ(s.idle_ns, 220);
    EXPECT_EQ(s.idle_across_ranges_ns, 170);
}

TEST(KernelSummary, NoKernelsIsAnEmptySummary) {
    const KernelSummary s = summarize_kernels({}, {});
    EXPECT_EQ(s.calls, 0);
    EXPECT_EQ(s.kernel_ns, 0);
    EXPECT_EQ(s.span_ns, 0);
    EXPECT_EQ(s.idle_ns, 0);
    EXPECT_EQ(s.idle_across_ranges_ns, 0);
    EXPECT_TRUE(s.phases.empty());
    EXPECT_TRUE(s.kernels.empty());
}

ClockSample sample(std::int64_t t, std::uint32_t mhz, std::uint32_t mw, std::uint64_t reasons,
                   std::uint32_t celsius = 0) {
    return {t, mhz, mw, reasons, celsius};
}

TEST(GpuClocks, StatsOfSamples) {
    const std::vector<ClockSample> samples = {
        sample(0, 1980, 400000, 0, 55),
        sample(5, 1500, 700000, kClockReasonPowerCap, 74),
        sample(10, 1600, 690000, kClockReasonPowerCap | kClockReasonSoftwareThermal, 83),
        sample(15, 1755, 0, kClockReasonPowerBrake),  // neither power nor heat readable here
        sample(17, 1655, 680000, kClockReasonHardwareSlowdown),
        sample(20, 1410, 650000, kClockReasonIdle)};
    const ClockStats c = clock_stats(samples);
    EXPECT_EQ(c.samples, 6);
    EXPECT_EQ(c.median_mhz, 1655u);  // of six: the upper middle one
    EXPECT_EQ(c.min_mhz, 1410u);
    EXPECT_EQ(c.max_mhz, 1980u);
    // The median of the five readable powers (400, 650, 680, 690, 700 W).
    EXPECT_DOUBLE_EQ(c.median_watts, 680.0);
    EXPECT_DOUBLE_EQ(c.power_capped, 3.0 / 6.0);  // the software cap twice, the brake once
    EXPECT_DOUBLE_EQ(c.slowed, 2.0 / 6.0);        // heat once, a hardware slowdown once
    EXPECT_EQ(c.max_celsius, 83u);

    const ClockStats none = clock_stats({});
    EXPECT_EQ(none.samples, 0);
    EXPECT_EQ(none.median_mhz, 0u);
    EXPECT_DOUBLE_EQ(none.power_capped, 0.0);
    EXPECT_EQ(none.max_celsius, 0u);
}

TEST(GpuClocks, SamplesBelongToTheKernelRunningThenByShortName) {
    // Two calls of one kernel, a gap, another kernel; samples before, inside, between, after.
    const std::vector<KernelRecord> kernels = {
        kernel("void l2a::kernels::attention<1>(int)", 100, 200, -1), kernel("gemm", 200, 300, -1),
        kernel("void l2a::kernels::attention<1>(int)", 400, 500, -1)};
    const std::vector<ClockSample> samples = {
        sample(50, 1000, 0, 0),    // before every kernel
        sample(100, 1900, 0, 0),   // the first call's begin
        sample(199, 1800, 0, 0),   // the first call's last nanosecond
        sample(200, 1500, 0, 0),   // gemm's begin (the attention call has ended)
        sample(350, 1000, 0, 0),   // between gemm and the second call
        sample(450, 1700, 0, 0),   // the second call
        sample(500, 1000, 0, 0)};  // the second call's end: outside
    const std::map<std::string, ClockStats> by = clock_stats_by_kernel(kernels, samples);
    ASSERT_EQ(by.size(), 2u);
    const ClockStats& attention = by.at("attention<1>");
    EXPECT_EQ(attention.samples, 3);
    EXPECT_EQ(attention.median_mhz, 1800u);
    EXPECT_EQ(attention.min_mhz, 1700u);
    EXPECT_EQ(by.at("gemm").samples, 1);
    EXPECT_EQ(by.at("gemm").median_mhz, 1500u);
    EXPECT_TRUE(clock_stats_by_kernel({}, samples).empty());
}

// Against the stand-in NVML (fake_nvml.cpp): samples come every period on the sampler's thread,
// stamped by the caller's clock, with the library's clock, power, reasons and temperature; stop()
// ends it.
TEST(GpuClocks, SamplerTakesStampedSamplesUntilStopped) {
    const test::ScopedEnv nvml("L2A_NVML_LIBRARY", L2A_FAKE_NVML);
    std::atomic<std::int64_t> ticks{0};
    const auto started = std::chrono::steady_clock::now();
    ClockSampler sampler("0000:42:00.0", std::chrono::microseconds(2000),
                         [&] { return ticks.fetch_add(10) + 10; });
    ASSERT_TRUE(sampler.active()) << sampler.reason();
    EXPECT_EQ(sampler.reason(), "");
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    const std::vector<ClockSample> samples = sampler.stop();
    const auto elapsed = std::chrono::steady_clock::now() - started;
    // One at the start, then one per 2 ms that passed (a late thread catches up, never more).
    ASSERT_GE(samples.size(), 5u);
    EXPECT_LE(samples.size(), static_cast<std::size_t>(elapsed / std::chrono::milliseconds(2)) + 1);
    for (std::size_t i = 0; i < samples.size(); ++i) {
        EXPECT_EQ(samples[i].time_ns, static_cast<std::int64_t>(10 * (i + 1))) << i;
        EXPECT_GE(samples[i].sm_mhz, 1400u);
        EXPECT_LE(samples[i].sm_mhz, 1800u);
        EXPECT_EQ(samples[i].sm_mhz % 100, 0u);
        EXPECT_EQ(samples[i].power_mw, 650000u);
        EXPECT_EQ(samples[i].reasons, kClockReasonPowerCap);
        EXPECT_EQ(samples[i].celsius, 71u);
    }
    // The constructor's check read 1400; the samples continue the sequence from 1500.
    EXPECT_EQ(samples[0].sm_mhz, 1500u);
    EXPECT_EQ(samples[1].sm_mhz, 1600u);
    EXPECT_FALSE(sampler.active());
    EXPECT_TRUE(sampler.stop().empty());  // once
    const ClockStats c = clock_stats(samples);
    EXPECT_DOUBLE_EQ(c.power_capped, 1.0);
    EXPECT_DOUBLE_EQ(c.median_watts, 650.0);
    EXPECT_EQ(c.max_celsius, 71u);

    // A PCI bus id that library does not know: named, with the library's words for it.
    ClockSampler other("0000:43:00.0", std::chrono::microseconds(2000),
                       [] { return std::int64_t{0}; });
    EXPECT_FALSE(other.active());
    EXPECT_EQ(other.reason(),
              "NVML does not give the GPU at PCI bus id 0000:43:00.0: Not Found (6)");
}

// A library that is not there: the sampler never starts and names it.
TEST(GpuClocks, SamplerWithoutNvmlSaysSo) {
    const test::ScopedEnv nvml("L2A_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
    ClockSampler sampler("0000:42:00.0", std::chrono::microseconds(5000),
                         [] { return std::int64_t{0}; });
    EXPECT_FALSE(sampler.active());
    EXPECT_EQ(sampler.reason(), "NVML (/nonexistent/libnvidia-ml.so.1) is not installed");
}

// A GPU no NVML knows (or a machine without NVML): the sampler never starts and says why.
TEST(GpuClocks, SamplerOfAnUnknownGpuSaysWhyItDidNotStart) {
    ClockSampler sampler("0000:ff:1f.7", std::chrono::microseconds(5000),
                         [] { return std::int64_t{0}; });
    EXPECT_FALSE(sampler.active());
    EXPECT_FALSE(sampler.reason().empty());
    EXPECT_TRUE(sampler.stop().empty());
    // Nothing to name the GPU by, or nothing to stamp the samples with: never starts.
    ClockSampler unnamed("", std::chrono::microseconds(5000), [] { return std::int64_t{0}; });
    EXPECT_FALSE(unnamed.active());
    EXPECT_EQ(unnamed.reason(), "the GPU's PCI bus id is unknown");
    ClockSampler unstamped("0000:01:00.0", std::chrono::microseconds(5000), {});
    EXPECT_FALSE(unstamped.active());
    EXPECT_EQ(unstamped.reason(), "no clock to stamp samples");
}

}  // namespace
}  // namespace l2a
