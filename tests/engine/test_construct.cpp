// `construct`: an L2A checkpoint made from a Qwen2/Qwen3 one loads in the engine, has the layout
// of l2a_qwen3/l2a_qwen2 (global sets equal to the base attention, zero router), and, with every
// token kept local and a window that covers the document, runs exactly as the base model (the
// local path is then the base attention). The base checkpoints are the HuggingFace reference
// cases of hf_reference.py (the parity test's), so they are genuine transformers checkpoints.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "l2a/engine/checkpoint.h"
#include "l2a/engine/construct.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

fs::path reference_dir() { return fs::path(L2A_TEST_WORK_DIR) / "hf_parity"; }
fs::path work_dir() { return fs::path(L2A_TEST_WORK_DIR) / "construct"; }

const test::ReferenceStatus& reference_status() {
    static const test::ReferenceStatus status = [] {
        fs::create_directories(reference_dir());
        return test::make_reference(fs::path(L2A_SOURCE_DIR) / "tests/engine/hf_reference.py",
                                    test::shell_quote(reference_dir().string()),
                                    reference_dir() / "hf_reference.log", "transformers reference",
                                    "hf_reference.py");
    }();
    return status;
}

class Construct : public test::ReferenceTest<reference_status>,
                  public testing::WithParamInterface<std::string> {};
class ConstructErrors : public test::ReferenceTest<reference_status> {};

struct Logits {
    std::vector<float> values;
    PrefillResult result;
};

Logits run(const Model& model, const std::vector<std::int32_t>& tokens, RoutingKind routing) {
    Logits out;
    RunOptions options;
    options.routing = {routing, 0.0};
    options.chunk_size = 16;
    PrefillHooks hooks;
    hooks.logits_sink = [&](std::int64_t, std::int64_t rows, std::int64_t vocab,
                            const float* data) {
        out.values.insert(out.values.end(), data, data + rows * vocab);
    };
    out.result = run_prefill(model, tokens, options, hooks);
    return out;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, double(std::abs(a[i] - b[i])));
    return worst;
}

TEST_P(Construct, KeptLocalItRunsAsTheBase) {
    const std::string name = GetParam();
    const fs::path base = reference_dir() / name;
    const fs::path out = work_dir() / name;
    fs::create_directories(work_dir());
    ConstructOptions options;
    options.window = 4095;  // covers the test documents
    options.overwrite = true;
    const ConstructSummary s = construct_l2a(base, out, options);
    EXPECT_EQ(s.l2a_type, "l2a_" + s.base_type);

    const Model base_model = Model::load(base);
    const Model l2a_model = Model::load(out);
    EXPECT_TRUE(l2a_model.summary().is_l2a);
    EXPECT_FALSE(base_model.summary().is_l2a);
    EXPECT_EQ(l2a_model.summary().model_type, s.l2a_type);
    EXPECT_EQ(l2a_model.summary().sliding_window, 4095);
    EXPECT_DOUBLE_EQ(l2a_model.summary().sigmoid_temp, 0.1);

    const auto file = SafetensorsFile::open(reference_dir() / (name + ".reference.safetensors"));
    const std::vector<std::int32_t> tokens =
        test::read_tensor<std::int32_t>(file, "tokens", DType::I32);
    const Logits a = run(base_model, tokens, RoutingKind::Learned);
    const Logits b = run(l2a_model, tokens, RoutingKind::Local);
    ASSERT_EQ(a.values.size(), b.values.size());
    EXPECT_LE(max_difference(a.values, b.values), 1e-4) << name;
    for (std::uint8_t d : b.result.decisions) ASSERT_EQ(d, 0);

    // The zero router sends every token to global attention at the default threshold.
    const Logits c = run(l2a_model, tokens, RoutingKind::Learned);
    for (std::uint8_t d : c.result.decisions) ASSERT_EQ(d, 1);
    for (float z : c.result.router_logits) ASSERT_EQ(z, 0.0f);
}

TEST_P(Construct, LayoutCopiesTheAttentionAndZeroesTheRouter) {
    const std::string name = GetParam();
    const fs::path base = reference_dir() / name;
    const fs::path out = work_dir() / (name + "_layout");
    ConstructOptions options;
    options.window = 64;
    options.temperature = 0.2;
    options.overwrite = true;
    construct_l2a(base, out, options);
    const auto config = nlohmann::json::parse(test::read_file(out / "config.json"));
    const auto base_config = nlohmann::json::parse(test::read_file(base / "config.json"));
    EXPECT_EQ(config["sliding_window"], 64);
    EXPECT_EQ(config["sigmoid_temp"], 0.2);
    EXPECT_EQ(config["sigmoid_threshold"], 0.5);
    EXPECT_EQ(config["sig_input_type"], "hidden_linearproj");
    EXPECT_EQ(config["l2a_initfrombase"], true);
    EXPECT_EQ(config["hidden_size"], base_config["hidden_size"]);  // the rest is kept
    EXPECT_EQ(config["num_hidden_layers"], base_config["num_hidden_layers"]);

    const Checkpoint b = Checkpoint::open(base);
    const Checkpoint l = Checkpoint::open(out);
    const std::int64_t layers = config["num_hidden_layers"];
    const std::int64_t hidden = config["hidden_size"];
    auto same_bytes = [](const TensorView& x, const TensorView& y) {
        return x.info->dtype == y.info->dtype && x.info->shape == y.info->shape &&
               x.size_bytes() == y.size_bytes() && std::memcmp(x.data, y.data, x.size_bytes()) == 0;
    };
    for (std::int64_t i = 0; i < layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        for (const char* t : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
            const std::string w = p + "self_attn." + t + ".weight";
            EXPECT_TRUE(same_bytes(l.get(w), b.get(w))) << w;
            EXPECT_TRUE(same_bytes(l.get(p + "self_attn." + t + "_global.weight"), b.get(w))) << w;
            const std::string bias = p + "self_attn." + t + ".bias";
            EXPECT_EQ(l.has(p + "self_attn." + t + "_global.bias"), b.has(bias)) << bias;
        }
        for (const char* t : {"q_norm", "k_norm"}) {
            const std::string w = p + "self_attn." + t + ".weight";
            EXPECT_EQ(l.has(p + "self_attn." + t + "_global.weight"), b.has(w)) << w;
        }
        EXPECT_TRUE(same_bytes(l.get(p + "input_layernorm_global.weight"),
                               b.get(p + "input_layernorm.weight")));
        const TensorView router = l.get(p + "self_attn.sigmoid_linear.weight", {1, hidden});
        for (std::size_t k = 0; k < router.size_bytes(); ++k)
            ASSERT_EQ(router.data[k], std::byte{0});
    }
    EXPECT_TRUE(fs::exists(out / "tokenizer.json") == fs::exists(base / "tokenizer.json"));
}

TEST_F(ConstructErrors, NameTheFileAndLeaveNothingBehind) {
    const fs::path base = reference_dir() / "qwen3_mha";
    const fs::path out = work_dir() / "errors";
    fs::remove_all(out);
    ConstructOptions options;
    construct_l2a(base, out, options);
    // An L2A checkpoint cannot be constructed again.
    EXPECT_CONTAINS(test::message_of([&] { construct_l2a(out, work_dir() / "twice", options); }),
                    "already an L2A model");
    // The output exists: only with --force.
    EXPECT_CONTAINS(test::message_of([&] { construct_l2a(base, out, options); }), "--force");
    EXPECT_CONTAINS(test::message_of([&] { construct_l2a(work_dir() / "nothing", out, options); }),
                    "no config.json");
    EXPECT_CONTAINS(
        test::message_of([&] { construct_l2a(base, base, ConstructOptions{.overwrite = true}); }),
        "source model's own folder");
    for (const auto& entry : fs::directory_iterator(work_dir())) {
        EXPECT_EQ(entry.path().filename().string().find(".writing-"), std::string::npos)
            << "temporary folder left: " << entry.path();
    }
}

// `convert`: the bf16 copy holds every weight rounded to nearest even (checked here bit by bit
// against an independent rounding of the fp32 source), loads, and runs close to the original; a
// second conversion back to fp32 is exact. Config and tokenizer files come along.
std::uint16_t round_to_bf16(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    const std::uint32_t lsb = (bits >> 16) & 1u;
    return static_cast<std::uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}

TEST_F(ConstructErrors, ConvertToBf16AndBack) {
    const fs::path base = reference_dir() / "qwen3_gqa4_bias";
    const fs::path l2a = work_dir() / "convert_source";
    const fs::path half = work_dir() / "convert_bf16";
    const fs::path back = work_dir() / "convert_f32";
    ConstructOptions options;
    options.overwrite = true;
    construct_l2a(base, l2a, options);
    const ConvertSummary s = convert_checkpoint(l2a, half, DType::BF16, /*overwrite=*/true);
    EXPECT_GT(s.tensors, 0);
    EXPECT_EQ(s.tensors_converted, s.tensors);
    EXPECT_LT(s.bytes_after, s.bytes_before * 6 / 10);
    // config.json names the new type of the weights; everything else in it is unchanged.
    auto config_half = nlohmann::json::parse(test::read_file(half / "config.json"));
    auto config_source = nlohmann::json::parse(test::read_file(l2a / "config.json"));
    EXPECT_EQ(config_half["torch_dtype"], "bfloat16");
    config_half.erase("torch_dtype");
    config_source.erase("torch_dtype");
    EXPECT_EQ(config_half, config_source);
    for (const auto& entry : fs::directory_iterator(l2a)) {
        if (entry.path().extension() != ".safetensors") {
            EXPECT_TRUE(fs::exists(half / entry.path().filename()))
                << entry.path().filename() << " not copied";
        }
    }

    const auto source = SafetensorsFile::open(l2a / "model.safetensors");
    const auto converted = SafetensorsFile::open(half / "model.safetensors");
    ASSERT_EQ(source.tensors().size(), converted.tensors().size());
    for (const TensorInfo& info : source.tensors()) {
        const TensorView v = converted.view(info.name);
        ASSERT_EQ(v.info->dtype, DType::BF16) << info.name;
        ASSERT_EQ(v.info->shape, info.shape) << info.name;
        const std::vector<float> f = test::elements_of<float>(source.view(info));
        const std::vector<std::uint16_t> h = test::elements_of<std::uint16_t>(v);
        ASSERT_EQ(f.size(), h.size());
        for (std::size_t i = 0; i < f.size(); ++i)
            ASSERT_EQ(h[i], round_to_bf16(f[i])) << info.name << "[" << i << "]";
    }

    const Model original = Model::load(l2a);
    const Model copy = Model::load(half);
    const auto file =
        SafetensorsFile::open(reference_dir() / "qwen3_gqa4_bias.reference.safetensors");
    const std::vector<std::int32_t> tokens =
        test::read_tensor<std::int32_t>(file, "tokens", DType::I32);
    const Logits a = run(original, tokens, RoutingKind::Local);
    const Logits b = run(copy, tokens, RoutingKind::Local);
    ASSERT_EQ(a.values.size(), b.values.size());
    const double difference = max_difference(a.values, b.values);
    EXPECT_GT(difference, 0.0) << "the weights were rounded, so the logits must move";
    EXPECT_LT(difference, 0.25);

    // bf16 -> f32 is exact: converting back gives the bf16 values widened.
    convert_checkpoint(half, back, DType::F32, /*overwrite=*/true);
    const auto widened = SafetensorsFile::open(back / "model.safetensors");
    for (const TensorInfo& info : converted.tensors()) {
        const std::vector<std::uint16_t> h = test::elements_of<std::uint16_t>(converted.view(info));
        const std::vector<float> f = test::read_tensor<float>(widened, info.name, DType::F32);
        for (std::size_t i = 0; i < h.size(); ++i) {
            ASSERT_EQ(std::bit_cast<std::uint32_t>(f[i]), std::uint32_t{h[i]} << 16) << info.name;
        }
    }
    const Logits c = run(Model::load(back), tokens, RoutingKind::Local);
    EXPECT_EQ(max_difference(b.values, c.values), 0.0);
}

TEST_F(ConstructErrors, ConvertErrorsNameTheProblem) {
    const fs::path base = reference_dir() / "qwen3_mha";
    const fs::path out = work_dir() / "convert_errors";
    fs::remove_all(out);
    convert_checkpoint(base, out, DType::F16, false);
    EXPECT_CONTAINS(test::message_of([&] { convert_checkpoint(base, out, DType::F16, false); }),
                    "--force");
    EXPECT_CONTAINS(test::message_of(
                        [&] { convert_checkpoint(work_dir() / "nothing", out, DType::F16, true); }),
                    "no config.json");
    EXPECT_CONTAINS(test::message_of([&] { convert_checkpoint(base, base, DType::F16, true); }),
                    "own folder");
    EXPECT_CONTAINS(test::message_of([&] { convert_checkpoint(base, out, DType::I32, true); }),
                    "f32, bf16 or f16");
    // f16 keeps the values that fit: a model loads and runs.
    EXPECT_NO_THROW(Model::load(out));
}

INSTANTIATE_TEST_SUITE_P(Cases, Construct,
                         testing::Values("qwen3_mha", "qwen3_gqa4_bias", "qwen3_gqa2_tied_hd32",
                                         "qwen3_bf16_weights", "qwen2_gqa2", "qwen2_gqa4_sharded"));

}  // namespace
}  // namespace l2a
