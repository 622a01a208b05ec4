#include "l2a/engine/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "l2a/engine/error.h"

namespace l2a {

// transformers computes inv_freq as float32 tensors and the scalar bookkeeping (YaRN's
// correction range and attention factor, dynamic NTK at init) as Python doubles. Each step
// below rounds where a float32 tensor op would, so that the result is the float32 buffer HF
// holds, not a more precise number that would make cos/sin differ in the last bits.
namespace {

float to_f32(double value) { return static_cast<float>(value); }

// pow on float32 operands; computed in double and rounded once, which is what a correctly
// rounded float pow gives (torch's vectorised pow is within one ulp of it).
float pow_f32(float base, float exponent) {
    return to_f32(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
}

// `arange(0, dim, 2).float() / dim`: the exponents of the default RoPE frequencies.
std::vector<float> frequency_exponents(std::int64_t dim) {
    std::vector<float> exponents(static_cast<std::size_t>(dim / 2));
    for (std::size_t i = 0; i < exponents.size(); ++i) {
        exponents[i] = static_cast<float>(2 * i) / static_cast<float>(dim);
    }
    return exponents;
}

// `1.0 / (base ** exponents)` with a float32 base.
std::vector<float> default_inv_freq(float base, std::int64_t dim) {
    std::vector<float> inv_freq = frequency_exponents(dim);
    for (float& value : inv_freq) {
        value = 1.0f / pow_f32(base, value);
    }
    return inv_freq;
}

// Dynamic NTK: HF enlarges the base once positions exceed max_position_embeddings. At init
// (seq_len <= max) it runs the formula with Python doubles and seq_len = max; in the forward
// pass, seq_len is a 0-dim int64 tensor, so every step of the same formula is float32.
float dynamic_ntk_base(const ModelConfig& config, std::int64_t seq_len) {
    const double factor = config.rope_scaling.factor;
    const auto dim = static_cast<double>(config.head_dim);
    const auto max_positions = config.max_position_embeddings;
    if (seq_len <= max_positions) {
        const auto positions = static_cast<double>(max_positions);
        const double ratio = factor * positions / positions - (factor - 1.0);
        return to_f32(config.rope_theta * std::pow(ratio, dim / (dim - 2.0)));
    }
    float ratio = to_f32(factor) * static_cast<float>(seq_len);
    ratio = ratio / static_cast<float>(max_positions);
    ratio = ratio - to_f32(factor - 1.0);
    // torch keeps a Python-float exponent in double for pow on a float32 tensor.
    const float stretch = to_f32(std::pow(static_cast<double>(ratio), dim / (dim - 2.0)));
    return to_f32(config.rope_theta) * stretch;
}

double yarn_mscale(double scale, double mscale) {
    if (scale <= 1.0) {
        return 1.0;
    }
    return 0.1 * mscale * std::log(scale) + 1.0;
}

// The dimension index at which frequencies complete `rotations` turns over `positions`.
double yarn_correction_dim(double rotations, double dim, double base, double positions) {
    return (dim * std::log(positions / (rotations * 2.0 * std::numbers::pi))) /
           (2.0 * std::log(base));
}

RopeParams yarn(const ModelConfig& config) {
    const RopeScaling& scaling = config.rope_scaling;
    const std::int64_t dim = config.head_dim;
    const double factor = scaling.factor;
    const double base = config.rope_theta;
    const auto original_positions = static_cast<double>(
        scaling.original_max_position_embeddings.value_or(config.max_position_embeddings));

    RopeParams params;
    if (scaling.attention_factor) {
        params.attention_scaling = *scaling.attention_factor;
    } else if (scaling.mscale.value_or(0.0) != 0.0 && scaling.mscale_all_dim.value_or(0.0) != 0.0) {
        params.attention_scaling =
            yarn_mscale(factor, *scaling.mscale) / yarn_mscale(factor, *scaling.mscale_all_dim);
    } else {
        params.attention_scaling = yarn_mscale(factor, 1.0);
    }

    double low =
        yarn_correction_dim(scaling.beta_fast, static_cast<double>(dim), base, original_positions);
    double high =
        yarn_correction_dim(scaling.beta_slow, static_cast<double>(dim), base, original_positions);
    if (scaling.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) {
        high += 0.001;  // HF's guard against a zero-width ramp
    }
    const float ramp_start = to_f32(low);
    const float ramp_width = to_f32(high - low);

    const float base_f32 = to_f32(base);
    const float factor_f32 = to_f32(factor);
    const std::vector<float> exponents = frequency_exponents(dim);
    params.inv_freq.resize(exponents.size());
    for (std::size_t i = 0; i < exponents.size(); ++i) {
        const float pos_freq = pow_f32(base_f32, exponents[i]);
        const float extrapolation = 1.0f / pos_freq;
        const float interpolation = 1.0f / (factor_f32 * pos_freq);
        const float ramp =
            std::clamp((static_cast<float>(i) - ramp_start) / ramp_width, 0.0f, 1.0f);
        const float extrapolation_weight = 1.0f - ramp;
        params.inv_freq[i] =
            interpolation * (1.0f - extrapolation_weight) + extrapolation * extrapolation_weight;
    }
    return params;
}

std::vector<double> widen(const std::vector<float>& values) {
    return std::vector<double>(values.begin(), values.end());
}

}  // namespace

RopeParams compute_rope(const ModelConfig& config, std::int64_t seq_len) {
    if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
        throw Error("rotary embedding: head_dim must be positive and even, got " +
                    std::to_string(config.head_dim));
    }
    if (!(config.rope_theta > 0.0)) {
        throw Error("rotary embedding: rope_theta must be positive");
    }
    RopeParams params;
    switch (config.rope_scaling.type) {
        case RopeScalingType::None:
            params.inv_freq = widen(default_inv_freq(to_f32(config.rope_theta), config.head_dim));
            break;
        case RopeScalingType::Linear: {
            // Scaling positions by 1/factor is the same as scaling the frequencies.
            std::vector<float> inv_freq =
                default_inv_freq(to_f32(config.rope_theta), config.head_dim);
            const float factor = to_f32(config.rope_scaling.factor);
            for (float& value : inv_freq) {
                value /= factor;
            }
            params.inv_freq = widen(inv_freq);
            break;
        }
        case RopeScalingType::Dynamic:
            params.inv_freq =
                widen(default_inv_freq(dynamic_ntk_base(config, seq_len), config.head_dim));
            break;
        case RopeScalingType::Yarn:
            params = yarn(config);
            break;
    }
    return params;
}

}  // namespace l2a
