#include "l2a/engine/tensor_names.h"

#include <charconv>
#include <cstddef>
#include <iterator>

namespace l2a::tensor_names {
namespace {

constexpr std::string_view kLayersPrefix = "model.layers.";

// Indexed by AttentionPart, in the order of its enumerators.
constexpr std::string_view kPartNames[] = {"q_proj", "k_proj", "v_proj",
                                           "o_proj", "q_norm", "k_norm"};
static_assert(std::size(kPartNames) == std::size(kAttentionParts));

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
    name += kPartNames[static_cast<std::size_t>(part)];
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
