// The attention lens and the distant-mass oracle: weights that are distributions, agreement with
// a dense computation written here from the weight file, the blocked oracle against the lens and
// against closed forms, and the errors.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../../engine/src/attention.h"  // kernels_distant_mass, on a GPU
#include "../../engine/src/lens_math.h"  // the blocked arithmetic is checked directly below
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/lens.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kTokens = 300;  // more than the demo model's window (256)

// The untrained demo-shaped model, its folder, and the states entering each layer of one run.
struct Demo {
    fs::path dir;
    l2a::Model model;
    l2a::ResidualCheckpoints checkpoints;
};

const Demo& demo() {
    static const Demo d = [] {
        const fs::path dir =
            l2a::ensure_untrained_model(fs::path(L2A_TEST_WORK_DIR) / "lens" / "demo");
        Demo out{dir, l2a::Model::load(dir), {}};
        std::vector<std::int32_t> tokens(static_cast<std::size_t>(kTokens));
        for (std::size_t i = 0; i < tokens.size(); ++i)
            tokens[i] = static_cast<std::int32_t>((i * 53 + 7) % 256);
        out.checkpoints.every_layer = true;
        l2a::PrefillHooks hooks;
        hooks.checkpoints = &out.checkpoints;
        l2a::run_prefill(out.model, tokens, {}, hooks);
        return out;
    }();
    return d;
}

const std::vector<float>& entering(int layer) {
    return demo().checkpoints.entering[static_cast<std::size_t>(layer)].host();
}

// ---- an independent dense computation, in double, from model.safetensors --------------------

at::Tensor file_tensor(const l2a::SafetensorsFile& file, const std::string& name) {
    const l2a::TensorView view = file.view(name);
    const std::vector<float> values = l2a::test::read_tensor<float>(file, name, l2a::DType::F32);
    return at::tensor(values, at::TensorOptions().dtype(at::kFloat))
        .view(view.info->shape)
        .to(at::kDouble);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

// HuggingFace's default RoPE (rotate_half layout) at positions 0..n-1 of x [n, heads, D].
at::Tensor rope(const at::Tensor& x, double theta) {
    const std::int64_t n = x.size(0);
    const std::int64_t dim = x.size(2);
    const at::TensorOptions f64 = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor inv_freq = 1.0 / at::pow(theta, at::arange(0, dim, 2, f64) / dim);
    const at::Tensor angles = at::outer(at::arange(n, f64), inv_freq);
    const at::Tensor full = at::cat({angles, angles}, 1).unsqueeze(1);  // [n, 1, D]
    const at::Tensor x1 = x.narrow(-1, 0, dim / 2);
    const at::Tensor x2 = x.narrow(-1, dim / 2, dim / 2);
    return x * full.cos() + at::cat({-x2, x1}, -1) * full.sin();
}

// One layer's dense attention weights [H, T, T] (0 where masked) of both attention sets.
struct DenseLayer {
    at::Tensor local;
    at::Tensor global;
};

DenseLayer dense_layer(int layer) {
    const l2a::ModelConfig& c = demo().model.config();
    EXPECT_EQ(c.rope_scaling.type, l2a::RopeScalingType::None);
    EXPECT_FALSE(c.attention_bias);
    const auto file = l2a::SafetensorsFile::open(demo().dir / "model.safetensors");
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    auto w = [&](const std::string& name) { return file_tensor(file, prefix + name + ".weight"); };
    const std::int64_t T = kTokens;
    const std::int64_t H = c.num_attention_heads;
    const std::int64_t Hkv = c.num_key_value_heads;
    const std::int64_t D = c.head_dim;
    const std::int64_t W = c.l2a.sliding_window;
    const double eps = c.rms_norm_eps;
    auto heads = [&](const at::Tensor& x, const std::string& proj, const std::string& norm,
                     std::int64_t n) {
        at::Tensor y = at::matmul(x, w(proj).t()).view({T, n, D});
        if (!norm.empty()) y = rope(rms_norm(y, w(norm), eps), c.rope_theta);
        return y.repeat_interleave(H / n, 1).permute({1, 0, 2});  // [H, T, D]
    };
    const at::Tensor key = at::arange(T).view({1, T});
    const at::Tensor query = at::arange(T).view({T, 1});
    auto weights = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& allowed) {
        const at::Tensor scores = at::matmul(q, k.transpose(1, 2)) / std::sqrt(double(D));
        return at::softmax(scores.masked_fill(allowed.logical_not(), -INFINITY), -1);
    };

    const at::Tensor x = at::tensor(entering(layer), at::TensorOptions().dtype(at::kFloat))
                             .view({T, -1})
                             .to(at::kDouble);
    const at::Tensor xn = rms_norm(x, w("input_layernorm"), eps);
    const at::Tensor q = heads(xn, "self_attn.q_proj", "self_attn.q_norm", H);
    const at::Tensor k = heads(xn, "self_attn.k_proj", "self_attn.k_norm", Hkv);
    const at::Tensor v = heads(xn, "self_attn.v_proj", "", Hkv);
    const at::Tensor local = weights(q, k, (key <= query) & (key > query - W));
    const at::Tensor s = at::matmul(at::matmul(local, v).permute({1, 0, 2}).reshape({T, H * D}),
                                    w("self_attn.o_proj").t());
    const at::Tensor u = rms_norm(x + s, w("input_layernorm_global"), eps);
    const at::Tensor qg = heads(u, "self_attn.q_proj_global", "self_attn.q_norm_global", H);
    const at::Tensor kg = heads(u, "self_attn.k_proj_global", "self_attn.k_norm_global", Hkv);
    return {local, weights(qg, kg, key <= query)};
}

double sum(const float* first, std::int64_t count) {
    return std::accumulate(first, first + count, 0.0);
}

// ---- the lens on the demo model ---------------------------------------------------------------

TEST(AttentionLens, WeightsAreDistributionsOverTheKeysBeforeTheToken) {
    const l2a::ModelConfig& c = demo().model.config();
    const std::int64_t H = c.num_attention_heads;
    const std::int64_t W = c.l2a.sliding_window;
    for (int layer : {0, 4}) {
        for (std::int64_t t : {std::int64_t{0}, std::int64_t{7}, W - 1, W, kTokens - 1}) {
            const l2a::AttentionLens lens =
                l2a::attention_lens(demo().model, entering(layer), kTokens, layer, t);
            EXPECT_EQ(lens.token, t);
            EXPECT_EQ(lens.layer, layer);
            EXPECT_EQ(lens.window, W);
            EXPECT_EQ(lens.heads, H);
            const std::int64_t keys = t + 1;
            const std::int64_t local_keys = std::min(W, t + 1);
            ASSERT_EQ(lens.weights.size(), static_cast<std::size_t>(H * keys));
            ASSERT_EQ(lens.mean_weights.size(), static_cast<std::size_t>(keys));
            ASSERT_EQ(lens.local_weights.size(), static_cast<std::size_t>(H * local_keys));
            ASSERT_EQ(lens.head_distant_mass.size(), static_cast<std::size_t>(H));
            for (std::int64_t h = 0; h < H; ++h) {
                EXPECT_NEAR(sum(lens.weights.data() + h * keys, keys), 1.0, 1e-5) << "head " << h;
                EXPECT_NEAR(sum(lens.local_weights.data() + h * local_keys, local_keys), 1.0, 1e-5)
                    << "head " << h;
            }
            EXPECT_NEAR(sum(lens.mean_weights.data(), keys), 1.0, 1e-5);
            for (float weight : lens.weights) EXPECT_GE(weight, 0.0f);
        }
    }
}

// The lens and the distant mass read a kept state where it is: the same numbers as from its rows.
TEST(AttentionLens, AKeptStateGivesTheLensOfItsRows) {
    const l2a::HiddenState& kept = demo().checkpoints.entering[3];
    EXPECT_FALSE(kept.on_device());
    EXPECT_EQ(kept.rows(), kTokens);
    for (std::int64_t t : {std::int64_t{5}, kTokens - 1}) {
        const l2a::AttentionLens a = l2a::attention_lens(demo().model, kept, kTokens, 3, t);
        const l2a::AttentionLens b = l2a::attention_lens(demo().model, entering(3), kTokens, 3, t);
        EXPECT_EQ(a.weights, b.weights) << t;
        EXPECT_EQ(a.local_weights, b.local_weights) << t;
        EXPECT_EQ(a.distant_mass, b.distant_mass) << t;
    }
    EXPECT_EQ(l2a::distant_mass(demo().model, kept, kTokens, 3),
              l2a::distant_mass(demo().model, entering(3), kTokens, 3));
}

TEST(AttentionLens, MatchesADenseComputationFromTheWeightFile) {
    const l2a::ModelConfig& c = demo().model.config();
    const std::int64_t H = c.num_attention_heads;
    const std::int64_t W = c.l2a.sliding_window;
    ASSERT_GT(kTokens, W + 20);
    for (int layer : {1, 5}) {
        const DenseLayer dense = dense_layer(layer);
        for (std::int64_t t : {std::int64_t{3}, W - 1, W, W + 20, kTokens - 1}) {
            const l2a::AttentionLens lens =
                l2a::attention_lens(demo().model, entering(layer), kTokens, layer, t);
            const std::int64_t keys = t + 1;
            const std::int64_t first = std::max<std::int64_t>(0, t - W + 1);
            const std::int64_t old = first;  // keys 0..t-W
            double mean_distant = 0.0;
            for (std::int64_t h = 0; h < H; ++h) {
                const at::Tensor global = dense.global[h][t];
                const at::Tensor local = dense.local[h][t];
                for (std::int64_t j = 0; j < keys; ++j) {
                    EXPECT_NEAR(lens.weights[static_cast<std::size_t>(h * keys + j)],
                                global[j].item<double>(), 1e-5)
                        << "layer " << layer << " token " << t << " head " << h << " key " << j;
                }
                for (std::int64_t j = first; j < keys; ++j) {
                    EXPECT_NEAR(lens.local_weights[static_cast<std::size_t>(h * (keys - first) + j -
                                                                            first)],
                                local[j].item<double>(), 1e-5)
                        << "layer " << layer << " token " << t << " head " << h << " key " << j;
                }
                const double distant = global.narrow(0, 0, old).sum().item<double>();
                EXPECT_NEAR(lens.head_distant_mass[static_cast<std::size_t>(h)], distant, 1e-5);
                mean_distant += distant / static_cast<double>(H);
            }
            const at::Tensor mean = dense.global.select(1, t).mean(0);
            for (std::int64_t j = 0; j < keys; ++j)
                EXPECT_NEAR(lens.mean_weights[static_cast<std::size_t>(j)], mean[j].item<double>(),
                            1e-5);
            EXPECT_NEAR(lens.distant_mass, mean_distant, 1e-5);
        }
    }
}

TEST(DistantMass, EqualsTheLensOfEachToken) {
    const std::int64_t W = demo().model.config().l2a.sliding_window;
    for (int layer : {0, 3}) {
        const std::vector<float> mass =
            l2a::distant_mass(demo().model, entering(layer), kTokens, layer);
        ASSERT_EQ(mass.size(), static_cast<std::size_t>(kTokens));
        for (std::int64_t t = 0; t < W; ++t) EXPECT_EQ(mass[static_cast<std::size_t>(t)], 0.0f);
        for (std::int64_t t : {std::int64_t{5}, W - 1, W, W + 1, W + 30, kTokens - 1}) {
            const l2a::AttentionLens lens =
                l2a::attention_lens(demo().model, entering(layer), kTokens, layer, t);
            EXPECT_NEAR(mass[static_cast<std::size_t>(t)], lens.distant_mass, 1e-5)
                << "layer " << layer << " token " << t;
        }
        EXPECT_GT(mass[kTokens - 1], 0.0f);
    }
}

// ---- the arithmetic on queries and keys built for a known answer ------------------------------

at::Tensor random_normal(std::vector<std::int64_t> shape, std::uint64_t seed) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::normal(0.0, 1.0, shape, generator, at::TensorOptions().dtype(at::kFloat));
}

// Dense, per query and head: the causal softmax's share on keys 0..t-window, in double.
at::Tensor dense_distant_mass(const at::Tensor& q, const at::Tensor& k, std::int64_t window) {
    const std::int64_t T = q.size(0);
    const std::int64_t H = q.size(1);
    const at::Tensor qh = q.to(at::kDouble).permute({1, 0, 2});
    const at::Tensor kh = k.to(at::kDouble).repeat_interleave(H / k.size(1), 1).permute({1, 0, 2});
    const at::Tensor key = at::arange(T).view({1, T});
    const at::Tensor query = at::arange(T).view({T, 1});
    const at::Tensor scores = at::matmul(qh, kh.transpose(1, 2)) / std::sqrt(double(q.size(2)));
    const at::Tensor p = at::softmax(scores.masked_fill(key > query, -INFINITY), -1);
    return p.masked_fill(key > query - window, 0.0).sum(-1).t();  // [T, H]
}

TEST(DistantMassOf, UniformScoresGiveTheShareOfOldKeys) {
    const std::int64_t T = 40;
    const std::int64_t W = 7;
    const at::Tensor q = at::zeros({T, 4, 8});
    const at::Tensor k = random_normal({T, 2, 8}, 1);
    for (auto [query_block, key_block] : {std::pair<int, int>{5, 3}, {64, 64}, {1, 40}}) {
        const at::Tensor mass = l2a::distant_mass_of(q, k, W, query_block, key_block);
        ASSERT_EQ(mass.sizes(), (std::vector<std::int64_t>{T, 4}));
        for (std::int64_t t = 0; t < T; ++t) {
            const double expected =
                static_cast<double>(std::max<std::int64_t>(0, t - W + 1)) / double(t + 1);
            for (std::int64_t h = 0; h < 4; ++h)
                EXPECT_NEAR(mass[t][h].item<double>(), expected, 1e-6) << "token " << t;
        }
    }
    // One query over its keys: uniform.
    const at::Tensor weights = l2a::attention_weights_of(q[9], k.narrow(0, 0, 10));
    ASSERT_EQ(weights.sizes(), (std::vector<std::int64_t>{4, 10}));
    EXPECT_TRUE(at::allclose(weights, at::full({4, 10}, 0.1), 0.0, 1e-7));
}

TEST(DistantMassOf, KeysTheQueriesIgnoreOrPreferMoveTheMass) {
    // Scores of 0 for keys 0..9 and of s elsewhere (one dimension): query t >= 10 + W has
    // 10 old keys of weight 1 against t - 9 keys of weight e^s.
    const std::int64_t T = 30;
    const std::int64_t W = 4;
    const double s = 2.0;
    at::Tensor q = at::zeros({T, 2, 4});
    q.select(2, 0).fill_(s * 2.0);  // scores scaled by 1/sqrt(4)
    at::Tensor k = at::zeros({T, 1, 4});
    k.narrow(0, 10, T - 10).select(2, 0).fill_(1.0);
    const at::Tensor mass = l2a::distant_mass_of(q, k, W, 4, 6);
    for (std::int64_t t = 10 + W; t < T; ++t) {
        const double old_weight = 10.0 + static_cast<double>(t - W - 9) * std::exp(s);
        const double all_weight = 10.0 + static_cast<double>(t - 9) * std::exp(s);
        EXPECT_NEAR(mass[t][1].item<double>(), old_weight / all_weight, 1e-6) << "token " << t;
    }
}

TEST(DistantMassOf, BlockSizesDoNotChangeTheResult) {
    const std::int64_t T = 50;
    const at::Tensor q = random_normal({T, 4, 8}, 2) * 2.0;
    const at::Tensor k = random_normal({T, 2, 8}, 3) * 2.0;
    for (std::int64_t W : {1, 6, 49, 50, 80}) {
        const at::Tensor one_block = l2a::distant_mass_of(q, k, W, T, T);
        const at::Tensor dense = dense_distant_mass(q, k, W).to(at::kFloat);
        EXPECT_TRUE(at::allclose(one_block, dense, 0.0, 1e-6)) << "window " << W;
        EXPECT_TRUE(at::allclose(l2a::distant_mass_of(q, k, W, 3, 3), one_block, 0.0, 1e-6))
            << "window " << W;
        EXPECT_TRUE(at::allclose(l2a::distant_mass_of(q, k, W, 7, 2), one_block, 0.0, 1e-6))
            << "window " << W;
        if (W >= T) {
            EXPECT_EQ(one_block.abs().max().item<float>(), 0.0f);
        }
    }
    // The uniform-score case is not what makes these agree.
    EXPECT_GT(dense_distant_mass(q, k, 6).std().item<double>(), 0.05);
}

// ---- on a GPU: the kernels' distant mass, and the lens and oracle of a CUDA model ---------------

bool have_gpu() { return l2a::cuda_device_count() > 0; }

#if L2A_TEST_CUDA
TEST(DistantMassOnCuda, KernelsMatchTheBlockedComputation) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
    const std::int64_t T = 3000;
    std::uint64_t seed = 10;
    for (std::int64_t D : {64, 128}) {
        for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
            const at::TensorOptions on_gpu = at::TensorOptions().dtype(dtype).device(at::kCUDA);
            // Scores of a few units, so that the mass is neither uniform nor all on one key.
            const at::Tensor q = (random_normal({T, 8, D}, seed++) * 1.5).to(on_gpu);
            const at::Tensor k = random_normal({T, 2, D}, seed++).to(on_gpu);
            for (std::int64_t W : {1, 255, 1024, 2999, 4000}) {
                const at::Tensor kernels = l2a::kernels_distant_mass(q, k, W).cpu();
                const at::Tensor blocked = l2a::distant_mass_of(q, k, W, 256, 1024).cpu();
                ASSERT_EQ(kernels.sizes(), blocked.sizes());
                const double error = (kernels - blocked).abs().max().item<double>();
                std::printf(
                    "[ kernels vs blocked ] D %lld %s W %lld: max |d| %.2e, mean mass %.3f\n",
                    static_cast<long long>(D), c10::toString(dtype), static_cast<long long>(W),
                    error, blocked.mean().item<double>());
                EXPECT_LT(error, 2e-3) << "D " << D << " W " << W;
                const std::int64_t zero_rows = std::min(W, T);
                EXPECT_EQ(kernels.narrow(0, 0, zero_rows).abs().max().item<float>(), 0.0f);
            }
        }
    }
}
#endif

TEST(AttentionLensOnCuda, MatchesTheCpuModel) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    const std::int64_t t = kTokens - 1;
    // fp32 on the GPU: LibTorch's arithmetic, the CPU's numbers. bf16: the kernels where they
    // apply.
    for (const auto& [dtype, tolerance] :
         {std::pair<std::string, double>{"fp32", 1e-4}, {"bf16", 3e-2}}) {
        const l2a::Model gpu = l2a::Model::load(demo().dir, {"cuda", dtype});
        for (int layer : {0, 3}) {
            const l2a::AttentionLens cpu_lens =
                l2a::attention_lens(demo().model, entering(layer), kTokens, layer, t);
            const l2a::AttentionLens gpu_lens =
                l2a::attention_lens(gpu, entering(layer), kTokens, layer, t);
            ASSERT_EQ(gpu_lens.weights.size(), cpu_lens.weights.size());
            double weight_error = 0.0;
            for (std::size_t i = 0; i < cpu_lens.weights.size(); ++i)
                weight_error = std::max<double>(
                    weight_error, std::abs(gpu_lens.weights[i] - cpu_lens.weights[i]));
            const std::vector<float> cpu_mass =
                l2a::distant_mass(demo().model, entering(layer), kTokens, layer);
            const std::vector<float> gpu_mass =
                l2a::distant_mass(gpu, entering(layer), kTokens, layer);
            ASSERT_EQ(gpu_mass.size(), cpu_mass.size());
            double mass_error = 0.0;
            for (std::size_t i = 0; i < cpu_mass.size(); ++i)
                mass_error = std::max<double>(mass_error, std::abs(gpu_mass[i] - cpu_mass[i]));
            std::printf(
                "[ cuda %s vs cpu ] layer %d: lens weights max |d| %.2e, distant mass "
                "%.2e (lens %.4f vs %.4f)\n",
                dtype.c_str(), layer, weight_error, mass_error, gpu_lens.distant_mass,
                cpu_lens.distant_mass);
            EXPECT_LT(weight_error, tolerance) << dtype << " layer " << layer;
            EXPECT_LT(mass_error, tolerance) << dtype << " layer " << layer;
            EXPECT_NEAR(gpu_lens.distant_mass, cpu_lens.distant_mass, tolerance);
            for (std::int64_t h = 0; h < gpu_lens.heads; ++h) {
                EXPECT_NEAR(sum(gpu_lens.weights.data() + h * kTokens, kTokens), 1.0, 1e-4);
            }
        }
    }
}

// ---- errors -------------------------------------------------------------------------------------

// A CUDA run keeps its states in GPU memory in its dtype; the lens reads them there and gives
// what their fp32 rows give.
TEST(AttentionLensOnCuda, AKeptGpuStateStaysOnTheGpu) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    const l2a::Model gpu = l2a::Model::load(demo().dir, {"cuda", "bf16"});
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(kTokens));
    for (std::size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = static_cast<std::int32_t>((i * 53 + 7) % 256);
    l2a::ResidualCheckpoints kept;
    kept.every_layer = true;
    l2a::PrefillHooks hooks;
    hooks.checkpoints = &kept;
    l2a::RunOptions options;
    options.device = "cuda";
    l2a::run_prefill(gpu, tokens, options, hooks);
    const l2a::HiddenState& state = kept.entering[2];
    ASSERT_TRUE(state.on_device());
    EXPECT_EQ(state.bytes(), kTokens * gpu.config().hidden_size * 2);  // bf16
    EXPECT_TRUE(kept.final_hidden.on_device());
    const std::int64_t t = kTokens - 1;
    const l2a::AttentionLens a = l2a::attention_lens(gpu, state, kTokens, 2, t);
    const l2a::AttentionLens b = l2a::attention_lens(gpu, state.host(), kTokens, 2, t);
    EXPECT_EQ(a.weights, b.weights);
    EXPECT_EQ(a.distant_mass, b.distant_mass);
}

TEST(AttentionLens, RefusesWhatItCannotLookAt) {
    const l2a::Model& model = demo().model;
    const std::vector<float>& state = entering(2);
    const int layers = static_cast<int>(model.config().num_hidden_layers);
    using l2a::test::message_of;

    EXPECT_CONTAINS(message_of([&] { l2a::attention_lens(model, state, kTokens, layers, 0); }),
                    "layer " + std::to_string(layers) + ": the model has " +
                        std::to_string(layers) + " layers");
    EXPECT_CONTAINS(message_of([&] { l2a::distant_mass(model, state, kTokens, -1); }),
                    "layer -1: the model has");
    EXPECT_CONTAINS(message_of([&] { l2a::attention_lens(model, state, kTokens, 2, kTokens); }),
                    "token 300 is outside the state entering layer 2 (tokens 0-299)");
    EXPECT_CONTAINS(message_of([&] { l2a::attention_lens(model, state, kTokens, 2, -1); }),
                    "token -1 is outside");
    const std::span<const float> short_state(state.data(), state.size() - 1);
    EXPECT_CONTAINS(message_of([&] { l2a::attention_lens(model, short_state, kTokens, 2, 0); }),
                    "the state entering layer 2 has " + std::to_string(state.size() - 1) +
                        " values, expected 300 tokens x " +
                        std::to_string(model.config().hidden_size));
    EXPECT_CONTAINS(message_of([&] { l2a::distant_mass(model, short_state, kTokens, 2); }),
                    "values, expected 300 tokens");
    EXPECT_CONTAINS(message_of([&] { l2a::distant_mass(model, std::span<const float>(), 0, 2); }),
                    "the state entering layer 2 has no tokens");

    l2a::ModelConfig plain_config = model.config();
    plain_config.model_type = l2a::ModelType::Qwen3;
    plain_config.num_hidden_layers = 1;
    const l2a::Model plain = l2a::Model::random(plain_config, 5);
    const std::vector<float> plain_state(static_cast<std::size_t>(4 * plain_config.hidden_size),
                                         0.5f);
    EXPECT_CONTAINS(message_of([&] { l2a::attention_lens(plain, plain_state, 4, 0, 1); }),
                    "layer 0 has no global attention: the model is a plain qwen3 model");
    EXPECT_CONTAINS(message_of([&] { l2a::distant_mass(plain, plain_state, 4, 0); }),
                    "layer 0 has no global attention");
}

}  // namespace
