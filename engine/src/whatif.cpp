#include "l2a/engine/whatif.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>

#include "device_runtime.h"
#include "hidden_state.h"
#include "l2a/engine/error.h"
#include "l2a/engine/tensor_parallel.h"
#include "layer_ops.h"
#include "model_impl.h"

namespace l2a {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Keys read by the causal global attention of the routed tokens of one layer.
double global_work(std::span<const std::uint8_t> decisions) {
    double work = 0.0;
    for (std::size_t t = 0; t < decisions.size(); ++t) {
        if (decisions[t]) work += static_cast<double>(t + 1);
    }
    return work;
}

// Per token, KL(base || variant) of the two runs' next-token distributions from their final
// states [T, d], computed on the model's device (only a number per token comes back), and how
// many tokens' top next tokens agree. Rows whose final states are equal (a change that did not
// reach them) are exactly 0 and agree without being computed. fp32 on a GPU; fp64 on the CPU,
// as the host computation this replaced.
struct NextTokenComparison {
    std::vector<double> kl;  // [T]
    std::int64_t agree = 0;
};

NextTokenComparison next_token_kl(const Model& model, const HiddenState& base_final,
                                  const HiddenState& variant_final, std::int64_t T,
                                  const std::function<void()>& check) {
    const Model::Impl& m = model.impl();
    const std::int64_t d = m.config.hidden_size;
    NextTokenComparison out;
    out.kl.assign(static_cast<std::size_t>(T), 0.0);
    out.agree = T;
    if (T == 0) return out;
    at::InferenceMode inference;
    try {
        // Both states where the runs kept them (the GPU for a CUDA run): only the indices of the
        // rows that differ and a number per such row come back to the host.
        const at::Tensor base = state_tensor(base_final).view({T, d}).to(m.device);
        const at::Tensor variant = state_tensor(variant_final).view({T, d}).to(m.device);
        const at::Tensor changed = at::ne(base, variant).any(1).nonzero().flatten();  // int64
        const std::int64_t n = changed.numel();
        if (n == 0) return out;
        const bool cpu = m.device.is_cpu();
        // Rows per block: the logits of a block are [rows, vocab] fp32 (fp64 on the CPU) twice.
        const std::int64_t block = cpu ? 64 : 2048;
        const at::ScalarType math = cpu ? at::kDouble : at::kFloat;
        const double eps = m.config.rms_norm_eps;
        std::vector<double> kl(static_cast<std::size_t>(n));
        std::vector<std::uint8_t> agree(static_cast<std::size_t>(n));
        for (std::int64_t r0 = 0; r0 < n; r0 += block) {
            if (check) check();
            const std::int64_t rows = std::min(block, n - r0);
            const at::Tensor index = changed.narrow(0, r0, rows);
            auto logits_of = [&](const at::Tensor& state) {
                const at::Tensor x = state.index_select(0, index).to(m.dtype);
                return head_logits(m, norm_in_blocks(x, m.final_norm, eps, m.dtype, rows));
            };
            const RowComparison rows_compared =
                compare_next_token_rows(logits_of(base), logits_of(variant), math);
            const at::Tensor row_kl = rows_compared.kl.cpu();
            const at::Tensor same_top = rows_compared.same_top.to(at::kByte).cpu();
            std::copy_n(row_kl.data_ptr<double>(), rows, kl.begin() + r0);
            std::copy_n(same_top.data_ptr<std::uint8_t>(), rows, agree.begin() + r0);
        }
        const at::Tensor rows_changed = changed.cpu();
        const std::int64_t* at_row = rows_changed.data_ptr<std::int64_t>();
        for (std::int64_t i = 0; i < n; ++i) {
            const auto k = static_cast<std::size_t>(i);
            out.kl[static_cast<std::size_t>(at_row[i])] = kl[k];
            if (!agree[k]) --out.agree;
        }
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        fail("", "LibTorch failed while comparing the what-if's next-token distributions: " +
                     what.substr(0, what.find('\n')));
    }
    return out;
}

RunMetrics metrics_of(const Model& model, const RunOptions& options, const PrefillResult& result) {
    return compute_metrics(whole_config(model), options, result.num_tokens, result.decisions,
                           result.token_nll);
}

void require_same_tokens(std::span<const std::int32_t> tokens, const WhatIfRun& run,
                         const char* which) {
    if (run.result.num_tokens != static_cast<std::int64_t>(tokens.size())) {
        fail("", std::string("what-if: the ") + which + " run has " +
                     std::to_string(run.result.num_tokens) + " tokens, the input " +
                     std::to_string(tokens.size()));
    }
}

}  // namespace

int first_changed_layer(const ModelConfig& config, const RunOptions& base,
                        const RunOptions& variant) {
    const bool random =
        base.routing.kind == RoutingKind::Random || variant.routing.kind == RoutingKind::Random;
    if (base.threshold != variant.threshold || !(base.routing == variant.routing) ||
        (random && base.seed != variant.seed) || base.as_base != variant.as_base ||
        base.backend != variant.backend || base.chunk_size != variant.chunk_size) {
        return 0;
    }
    std::vector<int> changed;
    std::set_symmetric_difference(base.prune.begin(), base.prune.end(), variant.prune.begin(),
                                  variant.prune.end(), std::back_inserter(changed));
    if (changed.empty()) return static_cast<int>(config.num_hidden_layers);
    return std::max(0, *std::min_element(changed.begin(), changed.end()));
}

WhatIfRun run_whatif_base(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks,
                          const std::vector<int>* keep_layers) {
    WhatIfRun run;
    run.options = options;
    run.checkpoints.every_layer = keep_layers == nullptr;
    if (keep_layers) run.checkpoints.layers = *keep_layers;
    PrefillHooks with_checkpoints = hooks;
    with_checkpoints.checkpoints = &run.checkpoints;
    run.result = run_prefill(model, tokens, options, with_checkpoints);
    run.start_layer = 0;
    run.run_seconds = run.result.wall_seconds;
    run.metrics = metrics_of(model, options, run.result);
    return run;
}

WhatIfRun run_whatif_variant(const Model& model, std::span<const std::int32_t> tokens,
                             const WhatIfRun& base, const RunOptions& variant,
                             const PrefillHooks& hooks) {
    require_same_tokens(tokens, base, "base");
    if (variant.max_tokens != base.options.max_tokens && variant.max_tokens != 0 &&
        variant.max_tokens < static_cast<std::int64_t>(tokens.size())) {
        fail("", "what-if: --max-tokens cannot change (the variant runs the base's tokens)");
    }
    if (canonical_device(variant.device) != canonical_device(base.options.device)) {
        fail("", "what-if: the variant runs on " + variant.device + ", the base on " +
                     base.options.device + " (a what-if keeps the device)");
    }
    const ModelConfig& config = model.config();
    const std::int64_t L = config.num_hidden_layers;
    const auto T = static_cast<std::int64_t>(tokens.size());
    const int changed = first_changed_layer(config, base.options, variant);
    // The variant starts from the kept state nearest below its first changed layer: the layers
    // in between run exactly as in the base.
    int start = changed;
    const auto kept = [&](int layer) {
        const auto l = static_cast<std::size_t>(layer);
        return l < base.checkpoints.entering.size() && !base.checkpoints.entering[l].empty();
    };
    if (changed >= L && base.checkpoints.final_hidden.empty()) start = static_cast<int>(L) - 1;
    while (start >= 0 && start < L && !kept(start)) --start;
    if (start < 0) {
        fail("", "what-if: the base run kept no checkpoint at or below layer " +
                     std::to_string(changed));
    }
    const HiddenState& hidden = start < L
                                    ? base.checkpoints.entering[static_cast<std::size_t>(start)]
                                    : base.checkpoints.final_hidden;

    WhatIfRun run;
    run.options = variant;
    run.start_layer = start;
    PrefillHooks with_checkpoints = hooks;
    with_checkpoints.checkpoints = &run.checkpoints;
    // The LM head pass compares the next-token distributions with the base's as it goes.
    with_checkpoints.reference_final = &base.checkpoints.final_hidden;
    // and takes the base's loss where the final state is the base's.
    if (base.options.token_nll && variant.token_nll) {
        with_checkpoints.reference_nll = base.result.token_nll;
    }
    run.result = run_prefill_from(model, tokens, variant, start, hidden, with_checkpoints);
    if (!run.result.reference_kl.empty()) run.kl_reference = base.checkpoints.final_hidden;
    // The layers below the start ran exactly as in the base.
    const auto below = static_cast<std::size_t>(start) * static_cast<std::size_t>(T);
    std::copy_n(base.result.router_logits.begin(), below, run.result.router_logits.begin());
    std::copy_n(base.result.decisions.begin(), below, run.result.decisions.begin());

    // The base's time up to the end of the last stage the variant reused.
    std::int64_t reused_ns = 0;
    for (const TimedRange& range : base.result.ranges) {
        if (range.depth != 0) continue;
        if (range.phase == Phase::Embed || (range.phase == Phase::Layer && range.layer < start)) {
            reused_ns = std::max(reused_ns, range.end_ns);
        }
    }
    run.reused_base_seconds = static_cast<double>(reused_ns) * 1e-9;
    run.run_seconds = run.result.wall_seconds;
    run.metrics = metrics_of(model, variant, run.result);
    return run;
}

double TimingModel::predict(std::span<const std::uint8_t> decisions,
                            std::int64_t num_tokens) const {
    double seconds = outside_seconds;
    const auto T = static_cast<std::size_t>(num_tokens);
    for (std::size_t l = 0; l < fixed_seconds.size(); ++l) {
        seconds += fixed_seconds[l];
        if ((l + 1) * T <= decisions.size()) {
            seconds += global_coefficient[l] * global_work(decisions.subspan(l * T, T));
        }
    }
    return seconds;
}

TimingModel calibrate_timing(const WhatIfRun& base) {
    const PrefillResult& r = base.result;
    const auto L = static_cast<std::size_t>(r.num_layers);
    const auto T = static_cast<std::size_t>(r.num_tokens);
    std::vector<double> layer_seconds(L, 0.0);
    std::vector<double> global_seconds(L, 0.0);
    for (const TimedRange& range : r.ranges) {
        const double seconds = static_cast<double>(range.end_ns - range.begin_ns) * 1e-9;
        if (range.layer < 0 || static_cast<std::size_t>(range.layer) >= L) continue;
        const auto layer = static_cast<std::size_t>(range.layer);
        if (range.phase == Phase::Layer) layer_seconds[layer] += seconds;
        if (range.phase == Phase::Global) global_seconds[layer] += seconds;
    }
    TimingModel model;
    model.fixed_seconds.resize(L);
    model.global_coefficient.assign(L, kNaN);
    double inside = 0.0;
    double coefficient_sum = 0.0;
    int calibrated = 0;
    for (std::size_t l = 0; l < L; ++l) {
        inside += layer_seconds[l];
        model.fixed_seconds[l] = layer_seconds[l] - global_seconds[l];
        const double work =
            (l + 1) * T <= r.decisions.size()
                ? global_work(std::span<const std::uint8_t>(r.decisions).subspan(l * T, T))
                : 0.0;
        if (work > 0) {
            model.global_coefficient[l] = global_seconds[l] / work;
            coefficient_sum += model.global_coefficient[l];
            ++calibrated;
        }
    }
    const double fallback = calibrated > 0 ? coefficient_sum / calibrated : 0.0;
    for (double& k : model.global_coefficient) {
        if (std::isnan(k)) k = fallback;
    }
    model.outside_seconds = r.wall_seconds - inside;
    if (base.options.token_nll && T > 1) {
        double head = 0.0;
        for (const TimedRange& range : r.ranges) {
            if (range.depth == 0 && range.phase == Phase::LmHead) {
                head += static_cast<double>(range.end_ns - range.begin_ns) * 1e-9;
            }
        }
        model.loss_rows_seconds = head * static_cast<double>(T - 1) / static_cast<double>(T);
    }
    return model;
}

WhatIfComparison compare(const Model& model, std::span<const std::int32_t> tokens,
                         const WhatIfRun& base, const WhatIfRun& variant,
                         const std::function<void()>& check) {
    require_same_tokens(tokens, base, "base");
    require_same_tokens(tokens, variant, "variant");
    const auto T = static_cast<std::int64_t>(tokens.size());
    const std::int64_t d = model.config().hidden_size;
    for (const WhatIfRun* run : {&base, &variant}) {
        if (run->checkpoints.final_hidden.size() != static_cast<std::size_t>(T * d)) {
            fail("", std::string("what-if: the ") + (run == &base ? "base" : "variant") +
                         " run kept no final hidden state to compare");
        }
    }

    WhatIfComparison c;
    c.num_tokens = T;
    c.start_layer = variant.start_layer;
    c.delta_nll.assign(static_cast<std::size_t>(T), kNaN);
    for (std::int64_t t = 0; t < T; ++t) {
        const auto i = static_cast<std::size_t>(t);
        if (i < base.result.token_nll.size() && i < variant.result.token_nll.size()) {
            c.delta_nll[i] = static_cast<double>(variant.result.token_nll[i]) -
                             static_cast<double>(base.result.token_nll[i]);
        }
    }
    c.base_mean_nll = base.metrics.mean_nll;
    c.variant_mean_nll = variant.metrics.mean_nll;
    c.delta_mean_nll = c.variant_mean_nll - c.base_mean_nll;
    c.base_perplexity = base.metrics.perplexity;
    c.variant_perplexity = variant.metrics.perplexity;
    c.delta_perplexity = c.variant_perplexity - c.base_perplexity;

    // Next-token distributions of both runs from their final states, on the model's device.
    NextTokenComparison next;
    if (variant.result.reference_kl.size() == static_cast<std::size_t>(T) &&
        !variant.kl_reference.empty() &&
        variant.kl_reference.impl() == base.checkpoints.final_hidden.impl()) {
        // The variant's LM head pass compared them already.
        next.kl = variant.result.reference_kl;
        next.agree = variant.result.reference_top1_agree;
    } else {
        next = next_token_kl(model, base.checkpoints.final_hidden, variant.checkpoints.final_hidden,
                             T, check);
    }
    c.kl = std::move(next.kl);
    const std::int64_t agree = next.agree;
    double kl_sum = 0.0;
    for (std::int64_t t = 0; t < T; ++t) {
        const double kl = c.kl[static_cast<std::size_t>(t)];
        kl_sum += kl;
        if (kl > c.kl_max) {
            c.kl_max = kl;
            c.kl_max_token = t;
        }
    }
    c.kl_mean = T > 0 ? kl_sum / static_cast<double>(T) : 0.0;
    c.top1_agreement = T > 0 ? static_cast<double>(agree) / static_cast<double>(T) : 0.0;

    c.base_kv_bytes = base.metrics.kv_bytes_total;
    c.variant_kv_bytes = variant.metrics.kv_bytes_total;
    c.kv_bytes_without_l2a = base.metrics.kv_bytes_without_l2a;
    if (c.kv_bytes_without_l2a > 0) {
        c.base_kv_relative =
            static_cast<double>(c.base_kv_bytes) / static_cast<double>(c.kv_bytes_without_l2a);
        c.variant_kv_relative =
            static_cast<double>(c.variant_kv_bytes) / static_cast<double>(c.kv_bytes_without_l2a);
    }
    c.base_global_fraction = base.metrics.global_fraction;
    c.variant_global_fraction = variant.metrics.global_fraction;

    const TimingModel timing = calibrate_timing(base);
    c.base_ttft_predicted = timing.predict_ttft(base.result.decisions, T);
    c.variant_ttft_predicted = timing.predict_ttft(variant.result.decisions, T);
    return c;
}

TtftMeasurement TtftMeasurement::of(std::vector<double> samples) {
    TtftMeasurement m;
    m.samples = std::move(samples);
    if (m.samples.empty()) return m;
    std::vector<double> sorted = m.samples;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t n = sorted.size();
    m.median = n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    m.min = sorted.front();
    m.max = sorted.back();
    return m;
}

std::pair<TtftMeasurement, TtftMeasurement> measure_ttft_pair(
    const Model& model, std::span<const std::int32_t> tokens, const RunOptions& base,
    const RunOptions& variant, int repeats, const PrefillHooks& hooks,
    const std::function<void(std::int64_t, std::int64_t)>& progress) {
    if (repeats < 1) {
        fail("", "what-if: time to first token needs at least one run (got " +
                     std::to_string(repeats) + ")");
    }
    // Only what time to first token needs: every layer, the last row's logits.
    RunOptions options[2] = {base, variant};
    for (RunOptions& o : options) o.token_nll = false;
    PrefillHooks quiet;  // no per-run progress or checkpoints; cancellation still applies
    quiet.cancel = hooks.cancel;
    quiet.group = hooks.group;  // a tensor-parallel run stays one
    const std::int64_t total = 2 * (static_cast<std::int64_t>(repeats) + 1);
    std::int64_t done = 0;
    std::vector<double> seconds[2];
    for (int round = 0; round <= repeats; ++round) {  // round 0: warm-up, not timed
        for (int which = 0; which < 2; ++which) {
            const PrefillResult r = run_prefill(model, tokens, options[which], quiet);
            if (round > 0) seconds[which].push_back(r.wall_seconds);
            if (progress) progress(++done, total);
        }
    }
    return {TtftMeasurement::of(std::move(seconds[0])), TtftMeasurement::of(std::move(seconds[1]))};
}

PruneSuggestion suggest_prune(const Model& model, std::span<const std::int32_t> tokens,
                              const WhatIfRun& base, double max_dnll,
                              const std::function<void(std::int64_t, std::int64_t)>& progress,
                              const PrefillHooks& hooks) {
    const ModelConfig& config = model.config();
    if (!config.is_l2a() || base.options.as_base) {
        fail("", "suggest-prune: " + model.summary().path +
                     " runs without L2A layers here, so there is no global attention to prune");
    }
    if (!(max_dnll >= 0.0) || !std::isfinite(max_dnll)) {
        fail("", "suggest-prune: the budget " + std::to_string(max_dnll) +
                     " is not a non-negative number of nats per token");
    }
    if (!std::isfinite(base.metrics.mean_nll)) {
        fail("",
             "suggest-prune: the base run has no NLL to compare (it needs at least two tokens "
             "and the per-token NLL)");
    }
    PruneSuggestion s;
    s.plan = base.options.prune;
    std::vector<int> remaining;
    for (int l = 0; l < static_cast<int>(config.num_hidden_layers); ++l) {
        if (!std::binary_search(s.plan.begin(), s.plan.end(), l)) remaining.push_back(l);
    }
    const auto n = static_cast<std::int64_t>(remaining.size());
    const std::int64_t most = n * (n + 1) / 2;
    std::vector<std::uint8_t> chosen_decisions;
    std::int64_t chosen_kv = base.metrics.kv_bytes_total;
    while (!remaining.empty()) {
        double best = std::numeric_limits<double>::infinity();
        std::size_t best_index = 0;
        std::vector<std::uint8_t> best_decisions;
        std::int64_t best_kv = 0;
        for (std::size_t i = 0; i < remaining.size(); ++i) {
            RunOptions options = base.options;
            options.prune = s.plan;
            options.prune.insert(
                std::upper_bound(options.prune.begin(), options.prune.end(), remaining[i]),
                remaining[i]);
            const WhatIfRun variant = run_whatif_variant(model, tokens, base, options, hooks);
            ++s.runs;
            if (progress) progress(s.runs, most);
            const double dnll = variant.metrics.mean_nll - base.metrics.mean_nll;
            // Ties go to the lower layer (visited first).
            if (dnll < best) {
                best = dnll;
                best_index = i;
                best_decisions = variant.result.decisions;
                best_kv = variant.metrics.kv_bytes_total;
            }
        }
        if (!(best <= max_dnll)) break;
        const int layer = remaining[best_index];
        s.layers.insert(std::upper_bound(s.layers.begin(), s.layers.end(), layer), layer);
        s.plan.insert(std::upper_bound(s.plan.begin(), s.plan.end(), layer), layer);
        remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(best_index));
        s.delta_mean_nll = best;
        chosen_decisions = std::move(best_decisions);
        chosen_kv = best_kv;
    }
    s.kv_bytes_saved = base.metrics.kv_bytes_total - chosen_kv;
    if (!s.layers.empty()) {
        const TimingModel timing = calibrate_timing(base);
        const auto T = static_cast<std::int64_t>(tokens.size());
        s.seconds_saved =
            timing.predict(base.result.decisions, T) - timing.predict(chosen_decisions, T);
    }
    return s;
}

}  // namespace l2a
