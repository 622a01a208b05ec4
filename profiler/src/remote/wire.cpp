#include "wire.h"

#include <vector>

#include "l2a/engine/error.h"

namespace l2a::wire {

void put(const ModelSummary& from, remote::ModelSummary& to) {
    to.set_path(from.path);
    to.set_model_type(from.model_type);
    to.set_num_layers(from.num_layers);
    to.set_hidden_size(from.hidden_size);
    to.set_intermediate_size(from.intermediate_size);
    to.set_num_heads(from.num_heads);
    to.set_num_kv_heads(from.num_kv_heads);
    to.set_head_dim(from.head_dim);
    to.set_vocab_size(from.vocab_size);
    to.set_parameter_count(from.parameter_count);
    to.set_is_l2a(from.is_l2a);
    to.set_untrained(from.untrained);
    to.set_sliding_window(from.sliding_window);
    to.set_sigmoid_temp(from.sigmoid_temp);
    to.set_sigmoid_threshold(from.sigmoid_threshold);
    to.set_router_input(from.router_input);
    to.set_config_hash(from.config_hash);
    to.set_weight_bytes(from.weight_bytes);
}

ModelSummary get(const remote::ModelSummary& from) {
    ModelSummary s;
    s.path = from.path();
    s.model_type = from.model_type();
    s.num_layers = from.num_layers();
    s.hidden_size = from.hidden_size();
    s.intermediate_size = from.intermediate_size();
    s.num_heads = from.num_heads();
    s.num_kv_heads = from.num_kv_heads();
    s.head_dim = from.head_dim();
    s.vocab_size = from.vocab_size();
    s.parameter_count = from.parameter_count();
    s.is_l2a = from.is_l2a();
    s.untrained = from.untrained();
    s.sliding_window = from.sliding_window();
    s.sigmoid_temp = from.sigmoid_temp();
    s.sigmoid_threshold = from.sigmoid_threshold();
    s.router_input = from.router_input();
    s.config_hash = from.config_hash();
    s.weight_bytes = from.weight_bytes();
    return s;
}

void put(const RunReport& from, remote::RunReport& to) {
    to.set_dtype(from.dtype);
    to.set_threads(from.threads);
    to.set_max_positions(from.max_positions);
    to.set_requested_max_tokens(from.requested_max_tokens);
    to.set_cut_by(from.cut_by);
    to.set_beyond_context(from.beyond_context);
    to.set_counted_all(from.counted_all);
    to.set_file_bytes(from.file_bytes);
    to.set_bytes_read(from.bytes_read);
}

RunReport get(const remote::RunReport& from) {
    RunReport r;
    r.dtype = from.dtype();
    r.threads = from.threads();
    r.max_positions = from.max_positions();
    r.requested_max_tokens = from.requested_max_tokens();
    r.cut_by = from.cut_by();
    r.beyond_context = from.beyond_context();
    r.counted_all = from.counted_all();
    r.file_bytes = from.file_bytes();
    r.bytes_read = from.bytes_read();
    return r;
}

void put(const TtftMeasurement& from, remote::Ttft& to) {
    fill(*to.mutable_samples(), from.samples);
}

TtftMeasurement get(const remote::Ttft& from) {
    if (from.samples().empty()) return {};
    return TtftMeasurement::of(vec<double>(from.samples()));
}

void put(const WhatIfComparison& from, remote::Comparison& to) {
    to.set_num_tokens(from.num_tokens);
    to.set_start_layer(from.start_layer);
    fill(*to.mutable_delta_nll(), from.delta_nll);
    to.set_base_mean_nll(from.base_mean_nll);
    to.set_variant_mean_nll(from.variant_mean_nll);
    to.set_delta_mean_nll(from.delta_mean_nll);
    to.set_base_perplexity(from.base_perplexity);
    to.set_variant_perplexity(from.variant_perplexity);
    to.set_delta_perplexity(from.delta_perplexity);
    fill(*to.mutable_kl(), from.kl);
    to.set_kl_mean(from.kl_mean);
    to.set_kl_max(from.kl_max);
    to.set_kl_max_token(from.kl_max_token);
    to.set_top1_agreement(from.top1_agreement);
    to.set_base_kv_bytes(from.base_kv_bytes);
    to.set_variant_kv_bytes(from.variant_kv_bytes);
    to.set_kv_bytes_without_l2a(from.kv_bytes_without_l2a);
    to.set_base_kv_relative(from.base_kv_relative);
    to.set_variant_kv_relative(from.variant_kv_relative);
    fill(*to.mutable_base_global_fraction(), from.base_global_fraction);
    fill(*to.mutable_variant_global_fraction(), from.variant_global_fraction);
    to.set_base_ttft_predicted(from.base_ttft_predicted);
    to.set_variant_ttft_predicted(from.variant_ttft_predicted);
    put(from.base_ttft, *to.mutable_base_ttft());
    put(from.variant_ttft, *to.mutable_variant_ttft());
}

WhatIfComparison get(const remote::Comparison& from) {
    WhatIfComparison c;
    c.num_tokens = from.num_tokens();
    c.start_layer = from.start_layer();
    c.delta_nll = vec<double>(from.delta_nll());
    c.base_mean_nll = from.base_mean_nll();
    c.variant_mean_nll = from.variant_mean_nll();
    c.delta_mean_nll = from.delta_mean_nll();
    c.base_perplexity = from.base_perplexity();
    c.variant_perplexity = from.variant_perplexity();
    c.delta_perplexity = from.delta_perplexity();
    c.kl = vec<double>(from.kl());
    c.kl_mean = from.kl_mean();
    c.kl_max = from.kl_max();
    c.kl_max_token = from.kl_max_token();
    c.top1_agreement = from.top1_agreement();
    c.base_kv_bytes = from.base_kv_bytes();
    c.variant_kv_bytes = from.variant_kv_bytes();
    c.kv_bytes_without_l2a = from.kv_bytes_without_l2a();
    c.base_kv_relative = from.base_kv_relative();
    c.variant_kv_relative = from.variant_kv_relative();
    c.base_global_fraction = vec<double>(from.base_global_fraction());
    c.variant_global_fraction = vec<double>(from.variant_global_fraction());
    c.base_ttft_predicted = from.base_ttft_predicted();
    c.variant_ttft_predicted = from.variant_ttft_predicted();
    c.base_ttft = get(from.base_ttft());
    c.variant_ttft = get(from.variant_ttft());
    return c;
}

void put(const PruneSuggestion& from, remote::PruneSuggestion& to) {
    fill(*to.mutable_layers(), from.layers);
    fill(*to.mutable_plan(), from.plan);
    to.set_delta_mean_nll(from.delta_mean_nll);
    to.set_kv_bytes_saved(from.kv_bytes_saved);
    to.set_seconds_saved(from.seconds_saved);
    to.set_runs(from.runs);
}

PruneSuggestion get(const remote::PruneSuggestion& from) {
    PruneSuggestion s;
    s.layers = vec<int>(from.layers());
    s.plan = vec<int>(from.plan());
    s.delta_mean_nll = from.delta_mean_nll();
    s.kv_bytes_saved = from.kv_bytes_saved();
    s.seconds_saved = from.seconds_saved();
    s.runs = from.runs();
    return s;
}

void put(const StudyExplanation& from, remote::Explained& to) {
    const AttentionLens& l = from.lens;
    to.set_token(l.token);
    to.set_layer(l.layer);
    to.set_window(l.window);
    to.set_heads(l.heads);
    fill(*to.mutable_weights(), l.weights);
    fill(*to.mutable_mean_weights(), l.mean_weights);
    fill(*to.mutable_local_weights(), l.local_weights);
    fill(*to.mutable_head_distant_mass(), l.head_distant_mass);
    to.set_distant_mass(l.distant_mass);
    to.set_router_logit(from.router_logit);
    to.set_probability(from.probability);
    to.set_decision(from.decision);
}

StudyExplanation get(const remote::Explained& from) {
    StudyExplanation e;
    AttentionLens& l = e.lens;
    l.token = from.token();
    l.layer = from.layer();
    l.window = from.window();
    l.heads = from.heads();
    l.weights = vec<float>(from.weights());
    l.mean_weights = vec<float>(from.mean_weights());
    l.local_weights = vec<float>(from.local_weights());
    l.head_distant_mass = vec<double>(from.head_distant_mass());
    l.distant_mass = from.distant_mass();
    e.router_logit = from.router_logit();
    e.probability = from.probability();
    e.decision = from.decision();
    return e;
}

}  // namespace l2a::wire
