#include "l2a/engine/tensor_names.h"

#include <charconv>

namespace l2a::tensor_names {
namespace {

constexpr std::string_view kLayersPrefix = "model.layers.";

std::string_view part_name(AttentionPart part) {
    switch (part) {
        case AttentionPart::QProj:
            return "q_proj";
        case AttentionPart::KProj:
            return "k_proj";
        case AttentionPart::VProj:
            return "v_proj";
        case AttentionPart::OProj:
            return "o_proj";
        case AttentionPart::QNorm:
            return "q_norm";
        case AttentionPart::KNorm:
            return "k_norm";
    }
    return "?";
}

}  // namespace

std::string layer_tensor(std::int64_t layer, std::string_view name) {
    std::string out(kLayersPrefix);
    out += std::to_string(layer);
    out += '.';
    out += name;
    return out;
}

std::string attention_tensor(std::int64_t layer, AttentionSet set, AttentionPart part,
                             TensorKind kind) {
    std::string name = "self_attn.";
    name += part_name(part);
    if (set == AttentionSet::Global) name += "_global";
    name += kind == TensorKind::Weight ? ".weight" : ".bias";
    return layer_tensor(layer, name);
}

std::int64_t layer_of(std::string_view name) {
    if (!name.starts_with(kLayersPrefix)) return -1;
    name.remove_prefix(kLayersPrefix.size());
    std::int64_t layer = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), layer);
    if (ec != std::errc() || end == name.data() || end == name.data() + name.size() || *end != '.')
        return -1;
    return layer;
}

std::string global_counterpart(std::string_view name) {
    const std::int64_t layer = layer_of(name);
    if (layer < 0) return {};
    for (AttentionPart part : kAttentionParts) {
        for (TensorKind kind : {TensorKind::Weight, TensorKind::Bias}) {
            if (name == attention_tensor(layer, AttentionSet::Local, part, kind)) {
                return attention_tensor(layer, AttentionSet::Global, part, kind);
            }
        }
    }
    return {};
}

}  // namespace l2a::tensor_names
