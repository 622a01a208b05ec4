// The requests' side of the protocol: what a server decodes from a client (and the profiles
// both sides send), free of the engine so that a fuzz target can link it alone.
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "wire.h"

namespace l2a::wire {

void put(const RunOptions& from, remote::RunOptions& to) {
    to.set_routing(from.routing.to_string());
    to.set_has_threshold(from.threshold.has_value());
    to.set_threshold(from.threshold.value_or(0.0));
    fill(*to.mutable_prune(), from.prune);
    to.set_seed(from.seed);
    to.set_max_tokens(from.max_tokens);
    to.set_chunk_size(from.chunk_size);
    to.set_device(from.device);
    to.set_backend(from.backend);
    to.set_kv_bytes_per_element(from.kv_bytes_per_element);
    to.set_as_base(from.as_base);
    to.set_token_nll(from.token_nll);
}

RunOptions get(const remote::RunOptions& from) {
    RunOptions o;
    o.routing = RoutingPolicy::parse(from.routing());
    if (from.has_threshold()) o.threshold = from.threshold();
    o.prune = vec<int>(from.prune());
    o.seed = from.seed();
    o.max_tokens = from.max_tokens();
    o.chunk_size = from.chunk_size();
    o.device = from.device();
    o.backend = from.backend();
    o.kv_bytes_per_element = from.kv_bytes_per_element();
    o.as_base = from.as_base();
    o.token_nll = from.token_nll();
    return o;
}

void put(const ModelSpec& from, remote::ModelSpec& to) {
    to.set_folder(from.folder.string());
    to.set_shape(from.shape);
    to.set_seed(from.seed);
    to.set_device(from.placement.device);
    to.set_dtype(from.placement.dtype);
    to.set_allow_nonfinite_weights(from.placement.allow_nonfinite_weights);
}

ModelSpec get(const remote::ModelSpec& from) {
    ModelSpec s;
    s.folder = from.folder();
    s.shape = from.shape();
    s.seed = from.seed();
    s.placement.device = from.device();
    s.placement.dtype = from.dtype();
    s.placement.allow_nonfinite_weights = from.allow_nonfinite_weights();
    return s;
}

void put(const DocumentSpec& from, remote::DocumentSpec& to) {
    to.set_label(from.label);
    to.set_path(from.path.string());
    to.set_has_text(from.text.has_value());
    if (from.text) to.set_text(*from.text);
    fill(*to.mutable_token_ids(), from.token_ids);
}

DocumentSpec get(const remote::DocumentSpec& from) {
    DocumentSpec d;
    d.label = from.label();
    d.path = from.path();
    if (from.has_text()) d.text = from.text();
    d.token_ids = vec<std::int32_t>(from.token_ids());
    return d;
}

void put(const StudyRunSpec& from, remote::RunRequest& to) {
    put(from.document, *to.mutable_document());
    put(from.options, *to.mutable_options());
    to.set_cut_at_context(from.cut_at_context);
    to.set_count_all_tokens(from.count_all_tokens);
    to.set_trace(from.trace);
    to.set_threads(from.threads);
    to.set_keep_checkpoints(from.keep_checkpoints);
}

StudyRunSpec get(const remote::RunRequest& from) {
    StudyRunSpec s;
    s.document = get(from.document());
    s.options = get(from.options());
    s.cut_at_context = from.cut_at_context();
    s.count_all_tokens = from.count_all_tokens();
    s.trace = from.trace();
    s.threads = from.threads();
    s.keep_checkpoints = from.keep_checkpoints();
    return s;
}

std::string profile_bytes(const Profile& profile) {
    const std::vector<std::byte> bytes = profile_to_bytes(profile, "the profile to send");
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

Profile profile_from_bytes(const std::string& bytes, const std::string& origin) {
    std::vector<std::byte> data(bytes.size());
    std::memcpy(data.data(), bytes.data(), bytes.size());
    return load_profile_from_bytes(std::move(data), origin);
}

}  // namespace l2a::wire
