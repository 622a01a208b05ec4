// The prefill runner on CUDA against the CPU engine: the same routing decisions, router logits,
// logits and per-token NLL, for every attention backend, within the precision of the dtype.
// GPU tests skip without a CUDA device; the device and placement errors run everywhere.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using l2a::test::message_of;

bool have_gpu() { return l2a::cuda_device_count() > 0; }

#define SKIP_WITHOUT_GPU()                                                           \
    do {                                                                             \
        if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)"; \
    } while (false)

fs::path work_dir() { return fs::path(L2A_TEST_WORK_DIR) / "cuda_prefill"; }

// The demo model: 6 L2A layers, 4 query / 2 KV heads of 64, window 256, byte vocabulary.
const fs::path& demo_dir() {
    static const fs::path dir = l2a::ensure_untrained_model(work_dir() / "demo");
    return dir;
}

// The demo model's base: a plain qwen3 folder with the L2A model's local attention weights
// (the global set, its norm and the router left out).
const fs::path& plain_dir() {
    static const fs::path dir = [] {
        const fs::path out = work_dir() / "plain";
        fs::create_directories(out);
        l2a::ModelConfig config = l2a::load_model_config(demo_dir() / "config.json");
        config.model_type = l2a::ModelType::Qwen3;
        l2a::test::write_file(out / "config.json", l2a::model_config_to_json(config));
        const auto source = l2a::SafetensorsFile::open(demo_dir() / "model.safetensors");
        l2a::SafetensorsWriter writer(out / "model.safetensors");
        for (const l2a::TensorInfo& info : source.tensors()) {
            const std::string& name = info.name;
            if (name.find("_global") != std::string::npos ||
                name.find("sigmoid_linear") != std::string::npos) {
                continue;
            }
            const l2a::TensorView view = source.view(info);
            writer.add(name, info.dtype, info.shape, {view.data, view.size_bytes()});
        }
        writer.finish();
        return out;
    }();
    return dir;
}

std::vector<std::int32_t> document_tokens(std::size_t n) {
    std::vector<std::int32_t> ids(n);
    std::uint64_t state = 12345;
    for (auto& id : ids) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        id = static_cast<std::int32_t>((state >> 33) % 259);
    }
    return ids;
}

// max |a - b| / max |b|
double relative_max_error(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0.0;
    double scale = 0.0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double difference = std::abs(static_cast<double>(a[i]) - b[i]);
        if (!(difference <= worst)) worst = difference;
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return scale > 0 ? worst / scale : worst;
}

// KL(softmax(reference) || softmax(other)) of one row of logits, in nats.
double kl_divergence(const std::vector<float>& reference, const std::vector<float>& other) {
    auto log_softmax = [](const std::vector<float>& z) {
        double top = -INFINITY;
        for (float v : z) top = std::max(top, static_cast<double>(v));
        double sum = 0.0;
        for (float v : z) sum += std::exp(v - top);
        std::vector<double> out(z.size());
        for (std::size_t i = 0; i < z.size(); ++i) out[i] = z[i] - top - std::log(sum);
        return out;
    };
    const auto p = log_softmax(reference);
    const auto q = log_softmax(other);
    double kl = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) kl += std::exp(p[i]) * (p[i] - q[i]);
    return kl;
}

// NLL entries 1..T-1 (entry 0 has no prediction).
std::vector<float> predicted_nll(const l2a::PrefillResult& r) {
    return {r.token_nll.begin() + 1, r.token_nll.end()};
}

double mean_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double sum = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) sum += std::abs(static_cast<double>(a[i]) - b[i]);
    return a.empty() ? 0.0 : sum / static_cast<double>(a.size());
}

l2a::RunOptions on(const std::string& device, const std::string& backend) {
    l2a::RunOptions options;
    options.device = device;
    options.backend = backend;
    return options;
}

const l2a::Model& cpu_demo() {
    static const l2a::Model model = l2a::Model::load(demo_dir());
    return model;
}

// ---- CUDA fp32 with the reference backend: the CPU's numbers ---------------------------------

TEST(CudaPrefill, Fp32ReferenceMatchesTheCpu) {
    SKIP_WITHOUT_GPU();
    const l2a::Model gpu = l2a::Model::load(demo_dir(), {"cuda", "fp32"});
    EXPECT_EQ(gpu.placement().dtype, "fp32");
    const auto tokens = document_tokens(700);
    const l2a::RunOptions options = on("cuda", "reference");
    const auto expected = l2a::run_prefill(cpu_demo(), tokens, on("cpu", "reference"));
    const auto actual = l2a::run_prefill(gpu, tokens, options);

    EXPECT_EQ(actual.decisions, expected.decisions);
    const double logits_error = relative_max_error(actual.last_logits, expected.last_logits);
    const double nll_error = relative_max_error(predicted_nll(actual), predicted_nll(expected));
    const double router_error = relative_max_error(actual.router_logits, expected.router_logits);
    std::printf(
        "[ cuda fp32 reference vs cpu ] %s: logits %s, nll %s, router %s (max|d|/max|ref|)\n",
        actual.device.c_str(), l2a::test::scientific(logits_error).c_str(),
        l2a::test::scientific(nll_error).c_str(), l2a::test::scientific(router_error).c_str());
    EXPECT_LE(logits_error, 1e-4);
    EXPECT_LE(nll_error, 1e-4);
    EXPECT_LE(router_error, 1e-4);
    EXPECT_NE(actual.device, "cpu");
    EXPECT_GT(actual.peak_device_bytes, 0);
    // Every range was timed on the GPU and closed.
    ASSERT_FALSE(actual.ranges.empty());
    for (const auto& range : actual.ranges)
        EXPECT_GE(range.end_ns, range.begin_ns) << l2a::range_name(range);
}

// ---- bf16 with every backend against the CPU in fp32 -----------------------------------------

class Bf16Backend : public ::testing::TestWithParam<std::string> {};

// Forced routing: the same seed picks the same tokens whatever the device, so everything
// downstream must agree within bf16 precision: last-row logits max |d| / max |ref| <= 3e-2,
// KL(cpu || gpu) of the next-token distribution <= 1e-3 nats, mean |d NLL| <= 1e-2 nats.
TEST_P(Bf16Backend, ForcedRoutingMatchesTheCpu) {
    SKIP_WITHOUT_GPU();
    const l2a::Model gpu = l2a::Model::load(demo_dir(), {"cuda", "bf16"});
    const auto tokens = document_tokens(700);
    l2a::RunOptions options = on("cuda", GetParam());
    options.routing = l2a::RoutingPolicy::parse("random:0.2");
    options.seed = 11;
    l2a::RunOptions cpu_options = options;
    cpu_options.device = "cpu";
    cpu_options.backend = "reference";
    options.chunk_size = 48;  // many query chunks (sdpa: routed chunks with and without prefix)
    const auto expected = l2a::run_prefill(cpu_demo(), tokens, cpu_options);
    const auto actual = l2a::run_prefill(gpu, tokens, options);

    EXPECT_EQ(actual.decisions, expected.decisions);
    const double logits_error = relative_max_error(actual.last_logits, expected.last_logits);
    const double kl = kl_divergence(expected.last_logits, actual.last_logits);
    const double nll_error = mean_abs_difference(predicted_nll(actual), predicted_nll(expected));
    const double router_error = relative_max_error(actual.router_logits, expected.router_logits);
    std::printf(
        "[ bf16 %s vs cpu fp32 ] %s: logits %s, KL %s, mean|dNLL| %s, router %s, peak %.1f MiB\n",
        GetParam().c_str(), actual.device.c_str(), l2a::test::scientific(logits_error).c_str(),
        l2a::test::scientific(kl).c_str(), l2a::test::scientific(nll_error).c_str(),
        l2a::test::scientific(router_error).c_str(),
        static_cast<double>(actual.peak_device_bytes) / (1 << 20));
    EXPECT_LE(logits_error, 3e-2);
    EXPECT_LE(kl, 1e-3);
    EXPECT_LE(nll_error, 1e-2);
    EXPECT_LE(router_error, 3e-2);
}

// Learned routing: a token may first land on the other side of the cut only where the CPU's
// router logit is within bf16 reach of it, |z - cut| <= 3e-2 * max |z| of the layer (the
// logits' bf16 tolerance: the router logits differ by up to ~1e-2 of their range), and such
// tokens are rare. After its first flip a token's hidden state legitimately differs (it ran, or
// skipped, a global attention), so its later layers are not held to the band.
TEST_P(Bf16Backend, LearnedRoutingMakesTheCpuDecisions) {
    SKIP_WITHOUT_GPU();
    const l2a::Model gpu = l2a::Model::load(demo_dir(), {"cuda", "bf16"});
    const auto tokens = document_tokens(700);
    const auto expected = l2a::run_prefill(cpu_demo(), tokens, on("cpu", "reference"));
    const auto actual = l2a::run_prefill(gpu, tokens, on("cuda", GetParam()));
    const auto T = static_cast<std::size_t>(expected.num_tokens);
    const double cut = 0.0;  // the demo's theta 0.5
    std::size_t flipped = 0;
    std::size_t routed = 0;
    std::vector<bool> diverged(T, false);
    for (std::size_t layer = 0; layer < static_cast<std::size_t>(expected.num_layers); ++layer) {
        double scale = 0.0;
        for (std::size_t t = 0; t < T; ++t) {
            scale = std::max(scale,
                             std::abs(static_cast<double>(expected.router_logits[layer * T + t])));
        }
        for (std::size_t t = 0; t < T; ++t) {
            const std::size_t i = layer * T + t;
            routed += expected.decisions[i];
            if (actual.decisions[i] == expected.decisions[i] || diverged[t]) continue;
            ++flipped;
            diverged[t] = true;
            EXPECT_LE(std::abs(expected.router_logits[i] - cut), 3e-2 * scale)
                << "layer " << layer << " token " << t;
        }
    }
    std::printf(
        "[ bf16 %s learned routing ] %zu tokens first flip within %zu decisions (%zu routed on the "
        "CPU)\n",
        GetParam().c_str(), flipped, expected.decisions.size(), routed);
    EXPECT_GT(routed, 0u);
    EXPECT_LT(routed, expected.decisions.size());
    EXPECT_LE(flipped, expected.decisions.size() / 100);
}

INSTANTIATE_TEST_SUITE_P(Backends, Bf16Backend, ::testing::Values("reference", "sdpa", "kernels"),
                         [](const auto& info) { return info.param; });

// ---- plain models: full causal attention ------------------------------------------------------

TEST(CudaPrefill, PlainModelFullCausalMatchesTheCpu) {
    SKIP_WITHOUT_GPU();
    const l2a::Model cpu = l2a::Model::load(plain_dir());
    const l2a::Model gpu = l2a::Model::load(plain_dir(), {"cuda", "bf16"});
    const auto tokens = document_tokens(700);
    const auto expected = l2a::run_prefill(cpu, tokens, on("cpu", "reference"));
    for (const char* backend : {"sdpa", "kernels"}) {
        const auto actual = l2a::run_prefill(gpu, tokens, on("cuda", backend));
        const double logits_error = relative_max_error(actual.last_logits, expected.last_logits);
        const double kl = kl_divergence(expected.last_logits, actual.last_logits);
        const double nll_error =
            mean_abs_difference(predicted_nll(actual), predicted_nll(expected));
        std::printf("[ plain bf16 %s vs cpu fp32 ] logits %s, KL %s, mean|dNLL| %s\n", backend,
                    l2a::test::scientific(logits_error).c_str(), l2a::test::scientific(kl).c_str(),
                    l2a::test::scientific(nll_error).c_str());
        EXPECT_LE(logits_error, 3e-2) << backend;
        EXPECT_LE(kl, 1e-3) << backend;
        EXPECT_LE(nll_error, 1e-2) << backend;
        EXPECT_EQ(actual.decisions, std::vector<std::uint8_t>(actual.decisions.size(), 1));
    }
}

// ---- as_base: an L2A model run as the plain model of its local weights ------------------------

void expect_same_run(const l2a::PrefillResult& a, const l2a::PrefillResult& b, double tolerance) {
    EXPECT_EQ(a.decisions, b.decisions);
    EXPECT_LE(relative_max_error(a.last_logits, b.last_logits), tolerance);
    EXPECT_LE(relative_max_error(predicted_nll(a), predicted_nll(b)), tolerance);
    for (float z : a.router_logits) ASSERT_TRUE(std::isnan(z));  // no router ran
}

TEST(AsBase, EqualsThePlainModelOfTheLocalWeightsOnTheCpu) {
    const l2a::Model plain = l2a::Model::load(plain_dir());
    const auto tokens = document_tokens(400);
    l2a::RunOptions as_base;
    as_base.as_base = true;
    const auto base = l2a::run_prefill(cpu_demo(), tokens, as_base);
    const auto reference = l2a::run_prefill(plain, tokens, {});
    expect_same_run(base, reference, 1e-6);
    // And it is not the L2A model's own run.
    const auto l2a_run = l2a::run_prefill(cpu_demo(), tokens, {});
    EXPECT_GT(relative_max_error(l2a_run.last_logits, base.last_logits), 1e-3);
}

TEST(AsBase, RandomModelsShareTheirBaseWeights) {
    l2a::ModelConfig config = l2a::load_model_config(demo_dir() / "config.json");
    config.num_hidden_layers = 2;
    l2a::ModelConfig plain_config = config;
    plain_config.model_type = l2a::ModelType::Qwen3;
    const l2a::Model l2a_model = l2a::Model::random(config, 9);
    const l2a::Model plain = l2a::Model::random(plain_config, 9);
    EXPECT_TRUE(l2a_model.summary().untrained);
    EXPECT_EQ(l2a_model.tokenizer(), nullptr);
    EXPECT_GT(l2a_model.summary().parameter_count, plain.summary().parameter_count);
    const auto tokens = document_tokens(300);
    l2a::RunOptions as_base;
    as_base.as_base = true;
    expect_same_run(l2a::run_prefill(l2a_model, tokens, as_base),
                    l2a::run_prefill(plain, tokens, {}), 1e-6);
    // Another seed, other weights.
    const auto other = l2a::run_prefill(l2a::Model::random(plain_config, 10), tokens, {});
    EXPECT_GT(
        relative_max_error(other.last_logits, l2a::run_prefill(plain, tokens, {}).last_logits),
        1e-3);
}

TEST(AsBase, EqualsThePlainModelOnCuda) {
    SKIP_WITHOUT_GPU();
    const l2a::Model l2a_model = l2a::Model::load(demo_dir(), {"cuda", "bf16"});
    const l2a::Model plain = l2a::Model::load(plain_dir(), {"cuda", "bf16"});
    const auto tokens = document_tokens(700);
    for (const char* backend : {"reference", "sdpa", "kernels"}) {
        SCOPED_TRACE(backend);
        l2a::RunOptions as_base = on("cuda", backend);
        as_base.as_base = true;
        // The same operators on the same bf16 weights: equal up to run-to-run reduction order.
        expect_same_run(l2a::run_prefill(l2a_model, tokens, as_base),
                        l2a::run_prefill(plain, tokens, on("cuda", backend)), 1e-3);
    }
}

TEST(CudaPrefill, RandomModelOnTheDevice) {
    SKIP_WITHOUT_GPU();
    l2a::ModelConfig config = l2a::load_model_config(demo_dir() / "config.json");
    const l2a::Model a = l2a::Model::random(config, 3, {"cuda", "auto"});
    const l2a::Model b = l2a::Model::random(config, 3, {"cuda", "auto"});
    EXPECT_EQ(a.placement().dtype, "bf16");
    const auto tokens = document_tokens(500);
    l2a::RunOptions options = on("cuda", "kernels");
    options.routing = l2a::RoutingPolicy::parse("random:0.3");
    options.token_nll = false;
    const auto ra = l2a::run_prefill(a, tokens, options);
    const auto rb = l2a::run_prefill(b, tokens, options);
    EXPECT_EQ(ra.last_logits, rb.last_logits);  // seeded: the same weights, the same kernels
    for (std::size_t t = 1; t < ra.token_nll.size(); ++t) ASSERT_TRUE(std::isnan(ra.token_nll[t]));
    ASSERT_EQ(ra.last_logits.size(), static_cast<std::size_t>(config.vocab_size));
    for (float v : ra.last_logits) ASSERT_TRUE(std::isfinite(v));
}

// The fused SiLU product needs MLP rows of whole 16-byte vectors: a model whose MLP width is
// not a multiple of 8 runs `--backend kernels` on the plain ops for its MLP, and agrees with
// `--backend sdpa` (the same weights) within bf16 precision.
TEST(CudaPrefill, KernelsRunMlpWidthsThatAreNotMultiplesOfEight) {
    SKIP_WITHOUT_GPU();
    l2a::ModelConfig config = l2a::load_model_config(demo_dir() / "config.json");
    config.intermediate_size += 4;
    ASSERT_NE(config.intermediate_size % 8, 0);
    const l2a::Model model = l2a::Model::random(config, 5, {"cuda", "bf16"});
    const auto tokens = document_tokens(300);
    l2a::RunOptions options = on("cuda", "kernels");
    options.routing = l2a::RoutingPolicy::parse("random:0.3");
    const auto kernels = l2a::run_prefill(model, tokens, options);
    options.backend = "sdpa";
    const auto sdpa = l2a::run_prefill(model, tokens, options);
    EXPECT_EQ(kernels.decisions, sdpa.decisions);
    const double logits_error = relative_max_error(kernels.last_logits, sdpa.last_logits);
    std::printf("[ kernels vs sdpa, MLP width %lld ] logits %s (max|d|/max|ref|)\n",
                static_cast<long long>(config.intermediate_size),
                l2a::test::scientific(logits_error).c_str());
    EXPECT_LE(logits_error, 3e-2);
    EXPECT_LE(mean_abs_difference(predicted_nll(kernels), predicted_nll(sdpa)), 1e-2);
}

// ---- cancellation and progress on the GPU ----------------------------------------------------

TEST(CudaPrefill, CancelAndProgressWork) {
    SKIP_WITHOUT_GPU();
    const l2a::Model gpu = l2a::Model::load(demo_dir(), {"cuda", "bf16"});
    std::atomic<bool> cancel{false};
    double last = -1.0;
    l2a::PrefillHooks hooks;
    hooks.cancel = &cancel;
    hooks.progress = [&](const l2a::RunProgress& p) {
        EXPECT_GE(p.fraction, last);
        last = p.fraction;
        if (p.layer == 3) cancel = true;
    };
    EXPECT_THROW(l2a::run_prefill(gpu, document_tokens(300), on("cuda", "kernels"), hooks),
                 l2a::Cancelled);
    EXPECT_GT(last, 0.0);
    EXPECT_LT(last, 1.0);
}

// ---- clear errors for what cannot run (no GPU needed) ----------------------------------------

TEST(DeviceErrors, BadDeviceBackendAndDtypeCombinations) {
    const auto tokens = document_tokens(8);
    auto run_error = [&](const l2a::Model& model, const l2a::RunOptions& options) {
        return message_of([&] { l2a::run_prefill(model, tokens, options); });
    };
    EXPECT_CONTAINS(run_error(cpu_demo(), on("cpu", "kernels")), "--backend kernels: runs on CUDA");
    EXPECT_CONTAINS(run_error(cpu_demo(), on("cpu", "sdpa")), "--backend sdpa: runs on CUDA");
    EXPECT_CONTAINS(run_error(cpu_demo(), on("cpu", "flash")),
                    "--backend flash: expected reference, sdpa or kernels");

    EXPECT_CONTAINS(message_of([] {
                        l2a::Model::load(demo_dir(), {"cpu", "bf16"});
                    }),
                    "--dtype bf16: the CPU engine runs fp32 only");
    EXPECT_CONTAINS(message_of([] {
                        l2a::Model::load(demo_dir(), {"cpu", "fp64"});
                    }),
                    "--dtype fp64: expected auto, bf16, fp16 or fp32");
    EXPECT_CONTAINS(message_of([] { l2a::require_device("gpu"); }),
                    "--device gpu: expected cpu, cuda or cuda:N");
    EXPECT_CONTAINS(message_of([] {
                        l2a::Model::load(demo_dir(), {"cuda:x", "auto"});
                    }),
                    "expected cpu, cuda or cuda:N");
    EXPECT_NO_THROW(l2a::require_device("cpu"));

    // What --device cuda says depends on the build and the machine; it is always an error
    // that names the alternative, never a crash.
    const std::string missing = message_of([] {
        l2a::Model::load(demo_dir(), {"cuda:7", "auto"});
    });
    if (!l2a::cuda_built()) {
        EXPECT_CONTAINS(missing, "--device cuda:7: this build has no CUDA support");
        EXPECT_EQ(l2a::cuda_device_count(), 0);
    } else if (!have_gpu()) {
        EXPECT_CONTAINS(missing, "--device cuda:7: no CUDA device is visible");
    } else if (l2a::cuda_device_count() <= 7) {
        EXPECT_CONTAINS(missing, "--device cuda:7: no such device; available: cpu, cuda:0");
    }
    if (!have_gpu()) {
        EXPECT_CONTAINS(message_of([] { l2a::require_device("cuda"); }), "available: cpu");
        EXPECT_CONTAINS(run_error(cpu_demo(), on("cuda", "reference")), "--device cuda");
    }
}

TEST(DeviceErrors, KernelsNeedHalfPrecisionAndSupportedHeadDims) {
    SKIP_WITHOUT_GPU();
    const auto tokens = document_tokens(8);
    const l2a::Model fp32 = l2a::Model::load(demo_dir(), {"cuda", "fp32"});
    EXPECT_CONTAINS(message_of([&] { l2a::run_prefill(fp32, tokens, on("cuda", "kernels")); }),
                    "--backend kernels: needs bf16 or fp16 weights");
    l2a::ModelConfig config = l2a::load_model_config(demo_dir() / "config.json");
    config.num_hidden_layers = 1;
    config.head_dim = 32;
    const l2a::Model odd = l2a::Model::random(config, 1, {"cuda", "bf16"});
    EXPECT_CONTAINS(message_of([&] { l2a::run_prefill(odd, tokens, on("cuda", "kernels")); }),
                    "--backend kernels: head_dim 32 is not supported");
    // The CPU model cannot run on the GPU, nor the GPU model on the CPU.
    EXPECT_CONTAINS(message_of([&] { l2a::run_prefill(cpu_demo(), tokens, on("cuda", "sdpa")); }),
                    "--device cuda: the model was loaded on cpu");
    EXPECT_CONTAINS(message_of([&] { l2a::run_prefill(fp32, tokens, on("cpu", "reference")); }),
                    "--device cpu: the model was loaded on cuda");
}

TEST(DeviceErrors, OutOfGpuMemoryIsAnError) {
    SKIP_WITHOUT_GPU();
    // A vocabulary far larger than any GPU: loading fails with a message, not a crash.
    l2a::ModelConfig config = l2a::load_model_config(demo_dir() / "config.json");
    config.num_hidden_layers = 1;
    config.vocab_size = std::int64_t{1} << 32;
    config.hidden_size = 256;
    const std::string message = message_of([&] {
        l2a::Model::random(config, 1, {"cuda", "bf16"});
    });
    EXPECT_CONTAINS(message, "out of GPU memory while loading");
    EXPECT_CONTAINS(message, "GiB free");
    std::printf("[ out of memory ] %s\n", message.c_str());
}

// ---- a Qwen3-8B-shaped L2A model at 128K tokens (L2A_BIG_TEST=1) ------------------------------

TEST(CudaPrefillBig, Qwen3_8BShapeAt128KTokens) {
    SKIP_WITHOUT_GPU();
    const char* big = std::getenv("L2A_BIG_TEST");
    if (!big || std::string(big) != "1") GTEST_SKIP() << "set L2A_BIG_TEST=1";
    l2a::ModelConfig config;
    config.model_type = l2a::ModelType::L2AQwen3;
    config.vocab_size = 151936;
    config.hidden_size = 4096;
    config.intermediate_size = 12288;
    config.num_hidden_layers = 36;
    config.num_attention_heads = 32;
    config.num_key_value_heads = 8;
    config.head_dim = 128;
    config.max_position_embeddings = 131072;
    config.rope_theta = 1000000.0;
    config.l2a.sliding_window = 4095;
    const std::int64_t T = 131072;
    const auto start = std::chrono::steady_clock::now();
    const l2a::Model model = l2a::Model::random(config, 1, {"cuda", "bf16"});
    const double made =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ big ] random Qwen3-8B-shaped L2A model: %.2f B parameters, made in %.1f s\n",
                static_cast<double>(model.summary().parameter_count) / 1e9, made);
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(T));
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = static_cast<std::int32_t>((i * 2654435761u) % 151000);
    }
    auto run = [&](const std::string& backend, bool as_base) {
        l2a::RunOptions options = on("cuda", backend);
        options.as_base = as_base;
        if (!as_base) {
            options.routing = l2a::RoutingPolicy::parse("random:0.2");
        }
        options.token_nll = false;
        const auto result = l2a::run_prefill(model, tokens, options);
        double local = 0, global = 0, mlp = 0, head = 0;
        for (const auto& r : result.ranges) {
            const double s = static_cast<double>(r.end_ns - r.begin_ns) * 1e-9;
            if (r.phase == l2a::Phase::Local) local += s;
            if (r.phase == l2a::Phase::Global) global += s;
            if (r.phase == l2a::Phase::Mlp) mlp += s;
            if (r.phase == l2a::Phase::LmHead) head += s;
        }
        std::printf(
            "[ big ] %s%s, %lld tokens on %s: %.2f s, peak %.1f GiB "
            "(local %.2f s, global %.2f s, mlp %.2f s, lm_head %.3f s)\n",
            backend.c_str(), as_base ? " as base (full causal)" : " L2A random:0.2",
            static_cast<long long>(T), result.device.c_str(), result.wall_seconds,
            static_cast<double>(result.peak_device_bytes) / (1024.0 * 1024 * 1024), local, global,
            mlp, head);
        EXPECT_LT(result.peak_device_bytes, std::int64_t{80} << 30);
        for (float v : result.last_logits) EXPECT_TRUE(std::isfinite(v));
        return result.wall_seconds;
    };
    const double l2a_kernels = run("kernels", false);
    const double base_sdpa = run("sdpa", true);
    std::printf("[ big ] time to first token: L2A kernels / base cuDNN SDPA = %.2f\n",
                l2a_kernels / base_sdpa);
    run("sdpa", false);
}

}  // namespace
