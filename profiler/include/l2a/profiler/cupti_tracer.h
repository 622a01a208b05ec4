// The GPU kernel tracer: records every kernel, memcpy and memset of a prefill run through the
// CUPTI Activity API and attributes each to the engine range that launched it. Free of LibTorch
// and of CUDA headers; builds without CUDA report that tracing is not available.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/observer.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/profiler/gpu_clocks.h"

namespace l2a {

// What a traced run produced, ready for Profile::kernels, memory_ops and timeline_source.
struct KernelTimeline {
    std::vector<KernelRecord> kernels;       // in order of their begin
    std::vector<MemoryOpRecord> memory_ops;  // in order of their begin
    std::string source;  // "cupti", or "host timers only: <why>" (then both lists are empty)
    // The GPU's clock while the run went (sample_clocks), times in ns since the run start.
    std::vector<ClockSample> clocks;
    std::string clock_source;  // "nvml", or "not sampled: <why>"
};

// A PrefillObserver decorator: pass it as PrefillHooks::observer for one run (it forwards every
// hook to `next`), then call finish() with the run's ranges. Tracing starts in the constructor;
// when CUPTI is missing, fails, or is held by another profiler (or another KernelTracer) the
// tracer stays inactive, the run is unaffected and finish() says why. Use it on the thread that
// runs the prefill; one active tracer per process.
class KernelTracer final : public PrefillObserver {
public:
    explicit KernelTracer(PrefillObserver* next = nullptr);
    ~KernelTracer() override;
    KernelTracer(const KernelTracer&) = delete;
    KernelTracer& operator=(const KernelTracer&) = delete;

    // True while records are being collected.
    bool active() const;
    // Why the tracer is not active ("" when it is).
    const std::string& reason() const;
    // Also samples the SM clock, power and clock-event reasons of the GPU at `pci_bus_id`
    // every 5 ms until finish(), on the tracer's clock (an active tracer only; once).
    void sample_clocks(const std::string& pci_bus_id);

    // Stops tracing, flushes CUPTI's buffers and converts the records: times to nanoseconds
    // since the run start (anchored on the ranges' host times), each record's range to an index
    // into `ranges` (the PrefillResult::ranges of the traced run; -1 outside every range).
    // Calling it again returns an empty timeline with the same source.
    KernelTimeline finish(std::span<const TimedRange> ranges);

    void on_layer_begin(int layer) override;
    void on_layer_end(int layer) override;
    void on_routing(int layer, std::span<const float> logits,
                    std::span<const std::uint8_t> decisions) override;
    void on_range_begin(std::string_view name) override;
    void on_range_end(std::string_view name) override;

    struct State;  // CUPTI side, defined by the implementation

private:
    PrefillObserver* next_;
    std::unique_ptr<State> state_;
    std::string reason_;
};

}  // namespace l2a
