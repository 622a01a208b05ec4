// What-if analysis: re-run a document with other routing options (pruned layers, threshold,
// policy) from the first layer they change, and compare quality, KV memory and time with the
// base run. The base's logits are never stored: its next-token distributions are recomputed
// from its final hidden state (LM head only) when comparing.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "l2a/engine/metrics.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_options.h"

namespace l2a {

// One run of a what-if: its options, its result (every layer's rows filled, including those
// taken from the base below start_layer), its checkpoints and its time.
struct WhatIfRun {
    RunOptions options;
    PrefillResult result;
    ResidualCheckpoints checkpoints;  // base: every layer and the final state; variant: final
    int start_layer = 0;              // the layer the run began at (0: a full run)
    // The wall time of this run's own computation: a full run for the base, the re-run from
    // start_layer for a variant. Not a time to first token (it includes the per-token loss
    // pass), and a variant's is not comparable with the base's: see measure_ttft_pair.
    double run_seconds = 0.0;
    // Variant: the base's time up to the end of the layers it reused (0 for a full run).
    double reused_base_seconds = 0.0;
    RunMetrics metrics;
    // Variant: the base final state its result's reference_kl was computed against.
    HiddenState kl_reference;
};

// The first layer whose computation differs between two option sets: 0 when anything that
// affects every layer differs (threshold, routing, seed, as_base, backend, chunk size), else the
// lowest layer pruned in one and not in the other; num_layers when none differs.
int first_changed_layer(const ModelConfig& config, const RunOptions& base,
                        const RunOptions& variant);

// The base run: a full prefill keeping the checkpoints entering the layers in `keep_layers`
// (nullptr: every layer, which suggest_prune needs; 4 * T * hidden bytes of host memory each)
// and the final state. A single what-if only needs first_changed_layer's.
WhatIfRun run_whatif_base(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks = {},
                          const std::vector<int>* keep_layers = nullptr);

// The variant: the base's rows below the layer it starts from, then run_prefill_from there with
// the base's checkpoint. It starts from the first changed layer, or, when the base did not keep
// that layer's state, from the nearest kept one below it (the layers in between run as in the
// base); start_layer says which. Throws l2a::Error when the options cannot run on the model, or
// when they change max_tokens or the device (a what-if keeps the document and the placement).
WhatIfRun run_whatif_variant(const Model& model, std::span<const std::int32_t> tokens,
                             const WhatIfRun& base, const RunOptions& variant,
                             const PrefillHooks& hooks = {});

// A per-layer timing model calibrated from the base run's host ranges. Layer l costs
// fixed[l] + global_coefficient[l] * W, where fixed is everything in the layer but its global
// phase (local, router, mlp, bookkeeping) and W = sum over routed tokens t of (t + 1), the
// number of keys their causal global attention reads. A layer with no routed token in the base
// takes the mean coefficient of the others. Calibrated on the base, it predicts the base's own
// wall time exactly.
struct TimingModel {
    double outside_seconds = 0.0;            // embed, LM head, everything outside the layers
    std::vector<double> fixed_seconds;       // [layers]
    std::vector<double> global_coefficient;  // [layers] seconds per key read
    // The part of the LM head's time spent on rows 0..T-2 (the per-token loss pass); 0 when the
    // base computed only the last row's logits.
    double loss_rows_seconds = 0.0;
    // The run's wall time as the base measured it (with its per-token loss pass, if any).
    double predict(std::span<const std::uint8_t> decisions, std::int64_t num_tokens) const;
    // Time to first token: the same without the loss rows of the LM head.
    double predict_ttft(std::span<const std::uint8_t> decisions, std::int64_t num_tokens) const {
        return predict(decisions, num_tokens) - loss_rows_seconds;
    }
};

TimingModel calibrate_timing(const WhatIfRun& base);

// Time to first token measured over repeated full prefills (every layer from the embedding,
// the last row's logits only): the same measurement for a base and a variant.
struct TtftMeasurement {
    std::vector<double> samples;  // seconds, in the order run; empty: not measured
    double median = 0.0;
    double min = 0.0;
    double max = 0.0;
    bool measured() const { return !samples.empty(); }
    // From samples (median of an even count: the mean of the middle two).
    static TtftMeasurement of(std::vector<double> samples);
};

// Times `repeats` full prefills of each option set, alternating base and variant so that a
// change in machine load falls on both, after one untimed warm-up run of each. `progress` gets
// (runs done, runs in all). Throws l2a::Error for repeats < 1 or options that cannot run.
std::pair<TtftMeasurement, TtftMeasurement> measure_ttft_pair(
    const Model& model, std::span<const std::int32_t> tokens, const RunOptions& base,
    const RunOptions& variant, int repeats, const PrefillHooks& hooks = {},
    const std::function<void(std::int64_t, std::int64_t)>& progress = {});

struct WhatIfComparison {
    std::int64_t num_tokens = 0;
    int start_layer = 0;
    std::vector<double> delta_nll;  // [T] variant - base; NaN at token 0
    double base_mean_nll = 0.0;
    double variant_mean_nll = 0.0;
    double delta_mean_nll = 0.0;
    double base_perplexity = 0.0;
    double variant_perplexity = 0.0;
    double delta_perplexity = 0.0;
    // KL(base || variant) of the next-token distributions of rows 0..T-1, in nats.
    std::vector<double> kl;  // [T]
    double kl_mean = 0.0;
    double kl_max = 0.0;
    std::int64_t kl_max_token = 0;  // the row with the largest KL
    double top1_agreement = 0.0;    // share of rows whose argmax agrees
    std::int64_t base_kv_bytes = 0;
    std::int64_t variant_kv_bytes = 0;
    std::int64_t kv_bytes_without_l2a = 0;
    double base_kv_relative = 0.0;  // base_kv_bytes / kv_bytes_without_l2a
    double variant_kv_relative = 0.0;
    std::vector<double> base_global_fraction;     // [layers]
    std::vector<double> variant_global_fraction;  // [layers]; 0 in pruned layers
    // Predicted by the base's timing model (calibrate_timing): always filled, never measured.
    double base_ttft_predicted = 0.0;
    double variant_ttft_predicted = 0.0;
    // Measured by measure_ttft_pair when the caller asks for it; empty otherwise.
    TtftMeasurement base_ttft;
    TtftMeasurement variant_ttft;
};

// Both runs must be of `tokens` on `model`. Throws l2a::Error when a run lacks its final state.
// The next-token distributions are compared on the model's device, only for the tokens whose
// final states differ; `check` (when set) runs between blocks of them (it throws to cancel).
WhatIfComparison compare(const Model& model, std::span<const std::int32_t> tokens,
                         const WhatIfRun& base, const WhatIfRun& variant,
                         const std::function<void()>& check = {});

struct PruneSuggestion {
    PruningPlan layers;           // the set to prune, on top of the base's own pruning
    PruningPlan plan;             // the whole plan (base's pruned layers and the new ones)
    double delta_mean_nll = 0.0;  // of the whole plan against the base
    std::int64_t kv_bytes_saved = 0;
    double seconds_saved = 0.0;  // predicted by the base's timing model
    std::int64_t runs = 0;       // variant runs tried
};

// Greedy by measured impact: try pruning each remaining L2A layer, take the one with the
// smallest mean ΔNLL, and repeat while the total stays within `max_dnll` (nats/token). Throws
// l2a::Error for a plain model, or a budget that is negative or not a number. `progress` gets
// (runs done, runs at most) and may be empty.
PruneSuggestion suggest_prune(const Model& model, std::span<const std::int32_t> tokens,
                              const WhatIfRun& base, double max_dnll,
                              const std::function<void(std::int64_t, std::int64_t)>& progress = {},
                              const PrefillHooks& hooks = {});

}  // namespace l2a
