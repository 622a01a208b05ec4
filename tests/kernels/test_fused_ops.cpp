// The fused small operators of kernels/ (residual add + RMSNorm + router logit, QK-norm + RoPE,
// gated scatter-add) against fp64 CPU references of HuggingFace's Qwen formulas, on fresh random
// inputs. Outputs and row padding are poisoned (all-ones bits: NaN in bf16, fp16 and fp32)
// before each run, so the tests see that every element that should be written was, and that
// nothing else was. Tests that need a GPU skip without one; argument validation runs everywhere.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "l2a/kernels/fused_ops.h"

namespace l2a::kernels {
namespace {

using namespace test_support;

// The element-type value nearest to an fp32 value, as a float.
float round_to(ElementType type, float value) { return from_bits(type, to_bits(type, value)); }

// Spacing of element-type values at |value| (fp16 down to its subnormals).
double ulp(ElementType type, double value) {
    const double magnitude = std::max(std::fabs(value), 1e-30);
    const int exponent = std::ilogb(magnitude);
    if (type == ElementType::bf16) return std::ldexp(1.0, exponent - 7);
    return std::ldexp(1.0, std::max(exponent, -14) - 10);
}

const char* type_name(ElementType type) { return type == ElementType::bf16 ? "bf16" : "fp16"; }

// A [rows, cols] matrix of 16-bit elements with a row stride; padding holds the poison.
struct HostMatrix {
    int64_t rows = 0;
    int cols = 0;
    int64_t stride = 0;
    std::vector<uint16_t> bits;

    size_t at(int64_t r, int c) const { return static_cast<size_t>(r * stride + c); }
    bool is_padding(size_t index) const { return static_cast<int64_t>(index % stride) >= cols; }
};

HostMatrix poisoned_matrix(int64_t rows, int cols, bool padded) {
    HostMatrix matrix;
    matrix.rows = rows;
    matrix.cols = cols;
    matrix.stride = cols + (padded ? 24 : 0);
    matrix.bits.assign(static_cast<size_t>(rows * matrix.stride), kPoison16);
    return matrix;
}

// Random rows; each row has its own scale so that the normalization has something to undo.
HostMatrix random_matrix(int64_t rows, int cols, bool padded, ElementType type,
                         std::mt19937& random) {
    HostMatrix matrix = poisoned_matrix(rows, cols, padded);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> log_scale(-2.0f, 2.0f);
    for (int64_t r = 0; r < rows; ++r) {
        const float scale = std::exp(log_scale(random));
        for (int c = 0; c < cols; ++c)
            matrix.bits[matrix.at(r, c)] = to_bits(type, scale * normal(random));
    }
    return matrix;
}

std::vector<uint16_t> random_vector(int size, float mean, float deviation, ElementType type,
                                    std::mt19937& random) {
    std::normal_distribution<float> normal(mean, deviation);
    std::vector<uint16_t> bits(static_cast<size_t>(size));
    for (auto& value : bits) value = to_bits(type, normal(random));
    return bits;
}

// HF's RMSNorm of one element, weight * round(s * r), where r is the row's fp64 inverse rms.
// The device's r comes from fp32 sums and rsqrtf; where that could move s * r across a rounding
// boundary of the element type, both neighbours are accepted. Returns the candidates.
std::pair<float, float> hf_rms_norm_candidates(ElementType type, float s, double r, float w) {
    const double normalized = static_cast<double>(s) * r;
    const float low = round_to(type, static_cast<float>(normalized * (1.0 - 2e-5)));
    const float high = round_to(type, static_cast<float>(normalized * (1.0 + 2e-5)));
    // bf16 x bf16 and fp16 x fp16 products are exact in fp32: one rounding, as on the device.
    return {round_to(type, w * low), round_to(type, w * high)};
}

// ---- add + RMSNorm + router -------------------------------------------------------------------

enum class SumMode { none, separate, into_x, into_residual, residual_only };

const char* sum_mode_name(SumMode mode) {
    switch (mode) {
        case SumMode::none:
            return "norm";
        case SumMode::separate:
            return "add_sum";
        case SumMode::into_x:
            return "add_sum_into_x";
        case SumMode::into_residual:
            return "add_sum_into_residual";
        case SumMode::residual_only:
            return "add_no_sum";
    }
    return "?";
}

struct NormCase {
    int64_t rows;
    int cols;
    ElementType type;
    SumMode mode;
    bool router;
    bool padded;
};

std::string norm_case_name(const testing::TestParamInfo<NormCase>& info) {
    const NormCase& c = info.param;
    return "R" + std::to_string(c.rows) + "_C" + std::to_string(c.cols) + "_" + type_name(c.type) +
           "_" + sum_mode_name(c.mode) + (c.router ? "_router" : "") + (c.padded ? "_padded" : "");
}

using AddRmsNormTest = GpuTest<NormCase>;

TEST_P(AddRmsNormTest, MatchesHuggingFaceFormula) {
    const NormCase& c = GetParam();
    const ElementType type = c.type;
    std::mt19937 random = seeded_random(norm_case_name({c, 0}));
    const bool has_residual = c.mode != SumMode::none;
    const HostMatrix x = random_matrix(c.rows, c.cols, c.padded, type, random);
    const HostMatrix residual =
        has_residual ? random_matrix(c.rows, c.cols, c.padded, type, random) : HostMatrix{};
    const std::vector<uint16_t> weight = random_vector(c.cols, 1.0f, 0.3f, type, random);
    const std::vector<uint16_t> router = random_vector(c.cols, 0.0f, 0.05f, type, random);
    const HostMatrix y_layout = poisoned_matrix(c.rows, c.cols, c.padded);
    const HostMatrix sum_layout = poisoned_matrix(c.rows, c.cols, c.padded);

    DeviceBuffer x_device(x.bits);
    DeviceBuffer residual_device(has_residual ? residual.bits : std::vector<uint16_t>{});
    DeviceBuffer weight_device(weight);
    DeviceBuffer router_device(router);
    DeviceBuffer y_device(y_layout.bits);
    DeviceBuffer sum_device(sum_layout.bits);
    // One slot past the rows must stay poisoned.
    DeviceBuffer logits_device(std::vector<uint32_t>(static_cast<size_t>(c.rows) + 1, kPoison32));

    AddRmsNormArgs args;
    args.element_type = type;
    args.rows = c.rows;
    args.cols = c.cols;
    args.eps = 1e-6f;
    args.x = x_device.as<void>();
    args.x_row_stride = x.stride;
    args.weight = weight_device.as<void>();
    args.y = y_device.as<void>();
    args.y_row_stride = y_layout.stride;
    if (has_residual) {
        args.residual = residual_device.as<void>();
        args.residual_row_stride = residual.stride;
    }
    switch (c.mode) {
        case SumMode::separate:
            args.sum_out = sum_device.as<void>();
            args.sum_row_stride = sum_layout.stride;
            break;
        case SumMode::into_x:
            args.sum_out = x_device.as<void>();
            args.sum_row_stride = x.stride;
            break;
        case SumMode::into_residual:
            args.sum_out = residual_device.as<void>();
            args.sum_row_stride = residual.stride;
            break;
        default:
            break;
    }
    if (c.router) {
        args.router_weight = router_device.as<void>();
        args.router_logits = reinterpret_cast<float*>(logits_device.as<uint32_t>());
    }

    Stream stream;
    add_rms_norm_forward(args, stream.get());
    stream.finish();

    const std::vector<uint16_t> y_bits = y_device.download<uint16_t>();
    const std::vector<uint16_t> x_after = x_device.download<uint16_t>();
    const std::vector<uint16_t> residual_after = residual_device.download<uint16_t>();
    const std::vector<uint16_t> sum_after = sum_device.download<uint16_t>();
    const std::vector<uint32_t> logit_bits = logits_device.download<uint32_t>();

    // Where the sum should be and what the other buffers must still hold.
    const std::vector<uint16_t>* sum_bits = nullptr;
    int64_t sum_stride = 0;
    if (c.mode == SumMode::separate) {
        sum_bits = &sum_after;
        sum_stride = sum_layout.stride;
    } else if (c.mode == SumMode::into_x) {
        sum_bits = &x_after;
        sum_stride = x.stride;
    } else if (c.mode == SumMode::into_residual) {
        sum_bits = &residual_after;
        sum_stride = residual.stride;
    }
    if (c.mode != SumMode::into_x) {
        ASSERT_EQ(x_after, x.bits) << "x was modified";
    }
    if (has_residual && c.mode != SumMode::into_residual) {
        ASSERT_EQ(residual_after, residual.bits) << "residual was modified";
    }
    if (c.mode != SumMode::separate) {
        ASSERT_EQ(sum_after, sum_layout.bits) << "sum buffer touched";
    }

    double max_logit_error = 0.0;
    std::vector<float> s(static_cast<size_t>(c.cols));
    for (int64_t r = 0; r < c.rows; ++r) {
        // The sum as HF stores it: one rounding of the fp32 sum, bit for bit.
        double sum_squares = 0.0;
        for (int col = 0; col < c.cols; ++col) {
            const float xv = from_bits(type, x.bits[x.at(r, col)]);
            if (has_residual) {
                const uint16_t expected =
                    to_bits(type, xv + from_bits(type, residual.bits[residual.at(r, col)]));
                s[col] = from_bits(type, expected);
                if (sum_bits != nullptr) {
                    const uint16_t got = (*sum_bits)[static_cast<size_t>(r * sum_stride + col)];
                    ASSERT_EQ(got, expected) << "sum at row " << r << ", col " << col;
                }
            } else {
                s[col] = xv;
            }
            sum_squares += static_cast<double>(s[col]) * s[col];
        }
        const double inverse_rms = 1.0 / std::sqrt(sum_squares / c.cols + 1e-6);
        double logit = 0.0;
        double logit_magnitude = 0.0;
        for (int col = 0; col < c.cols; ++col) {
            const float w = from_bits(type, weight[col]);
            const auto [low, high] = hf_rms_norm_candidates(type, s[col], inverse_rms, w);
            const float got = from_bits(type, y_bits[y_layout.at(r, col)]);
            ASSERT_TRUE(got == low || got == high)
                << "y at row " << r << ", col " << col << ": " << got << ", expected " << low
                << (low != high ? " or " + std::to_string(high) : std::string())
                << " (fp64 unrounded " << w * s[col] * inverse_rms << ")";
            const double term = static_cast<double>(got) * from_bits(type, router[col]);
            logit += term;
            logit_magnitude += std::fabs(term);
        }
        if (c.router) {
            float got;
            std::memcpy(&got, &logit_bits[static_cast<size_t>(r)], sizeof(got));
            // Relative to the logit, or to a hundredth of the sum of |terms| where the terms
            // happen to cancel (fp32 sums carry error relative to the terms, not the result).
            const double scale = std::max(std::fabs(logit), 0.01 * logit_magnitude);
            const double error = std::fabs(got - logit) / scale;
            max_logit_error = std::max(max_logit_error, error);
            ASSERT_LE(error, 1e-3) << "router logit of row " << r << ": " << got << " vs " << logit;
        }
    }
    // Padding of y and sum_out, the router slot past the rows, and all logits without a router.
    for (size_t i = 0; i < y_bits.size(); ++i) {
        if (y_layout.is_padding(i)) {
            ASSERT_EQ(y_bits[i], kPoison16) << "y padding " << i;
        }
    }
    if (sum_bits != nullptr) {
        for (size_t i = 0; i < sum_bits->size(); ++i) {
            if (static_cast<int64_t>(i % sum_stride) >= c.cols) {
                ASSERT_EQ((*sum_bits)[i], kPoison16) << "sum padding " << i;
            }
        }
    }
    for (size_t r = c.router ? static_cast<size_t>(c.rows) : 0; r < logit_bits.size(); ++r) {
        ASSERT_EQ(logit_bits[r], kPoison32) << "router logit slot " << r << " was written";
    }
    if (c.router) RecordProperty("max_router_relative_error", std::to_string(max_logit_error));
}

std::vector<NormCase> norm_cases() {
    std::vector<NormCase> cases;
    const SumMode modes[] = {SumMode::separate, SumMode::none, SumMode::into_x,
                             SumMode::into_residual, SumMode::residual_only};
    int index = 0;
    for (ElementType type : {ElementType::bf16, ElementType::fp16}) {
        for (int cols : {256, 1032, 2560, 4096, 16384}) {
            for (int64_t rows : {1, 37, 130}) {
                const SumMode mode = modes[index % 5];
                cases.push_back({rows, cols, type, mode, index % 2 == 0, index % 3 == 0});
                ++index;
            }
        }
    }
    // Every sum mode with the router on the Qwen3-8B width, padded and dense; a small width.
    for (SumMode mode : modes) {
        cases.push_back({67, 4096, ElementType::bf16, mode, true, true});
    }
    cases.push_back({1000, 2560, ElementType::bf16, SumMode::into_residual, true, false});
    cases.push_back({9, 8, ElementType::bf16, SumMode::separate, true, true});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, AddRmsNormTest, testing::ValuesIn(norm_cases()), norm_case_name);

// ---- QK-norm + RoPE -------------------------------------------------------------------------

struct RopeCase {
    int64_t rows;
    int heads;
    int head_dim;
    ElementType type;
    bool norm;
    bool positions;
    bool padded;
};

std::string rope_case_name(const testing::TestParamInfo<RopeCase>& info) {
    const RopeCase& c = info.param;
    return "R" + std::to_string(c.rows) + "_H" + std::to_string(c.heads) + "_D" +
           std::to_string(c.head_dim) + "_" + type_name(c.type) + (c.norm ? "_qknorm" : "") +
           (c.positions ? "_positions" : "") + (c.padded ? "_padded" : "");
}

using RopeTest = GpuTest<RopeCase>;

TEST_P(RopeTest, MatchesReference) {
    const RopeCase& c = GetParam();
    const ElementType type = c.type;
    const int dim = c.head_dim;
    const int half = dim / 2;
    std::mt19937 random = seeded_random(rope_case_name({c, 0}));

    // [rows, heads, dim] inside a strided buffer: padding after each head and each token.
    const int64_t head_stride = dim + (c.padded ? 8 : 0);
    const int64_t token_stride = c.heads * head_stride + (c.padded ? 16 : 0);
    const HostMatrix input =
        random_matrix(c.rows, static_cast<int>(token_stride), false, type, random);
    std::vector<uint16_t> bits = input.bits;
    auto offset = [&](int64_t r, int h, int d) {
        return static_cast<size_t>(r * token_stride + h * head_stride + d);
    };
    auto is_data = [&](size_t index) {
        const int64_t within_token = static_cast<int64_t>(index) % token_stride;
        return within_token < c.heads * head_stride && within_token % head_stride < dim;
    };
    for (size_t i = 0; i < bits.size(); ++i) {
        if (!is_data(i)) bits[i] = kPoison16;
    }

    // Random tables (not real angles): a kernel that mixes up rows, halves or cos and sin fails.
    const int64_t table_rows = c.positions ? 5000 : c.rows + 3;
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    std::vector<float> cos_table(static_cast<size_t>(table_rows * dim));
    std::vector<float> sin_table(cos_table.size());
    for (auto& value : cos_table) value = unit(random);
    for (auto& value : sin_table) value = unit(random);
    std::vector<int32_t> positions(static_cast<size_t>(c.rows));
    std::uniform_int_distribution<int32_t> any_position(0, static_cast<int32_t>(table_rows - 1));
    for (auto& position : positions) position = any_position(random);
    const std::vector<uint16_t> norm_weight = random_vector(dim, 1.0f, 0.3f, type, random);

    DeviceBuffer data_device(bits);
    DeviceBuffer cos_device(cos_table);
    DeviceBuffer sin_device(sin_table);
    DeviceBuffer positions_device(positions);
    DeviceBuffer norm_device(norm_weight);

    RopeArgs args;
    args.element_type = type;
    args.rows = c.rows;
    args.heads = c.heads;
    args.head_dim = dim;
    args.data = data_device.as<void>();
    args.token_stride = token_stride;
    args.head_stride = head_stride;
    args.norm_weight = c.norm ? norm_device.as<void>() : nullptr;
    args.eps = 1e-6f;
    args.cos = cos_device.as<float>();
    args.sin = sin_device.as<float>();
    args.table_rows = table_rows;
    args.positions = c.positions ? positions_device.as<int32_t>() : nullptr;

    Stream stream;
    rope_forward(args, stream.get());
    stream.finish();
    const std::vector<uint16_t> out = data_device.download<uint16_t>();

    for (size_t i = 0; i < out.size(); ++i) {
        if (!is_data(i)) {
            ASSERT_EQ(out[i], kPoison16) << "padding element " << i << " written";
        }
    }
    std::vector<double> y(static_cast<size_t>(dim));
    std::vector<double> slack(static_cast<size_t>(dim));  // where the norm's rounding may flip
    double max_error_ulps = 0.0;
    for (int64_t r = 0; r < c.rows; ++r) {
        const int64_t position = c.positions ? positions[static_cast<size_t>(r)] : r;
        for (int h = 0; h < c.heads; ++h) {
            double sum_squares = 0.0;
            for (int d = 0; d < dim; ++d) {
                y[d] = from_bits(type, bits[offset(r, h, d)]);
                sum_squares += y[d] * y[d];
                slack[d] = 0.0;
            }
            if (c.norm) {
                const double inverse_rms = 1.0 / std::sqrt(sum_squares / dim + 1e-6);
                for (int d = 0; d < dim; ++d) {
                    const float w = from_bits(type, norm_weight[d]);
                    const auto [low, high] =
                        hf_rms_norm_candidates(type, static_cast<float>(y[d]), inverse_rms, w);
                    y[d] = low;
                    slack[d] = std::fabs(static_cast<double>(high) - low);
                }
            }
            for (int d = 0; d < dim; ++d) {
                const size_t table = static_cast<size_t>(position * dim + d);
                const int partner = d < half ? d + half : d - half;
                const double sign = d < half ? -1.0 : 1.0;
                const double cosine = cos_table[table];
                const double sine = sin_table[table];
                const double expected = y[d] * cosine + sign * y[partner] * sine;
                const double terms = std::fabs(y[d] * cosine) + std::fabs(y[partner] * sine);
                // fp32 arithmetic error and any flip of the norm's rounding move the value
                // before its final rounding, possibly into the next binade (twice the ulp).
                const double drift =
                    1e-6 * terms + slack[d] * std::fabs(cosine) + slack[partner] * std::fabs(sine);
                const double tolerance = 0.5 * ulp(type, std::fabs(expected) + drift) + drift;
                const float got = from_bits(type, out[offset(r, h, d)]);
                const double error = std::fabs(got - expected);
                ASSERT_LE(error, tolerance) << "row " << r << " head " << h << " d " << d << ": "
                                            << got << " vs " << expected;
                max_error_ulps = std::max(max_error_ulps, error / ulp(type, expected));
            }
        }
    }
    RecordProperty("max_error_ulps", std::to_string(max_error_ulps));
}

std::vector<RopeCase> rope_cases() {
    std::vector<RopeCase> cases;
    int index = 0;
    for (ElementType type : {ElementType::bf16, ElementType::fp16}) {
        for (int dim : {64, 128}) {
            for (int64_t rows : {1, 17, 300}) {
                for (bool norm : {false, true}) {
                    const int heads = rows == 1 ? 1 : (index % 2 == 0 ? 8 : 5);
                    cases.push_back({rows, heads, dim, type, norm, index % 2 == 1, index % 3 == 0});
                    ++index;
                }
            }
        }
    }
    // Qwen3's q heads with QK-norm at both head dims, on a longer sequence.
    cases.push_back({1111, 32, 128, ElementType::bf16, true, true, false});
    cases.push_back({1111, 32, 64, ElementType::bf16, true, false, true});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, RopeTest, testing::ValuesIn(rope_cases()), rope_case_name);

TEST(RopeDeviceTest, PositionsOutsideTheTableGiveNan) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    const int dim = 64;
    std::mt19937 random = seeded_random("rope outside the table");
    const HostMatrix input = random_matrix(3, dim, false, ElementType::bf16, random);
    std::vector<float> table(static_cast<size_t>(4 * dim), 0.5f);
    DeviceBuffer data(input.bits);
    DeviceBuffer cos_device(table);
    DeviceBuffer sin_device(table);
    DeviceBuffer positions(std::vector<int32_t>{-1, 2, 4});
    RopeArgs args;
    args.rows = 3;
    args.heads = 1;
    args.head_dim = dim;
    args.data = data.as<void>();
    args.token_stride = dim;
    args.head_stride = dim;
    args.cos = cos_device.as<float>();
    args.sin = sin_device.as<float>();
    args.table_rows = 4;
    args.positions = positions.as<int32_t>();
    Stream stream;
    rope_forward(args, stream.get());
    stream.finish();
    const std::vector<uint16_t> out = data.download<uint16_t>();
    for (int d = 0; d < dim; ++d) {
        EXPECT_TRUE(std::isnan(bf16_to_float(out[d]))) << "row 0 (position -1), d " << d;
        EXPECT_FALSE(std::isnan(bf16_to_float(out[dim + d]))) << "row 1 (position 2), d " << d;
        EXPECT_TRUE(std::isnan(bf16_to_float(out[2 * dim + d]))) << "row 2 (position 4), d " << d;
    }
}

// ---- gated scatter-add ----------------------------------------------------------------------

enum class Routed { none, some, all };

const char* routed_name(Routed routed) {
    switch (routed) {
        case Routed::none:
            return "count0";
        case Routed::some:
            return "some";
        case Routed::all:
            return "all";
    }
    return "?";
}

struct ScatterCase {
    int64_t tokens;
    int cols;
    ElementType type;
    Routed routed;
    bool padded;
};

std::string scatter_case_name(const testing::TestParamInfo<ScatterCase>& info) {
    const ScatterCase& c = info.param;
    return "T" + std::to_string(c.tokens) + "_C" + std::to_string(c.cols) + "_" +
           type_name(c.type) + "_" + routed_name(c.routed) + (c.padded ? "_padded" : "");
}

using ScatterAddTest = GpuTest<ScatterCase>;

TEST_P(ScatterAddTest, AddsRoutedRowsOnly) {
    const ScatterCase& c = GetParam();
    const ElementType type = c.type;
    std::mt19937 random = seeded_random(scatter_case_name({c, 0}));

    std::vector<int32_t> routed_positions;
    std::vector<int32_t> unrouted;
    std::bernoulli_distribution fifth(0.2);
    for (int32_t t = 0; t < c.tokens; ++t) {
        const bool routed = c.routed == Routed::all ||
                            (c.routed == Routed::some && (fifth(random) || t == c.tokens - 1));
        (routed ? routed_positions : unrouted).push_back(t);
    }
    const auto count = static_cast<int32_t>(routed_positions.size());

    // dst: routed rows random, unrouted rows and padding poisoned (any write shows).
    HostMatrix dst = random_matrix(c.tokens, c.cols, c.padded, type, random);
    for (const int32_t t : unrouted) {
        std::fill_n(dst.bits.begin() + static_cast<int64_t>(dst.at(t, 0)), c.cols, kPoison16);
    }
    // src: rows past the count poisoned, and positions past the count name unrouted rows, so a
    // kernel that reads past the count changes bits that must not change.
    HostMatrix src = random_matrix(c.tokens, c.cols, c.padded, type, random);
    for (int64_t i = count; i < c.tokens; ++i) {
        std::fill_n(src.bits.begin() + static_cast<int64_t>(src.at(i, 0)), c.cols, kPoison16);
    }
    std::vector<int32_t> positions = routed_positions;
    for (size_t i = 0; positions.size() < static_cast<size_t>(c.tokens); ++i) {
        positions.push_back(unrouted[i % unrouted.size()]);
    }

    DeviceBuffer dst_device(dst.bits);
    DeviceBuffer src_device(src.bits);
    DeviceBuffer positions_device(positions);
    DeviceBuffer count_device(std::vector<int32_t>{count});

    ScatterAddArgs args;
    args.element_type = type;
    args.tokens = c.tokens;
    args.cols = c.cols;
    args.dst = dst_device.as<void>();
    args.dst_row_stride = dst.stride;
    args.src = src_device.as<void>();
    args.src_row_stride = src.stride;
    args.positions = positions_device.as<int32_t>();
    args.count = count_device.as<int32_t>();

    Stream stream;
    scatter_add_rows(args, stream.get());
    stream.finish();
    const std::vector<uint16_t> out = dst_device.download<uint16_t>();

    std::vector<int64_t> source_of(static_cast<size_t>(c.tokens), -1);
    for (int32_t i = 0; i < count; ++i) source_of[static_cast<size_t>(routed_positions[i])] = i;
    for (int64_t t = 0; t < c.tokens; ++t) {
        const int64_t i = source_of[static_cast<size_t>(t)];
        for (int col = 0; col < c.cols; ++col) {
            const size_t index = dst.at(t, col);
            if (i < 0) {
                ASSERT_EQ(out[index], dst.bits[index]) << "unrouted row " << t << " written";
                continue;
            }
            const double expected = static_cast<double>(from_bits(type, dst.bits[index])) +
                                    from_bits(type, src.bits[src.at(i, col)]);
            const float got = from_bits(type, out[index]);
            ASSERT_LE(std::fabs(got - expected),
                      0.5 * ulp(type, std::fabs(expected) * 1.0001) + 1e-7 * std::fabs(expected))
                << "row " << t << ", col " << col << ": " << got << " vs " << expected;
        }
    }
    for (size_t index = 0; index < out.size(); ++index) {
        if (dst.is_padding(index)) {
            ASSERT_EQ(out[index], kPoison16) << "padding " << index;
        }
    }
}

std::vector<ScatterCase> scatter_cases() {
    std::vector<ScatterCase> cases;
    int index = 0;
    for (ElementType type : {ElementType::bf16, ElementType::fp16}) {
        for (int64_t tokens : {1, 5, 300, 4099}) {
            for (Routed routed : {Routed::none, Routed::some, Routed::all}) {
                const int cols = tokens == 4099 ? 1032 : (index % 2 == 0 ? 256 : 4096);
                cases.push_back({tokens, cols, type, routed, index % 3 == 0});
                ++index;
            }
        }
    }
    cases.push_back({70, 16384, ElementType::bf16, Routed::some, true});
    cases.push_back({2000, 2560, ElementType::bf16, Routed::some, false});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ScatterAddTest, testing::ValuesIn(scatter_cases()),
                         scatter_case_name);

// ---- silu(gate) * up --------------------------------------------------------------------------

enum class SiluOut { separate, gate, up };  // where the product goes

struct SiluMulCase {
    int64_t rows;
    int cols;
    ElementType type;
    bool gate_padded;  // row strides past cols (padding poisoned), so the three strides differ
    bool up_padded;
    SiluOut out;
};

std::string silu_mul_case_name(const testing::TestParamInfo<SiluMulCase>& info) {
    const SiluMulCase& c = info.param;
    const char* out = c.out == SiluOut::gate ? "_into_gate"
                      : c.out == SiluOut::up ? "_into_up"
                                             : "";
    return std::string(type_name(c.type)) + "_" + std::to_string(c.rows) + "x" +
           std::to_string(c.cols) + (c.gate_padded ? "_gate_padded" : "") +
           (c.up_padded ? "_up_padded" : "") + out;
}

using SiluMulTest = GpuTest<SiluMulCase>;

TEST_P(SiluMulTest, MatchesTheUnfusedRounding) {
    const SiluMulCase& c = GetParam();
    const ElementType type = c.type;
    std::mt19937 random = seeded_random(silu_mul_case_name({c, 0}));
    const HostMatrix gate = random_matrix(c.rows, c.cols, c.gate_padded, type, random);
    const HostMatrix up = random_matrix(c.rows, c.cols, c.up_padded, type, random);
    // A separate output gets a stride of its own: padded where gate is not.
    const HostMatrix out = poisoned_matrix(c.rows, c.cols, !c.gate_padded);
    DeviceBuffer gate_device(gate.bits);
    DeviceBuffer up_device(up.bits);
    DeviceBuffer out_device(out.bits);
    const HostMatrix& result = c.out == SiluOut::gate ? gate : c.out == SiluOut::up ? up : out;
    DeviceBuffer& result_device = c.out == SiluOut::gate ? gate_device
                                  : c.out == SiluOut::up ? up_device
                                                         : out_device;

    SiluMulArgs args;
    args.element_type = type;
    args.rows = c.rows;
    args.cols = c.cols;
    args.gate = gate_device.as<void>();
    args.gate_row_stride = gate.stride;
    args.up = up_device.as<void>();
    args.up_row_stride = up.stride;
    args.out = result_device.as<void>();
    args.out_row_stride = result.stride;
    Stream stream;
    silu_mul_forward(args, stream.get());
    stream.finish();
    const std::vector<uint16_t> got_bits = result_device.download<uint16_t>();

    // silu(g) rounded to the element type, then the product rounded, as the unfused ops do. The
    // product of two 16-bit values is exact in fp32, so the output is exactly the rounded
    // product of a rounded silu; silu itself is computed in fp32 (expf), so its rounding may land
    // on either neighbour of the exact value: any faithful rounding of silu(g) is accepted.
    for (int64_t r = 0; r < c.rows; ++r) {
        for (int col = 0; col < c.cols; ++col) {
            const double g = from_bits(type, gate.bits[gate.at(r, col)]);
            const double silu = g / (1.0 + std::exp(-g));
            const float u = from_bits(type, up.bits[up.at(r, col)]);
            const uint16_t nearest = to_bits(type, static_cast<float>(silu));
            const float got = from_bits(type, got_bits[result.at(r, col)]);
            bool matched = false;
            for (int step = -1; step <= 1 && !matched; ++step) {
                if ((nearest & 0x7fff) == 0 && step < 0) continue;  // no neighbour below zero
                const float act = from_bits(type, static_cast<uint16_t>(nearest + step));
                if (std::fabs(act - silu) >= ulp(type, silu)) continue;  // not faithful
                matched = got == round_to(type, act * u);
            }
            ASSERT_TRUE(matched) << "row " << r << ", col " << col << ": silu(" << g << ") x " << u
                                 << " gave " << got << ", expected "
                                 << round_to(type, from_bits(type, nearest) * u);
        }
    }
    // The output's padding keeps what was there; inputs that are not the output do not change.
    for (size_t index = 0; index < got_bits.size(); ++index) {
        if (result.is_padding(index)) {
            ASSERT_EQ(got_bits[index], result.bits[index]) << "padding " << index;
        }
    }
    if (c.out != SiluOut::gate) {
        ASSERT_EQ(gate_device.download<uint16_t>(), gate.bits) << "gate must not change";
    }
    if (c.out != SiluOut::up) {
        ASSERT_EQ(up_device.download<uint16_t>(), up.bits) << "up must not change";
    }
}

std::vector<SiluMulCase> silu_mul_cases() {
    std::vector<SiluMulCase> cases;
    for (ElementType type : {ElementType::bf16, ElementType::fp16}) {
        cases.push_back({1, 8, type, false, false, SiluOut::separate});
        cases.push_back({37, 3072, type, true, false, SiluOut::separate});
        cases.push_back({300, 1032, type, false, true, SiluOut::gate});
        cases.push_back({1025, 256, type, true, false, SiluOut::gate});
        cases.push_back({64, 4096, type, false, true, SiluOut::up});
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, SiluMulTest, testing::ValuesIn(silu_mul_cases()),
                         silu_mul_case_name);

// ---- host-side validation (no GPU needed: nothing is launched) -----------------------------

template <typename Call>
std::string error_of(Call call) {
    try {
        call();
    } catch (const KernelError& error) {
        return error.what();
    }
    return "";
}

AddRmsNormArgs plausible_norm_args(void* memory) {
    AddRmsNormArgs args;
    args.rows = 4;
    args.cols = 256;
    args.x = memory;
    args.x_row_stride = 256;
    args.weight = memory;
    args.y = memory;
    args.y_row_stride = 256;
    return args;
}

std::string norm_error(const AddRmsNormArgs& args) {
    return error_of([&] { add_rms_norm_forward(args, nullptr); });
}

TEST(FusedOpsValidationTest, NormRejectsBadCols) {
    alignas(16) static unsigned char memory[32];
    AddRmsNormArgs args = plausible_norm_args(memory);
    args.cols = 100;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: cols (100) must be a positive multiple of 8, "
              "at most 16384");
    args.cols = 16392;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: cols (16392) must be a positive multiple of 8, "
              "at most 16384");
    args.cols = 0;
    EXPECT_NE(norm_error(args), "");
}

TEST(FusedOpsValidationTest, NormRejectsMissingAndMisalignedPointers) {
    alignas(16) static unsigned char memory[64];
    AddRmsNormArgs args = plausible_norm_args(memory);
    args.x = nullptr;
    EXPECT_EQ(norm_error(args), "l2a::kernels::add_rms_norm_forward: x is null");
    args = plausible_norm_args(memory);
    args.y = memory + 8;
    EXPECT_EQ(norm_error(args), "l2a::kernels::add_rms_norm_forward: y is not 16-byte aligned");
    args = plausible_norm_args(memory);
    args.weight = nullptr;
    EXPECT_EQ(norm_error(args), "l2a::kernels::add_rms_norm_forward: weight is null");
    args = plausible_norm_args(memory);
    args.router_weight = memory;
    args.router_logits = reinterpret_cast<float*>(memory + 2);
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: router_logits is not 4-byte aligned");
}

TEST(FusedOpsValidationTest, NormRejectsBadStrides) {
    alignas(16) static unsigned char memory[32];
    AddRmsNormArgs args = plausible_norm_args(memory);
    args.x_row_stride = 260;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: x row stride (260) must be a non-negative "
              "multiple of 8 elements");
    args = plausible_norm_args(memory);
    args.y_row_stride = 128;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: y row stride (128) is less than cols (256): "
              "rows would overlap");
    // A broadcast input row (stride 0) is fine to read.
    args = plausible_norm_args(memory);
    args.x_row_stride = 0;
    args.eps = -1.0f;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: eps (-1.000000) must be finite and "
              "non-negative");
}

TEST(FusedOpsValidationTest, NormRejectsInconsistentOptions) {
    alignas(16) static unsigned char memory[32];
    AddRmsNormArgs args = plausible_norm_args(memory);
    args.sum_out = memory;
    args.sum_row_stride = 256;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: sum_out is set without residual");
    args = plausible_norm_args(memory);
    args.router_weight = memory;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: router_weight and router_logits must be set "
              "together");
    args = plausible_norm_args(memory);
    args.rows = -1;
    EXPECT_EQ(norm_error(args),
              "l2a::kernels::add_rms_norm_forward: rows (-1) must be in [0, 2^31 - 1]");
}

RopeArgs plausible_rope_args(void* memory) {
    RopeArgs args;
    args.rows = 4;
    args.heads = 2;
    args.head_dim = 128;
    args.data = memory;
    args.token_stride = 256;
    args.head_stride = 128;
    args.cos = static_cast<const float*>(memory);
    args.sin = static_cast<const float*>(memory);
    args.table_rows = 16;
    return args;
}

std::string rope_error(const RopeArgs& args) {
    return error_of([&] { rope_forward(args, nullptr); });
}

TEST(FusedOpsValidationTest, RopeRejectsBadArguments) {
    alignas(16) static unsigned char memory[64];
    RopeArgs args = plausible_rope_args(memory);
    args.head_dim = 96;
    EXPECT_EQ(rope_error(args),
              "l2a::kernels::rope_forward: head_dim 96 is not supported (64 or 128)");
    args = plausible_rope_args(memory);
    args.sin = nullptr;
    EXPECT_EQ(rope_error(args), "l2a::kernels::rope_forward: sin is null");
    args = plausible_rope_args(memory);
    args.data = memory + 4;
    EXPECT_EQ(rope_error(args), "l2a::kernels::rope_forward: data is not 16-byte aligned");
    args = plausible_rope_args(memory);
    args.head_stride = 132;
    EXPECT_EQ(rope_error(args),
              "l2a::kernels::rope_forward: data strides (token 256, head 132) must be "
              "non-negative multiples of 8 elements");
    args = plausible_rope_args(memory);
    args.table_rows = 3;
    EXPECT_EQ(rope_error(args),
              "l2a::kernels::rope_forward: rows (4) exceed table_rows (3) and positions is null");
    args = plausible_rope_args(memory);
    args.norm_weight = memory + 8;
    EXPECT_EQ(rope_error(args), "l2a::kernels::rope_forward: norm_weight is not 16-byte aligned");
    args = plausible_rope_args(memory);
    args.heads = 0;
    EXPECT_EQ(rope_error(args), "l2a::kernels::rope_forward: heads (0) must be positive");
}

ScatterAddArgs plausible_scatter_args(void* memory) {
    ScatterAddArgs args;
    args.tokens = 8;
    args.cols = 256;
    args.dst = memory;
    args.dst_row_stride = 256;
    args.src = memory;
    args.src_row_stride = 256;
    args.positions = static_cast<const int32_t*>(memory);
    args.count = static_cast<const int32_t*>(memory);
    return args;
}

std::string scatter_error(const ScatterAddArgs& args) {
    return error_of([&] { scatter_add_rows(args, nullptr); });
}

TEST(FusedOpsValidationTest, ScatterRejectsBadArguments) {
    alignas(16) static unsigned char memory[64];
    ScatterAddArgs args = plausible_scatter_args(memory);
    args.count = nullptr;
    EXPECT_EQ(scatter_error(args), "l2a::kernels::scatter_add_rows: count is null");
    args = plausible_scatter_args(memory);
    args.cols = 12;
    EXPECT_EQ(scatter_error(args),
              "l2a::kernels::scatter_add_rows: cols (12) must be a positive multiple of 8");
    args = plausible_scatter_args(memory);
    args.src = memory + 2;
    EXPECT_EQ(scatter_error(args), "l2a::kernels::scatter_add_rows: src is not 16-byte aligned");
    args = plausible_scatter_args(memory);
    args.dst_row_stride = 36;
    EXPECT_EQ(scatter_error(args),
              "l2a::kernels::scatter_add_rows: dst row stride (36) must be a non-negative "
              "multiple of 8 elements");
    args = plausible_scatter_args(memory);
    args.positions = nullptr;
    EXPECT_EQ(scatter_error(args), "l2a::kernels::scatter_add_rows: positions is null");
}

TEST(FusedOpsValidationTest, SiluMulRejectsBadArguments) {
    alignas(16) static unsigned char memory[64];
    SiluMulArgs args;
    args.rows = 2;
    args.cols = 16;
    args.gate = memory;
    args.gate_row_stride = 16;
    args.up = memory;
    args.up_row_stride = 16;
    args.out = memory;
    args.out_row_stride = 16;
    const auto error = [](const SiluMulArgs& a) {
        return error_of([&] { silu_mul_forward(a, nullptr); });
    };
    SiluMulArgs bad = args;
    bad.cols = 12;
    EXPECT_EQ(error(bad),
              "l2a::kernels::silu_mul_forward: cols (12) must be a positive multiple of 8, at most "
              "2^31 - 1");
    bad = args;
    bad.up = nullptr;
    EXPECT_EQ(error(bad), "l2a::kernels::silu_mul_forward: up is null");
    bad = args;
    bad.out_row_stride = 8;
    EXPECT_EQ(error(bad),
              "l2a::kernels::silu_mul_forward: out row stride (8) is less than cols (16): rows "
              "would overlap");
    bad = args;
    bad.rows = -1;
    EXPECT_EQ(error(bad), "l2a::kernels::silu_mul_forward: rows (-1) must be >= 0");
}

TEST(FusedOpsValidationTest, EmptyInputsLaunchNothing) {
    // No pointer is needed, and nothing touches the device, when there is nothing to compute.
    AddRmsNormArgs norm;
    norm.rows = 0;
    norm.cols = 4096;
    EXPECT_NO_THROW(add_rms_norm_forward(norm, nullptr));
    RopeArgs rope;
    rope.rows = 0;
    rope.heads = 8;
    rope.head_dim = 64;
    EXPECT_NO_THROW(rope_forward(rope, nullptr));
    ScatterAddArgs scatter;
    scatter.tokens = 0;
    scatter.cols = 256;
    EXPECT_NO_THROW(scatter_add_rows(scatter, nullptr));
    SiluMulArgs silu;
    silu.rows = 0;
    silu.cols = 4096;
    EXPECT_NO_THROW(silu_mul_forward(silu, nullptr));
}

}  // namespace
}  // namespace l2a::kernels
