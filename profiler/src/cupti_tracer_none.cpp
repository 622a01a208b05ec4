// Builds without CUPTI: the tracer never starts and says so.
#include "l2a/profiler/cupti_tracer.h"

namespace l2a {

struct KernelTracer::State {};

KernelTracer::KernelTracer(PrefillObserver* next)
    : next_(next), reason_("CUPTI not available in this build") {}

KernelTracer::~KernelTracer() = default;

bool KernelTracer::active() const { return false; }

const std::string& KernelTracer::reason() const { return reason_; }

void KernelTracer::sample_clocks(const std::string& /*pci_bus_id*/) {}

KernelTimeline KernelTracer::finish(std::span<const TimedRange> /*ranges*/) {
    return {{}, {}, "host timers only: " + reason_, {}, "not sampled: " + reason_};
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
}

void KernelTracer::on_range_end(std::string_view name) {
    if (next_) next_->on_range_end(name);
}

}  // namespace l2a
