// The CUPTI Activity-API tracer. Kernel, memcpy and memset records carry a CUPTI correlation id;
// with an external correlation id (the range index) pushed on the launching thread while a range
// is open, CUPTI emits an external-correlation record for every API call made inside the range,
// which maps the correlation id back to the range.
#include "l2a/profiler/cupti_tracer.h"

#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace l2a {
namespace {

// Large enough that a long run hands back few buffers; CUPTI allocates them on demand.
constexpr std::size_t kBufferBytes = std::size_t{8} << 20;
constexpr std::size_t kBufferAlign = 8;

struct RawKernel {
    std::string name;
    std::uint64_t start = 0, end = 0;
    std::uint32_t device = 0, stream = 0, correlation = 0;
};

struct RawMemoryOp {
    MemoryOpKind kind = MemoryOpKind::CopyOther;
    std::uint64_t bytes = 0;
    std::uint64_t start = 0, end = 0;
    std::uint32_t device = 0, stream = 0, correlation = 0;
};

struct Collector {
    std::vector<RawKernel> kernels;
    std::vector<RawMemoryOp> memory_ops;
    std::unordered_map<std::uint32_t, std::uint64_t> external;  // correlation id -> range index
    std::uint64_t dropped = 0;
};

// CUPTI's buffer callbacks are process-wide; they fill the collector of the active tracer. CUPTI
// may call them on its own thread.
std::mutex g_mutex;
Collector* g_collector = nullptr;
bool g_callbacks_registered = false;

constexpr CUpti_ActivityKind kKinds[] = {
    CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION,
    // External-correlation records are only emitted alongside API records: both layers, since
    // libraries launch through the runtime as well as straight through the driver.
    CUPTI_ACTIVITY_KIND_RUNTIME,
    CUPTI_ACTIVITY_KIND_DRIVER,
    CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
    CUPTI_ACTIVITY_KIND_MEMCPY,
    CUPTI_ACTIVITY_KIND_MEMSET,
};

std::string describe(CUptiResult result) {
    const char* text = nullptr;
    if (cuptiGetResultString(result, &text) != CUPTI_SUCCESS || text == nullptr) {
        return "CUPTI error " + std::to_string(static_cast<int>(result));
    }
    return text;
}

MemoryOpKind memory_kind(std::uint8_t copy_kind) {
    switch (copy_kind) {
        case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
            return MemoryOpKind::CopyHostToDevice;
        case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
            return MemoryOpKind::CopyDeviceToHost;
        case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
            return MemoryOpKind::CopyDeviceToDevice;
        default:
            return MemoryOpKind::CopyOther;
    }
}

void CUPTIAPI buffer_requested(std::uint8_t** buffer, std::size_t* size, std::size_t* max_records) {
    *buffer = static_cast<std::uint8_t*>(std::aligned_alloc(kBufferAlign, kBufferBytes));
    *size = *buffer ? kBufferBytes : 0;
    *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext context, std::uint32_t stream_id, std::uint8_t* buffer,
                               std::size_t /*size*/, std::size_t valid_size) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        Collector* c = g_collector;
        CUpti_Activity* record = nullptr;
        while (c && cuptiActivityGetNextRecord(buffer, valid_size, &record) == CUPTI_SUCCESS) {
            switch (record->kind) {
                case CUPTI_ACTIVITY_KIND_KERNEL:
                case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
                    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
                    c->kernels.push_back({k->name ? k->name : "<unnamed kernel>", k->start, k->end,
                                          k->deviceId, k->streamId, k->correlationId});
                    break;
                }
                case CUPTI_ACTIVITY_KIND_MEMCPY: {
                    const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
                    c->memory_ops.push_back({memory_kind(m->copyKind), m->bytes, m->start, m->end,
                                             m->deviceId, m->streamId, m->correlationId});
                    break;
                }
                case CUPTI_ACTIVITY_KIND_MEMSET: {
                    const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
                    c->memory_ops.push_back({MemoryOpKind::Set, m->bytes, m->start, m->end,
                                             m->deviceId, m->streamId, m->correlationId});
                    break;
                }
                case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: {
                    const auto* e =
                        reinterpret_cast<const CUpti_ActivityExternalCorrelation*>(record);
                    if (e->externalKind == CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0) {
                        c->external[e->correlationId] = e->externalId;
                    }
                    break;
                }
                default:
                    break;  // API records: only needed for the external correlation
            }
        }
        std::size_t dropped = 0;
        if (c && cuptiActivityGetNumDroppedRecords(context, stream_id, &dropped) == CUPTI_SUCCESS) {
            c->dropped += dropped;
        }
    }
    std::free(buffer);
}

std::string demangle(const std::string& name) {
    int status = 0;
    char* text = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
    if (status != 0 || text == nullptr) return name;
    std::string out(text);
    std::free(text);
    return out;
}

}  // namespace

struct KernelTracer::State {
    Collector collector;
    std::vector<std::uint64_t> anchors;  // CUPTI time at each range begin, in range order
    std::uint64_t next_range = 0;
    int open = 0;             // external ids pushed and not yet popped
    bool collecting = false;  // kinds enabled and the collector installed
    bool finished = false;
    std::unique_ptr<ClockSampler> clocks;
    std::string clock_reason = "not asked for";
};

namespace {

// Disables what was enabled, hands every buffer back and detaches the collector.
void stop(KernelTracer::State& s) {
    if (!s.collecting) return;
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    for (CUpti_ActivityKind kind : kKinds) cuptiActivityDisable(kind);
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_collector == &s.collector) g_collector = nullptr;
    s.collecting = false;
}

}  // namespace

KernelTracer::KernelTracer(PrefillObserver* next) : next_(next), state_(std::make_unique<State>()) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_collector) {
            reason_ = "another kernel tracer is running in this process";
            state_.reset();
            return;
        }
        if (!g_callbacks_registered) {
            const CUptiResult r =
                cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
            if (r != CUPTI_SUCCESS) {
                reason_ = "CUPTI could not start (" + describe(r) + ")";
                state_.reset();
                return;
            }
            g_callbacks_registered = true;
        }
        // Claimed now; enabling happens outside the lock, since CUPTI may hand back buffers
        // (which takes the lock) from inside its calls.
        g_collector = &state_->collector;
    }
    std::size_t enabled = 0;
    for (CUpti_ActivityKind kind : kKinds) {
        const CUptiResult r = cuptiActivityEnable(kind);
        if (r != CUPTI_SUCCESS) {
            reason_ = r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED
                          ? "CUPTI is in use by another profiler (" + describe(r) + ")"
                          : "CUPTI could not enable activity kind " +
                                std::to_string(static_cast<int>(kind)) + " (" + describe(r) + ")";
            for (std::size_t i = 0; i < enabled; ++i) cuptiActivityDisable(kKinds[i]);
            if (enabled > 0) cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
            std::lock_guard<std::mutex> lock(g_mutex);
            g_collector = nullptr;
            state_.reset();
            return;
        }
        ++enabled;
    }
    state_->collecting = true;
}

KernelTracer::~KernelTracer() {
    if (!state_) return;
    while (state_->open > 0) {
        std::uint64_t id = 0;
        cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &id);
        --state_->open;
    }
    stop(*state_);
}

bool KernelTracer::active() const { return state_ && state_->collecting; }

const std::string& KernelTracer::reason() const { return reason_; }

void KernelTracer::sample_clocks(const std::string& pci_bus_id) {
    if (!active() || state_->clocks) return;
    state_->clocks =
        std::make_unique<ClockSampler>(pci_bus_id, std::chrono::microseconds(5000), [] {
            std::uint64_t now = 0;
            cuptiGetTimestamp(&now);
            return static_cast<std::int64_t>(now);
        });
    state_->clock_reason = state_->clocks->reason();
}

void KernelTracer::on_layer_begin(int layer) {
    if (next_) next_->on_layer_begin(layer);
}

void KernelTracer::on_layer_end(int layer) {
    if (next_) next_->on_layer_end(layer);
}

void KernelTracer::on_routing(int layer, std::span<const float> logits,
                              std::span<const std::uint8_t> decisions) {
    if (next_) next_->on_routing(layer, logits, decisions);
}

void KernelTracer::on_range_begin(std::string_view name) {
    if (next_) next_->on_range_begin(name);
    // Last, so that the anchor is as close as possible to the host time the engine records.
    if (active()) {
        const std::uint64_t index = state_->next_range++;
        if (cuptiActivityPushExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0,
                                                   index) == CUPTI_SUCCESS) {
            ++state_->open;
        }
        std::uint64_t now = 0;
        cuptiGetTimestamp(&now);
        state_->anchors.push_back(now);
    }
}

void KernelTracer::on_range_end(std::string_view name) {
    if (active() && state_->open > 0) {
        std::uint64_t id = 0;
        cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &id);
        --state_->open;
    }
    if (next_) next_->on_range_end(name);
}

KernelTimeline KernelTracer::finish(std::span<const TimedRange> ranges) {
    KernelTimeline out;
    if (!state_) {
        out.source = "host timers only: " + reason_;
        return out;
    }
    if (state_->finished) {
        out.source = "host timers only: the trace was already collected";
        return out;
    }
    // The clock first: CUPTI's flush below can take tens of milliseconds of an idle GPU.
    std::vector<ClockSample> clocks;
    if (state_->clocks) {
        clocks = state_->clocks->stop();
        state_->clocks.reset();
    }
    out.clock_source = "not sampled: " + (state_->clock_reason.empty() ? std::string("no samples")
                                                                       : state_->clock_reason);
    stop(*state_);
    state_->finished = true;
    const std::size_t anchors = std::min(state_->anchors.size(), ranges.size());
    if (anchors == 0) {
        out.source = "host timers only: the run reported no ranges";
        out.clock_source = "not sampled: the run reported no ranges";
        return out;
    }
    Collector& c = state_->collector;
    if (c.dropped > 0) {
        reason_ = "CUPTI dropped " + std::to_string(c.dropped) + " records";
    }
    // A GPU time maps through the latest range begin before it: the CUPTI and host clocks are
    // tied at every range begin, so drift between them never accumulates over a long run.
    const std::vector<std::uint64_t>& a = state_->anchors;
    auto to_ns = [&](std::uint64_t t) -> std::int64_t {
        auto it = std::upper_bound(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(anchors), t);
        const std::size_t i = it == a.begin() ? 0 : static_cast<std::size_t>(it - a.begin()) - 1;
        return ranges[i].begin_ns +
               (static_cast<std::int64_t>(t) - static_cast<std::int64_t>(a[i]));
    };
    auto range_of = [&](std::uint32_t correlation) -> std::int64_t {
        auto it = c.external.find(correlation);
        if (it == c.external.end() || it->second >= ranges.size()) return -1;
        return static_cast<std::int64_t>(it->second);
    };

    auto duration = [](std::uint64_t start, std::uint64_t end) -> std::int64_t {
        return end > start ? static_cast<std::int64_t>(end - start) : 0;
    };
    std::map<std::string, std::string> names;  // mangled -> readable; a few hundred distinct
    out.kernels.reserve(c.kernels.size());
    for (const RawKernel& k : c.kernels) {
        auto [it, added] = names.try_emplace(k.name);
        if (added) it->second = demangle(k.name);
        const std::int64_t begin = to_ns(k.start);
        out.kernels.push_back({it->second, static_cast<std::int32_t>(k.stream),
                               static_cast<std::int32_t>(k.device), begin,
                               begin + duration(k.start, k.end), range_of(k.correlation)});
    }
    out.memory_ops.reserve(c.memory_ops.size());
    for (const RawMemoryOp& m : c.memory_ops) {
        const std::int64_t begin = to_ns(m.start);
        out.memory_ops.push_back({m.kind, static_cast<std::int64_t>(m.bytes),
                                  static_cast<std::int32_t>(m.stream),
                                  static_cast<std::int32_t>(m.device), begin,
                                  begin + duration(m.start, m.end), range_of(m.correlation)});
    }
    auto by_begin = [](const auto& x, const auto& y) { return x.begin_ns < y.begin_ns; };
    std::stable_sort(out.kernels.begin(), out.kernels.end(), by_begin);
    std::stable_sort(out.memory_ops.begin(), out.memory_ops.end(), by_begin);
    // Only the samples taken while the run went (not the host's set-up before its first range).
    std::int64_t run_begin = ranges.front().begin_ns;
    std::int64_t run_end = ranges.front().end_ns;
    for (const TimedRange& r : ranges) {
        run_begin = std::min(run_begin, r.begin_ns);
        run_end = std::max(run_end, r.end_ns);
    }
    for (ClockSample& sample : clocks) {
        sample.time_ns = to_ns(static_cast<std::uint64_t>(sample.time_ns));
        if (sample.time_ns >= run_begin && sample.time_ns <= run_end) out.clocks.push_back(sample);
    }
    if (!out.clocks.empty()) {
        out.clock_source = "nvml";
    } else if (!clocks.empty()) {
        out.clock_source = "not sampled: no sample fell inside the run";
    }
    c = Collector{};
    out.source = "cupti";
    return out;
}

}  // namespace l2a
