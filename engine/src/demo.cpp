// The demo model and document. The demo model is the trained one shipped in
// assets/models/l2a-demo; this file finds it. The untrained model (tests, fixtures) is a small
// l2a_qwen3 of the same shape with random weights drawn from our own generator (splitmix64
// seeding xoshiro256**, Box-Muller): std::normal_distribution is implementation-defined, and
// every machine must produce the same bytes. The demo document comes from the same generator as
// the demo model's training documents, with a seed of its own.
#include "l2a/engine/demo.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"
#include "l2a/engine/synthetic_docs.h"
#include "l2a/engine/tensor_names.h"
#include "splitmix.h"

namespace l2a {
namespace {

using json = nlohmann::ordered_json;

// Written into config.json; a folder without it (or with another value) is rebuilt.
constexpr const char* kDemoMarker = "untrained-v1";
// The shipped demo model's folder name (assets/models/, share/l2a-studio/models/).
constexpr const char* kDemoModelName = "l2a-demo";
constexpr std::uint64_t kDemoSeed = 0x4c32'4144'454d'4f31ULL;
// Not a seed of the demo model's training or held-out documents (scripts/train-demo).
constexpr std::uint64_t kDemoDocumentSeed = 20270117;

// Architecture of the demo model: small enough to run a few thousand tokens per second on a
// laptop CPU, large enough to have real GQA, QK-norm and a window shorter than the document.
// The untrained model keeps a 256-token window, which the tests' token counts assume; the
// shipped, trained one has 64 (its config.json).
struct DemoShape {
    std::int64_t vocab = 264;  // 256 bytes + 3 special tokens, padded to a multiple of 8
    std::int64_t hidden = 256;
    std::int64_t layers = 6;
    std::int64_t heads = 4;
    std::int64_t kv_heads = 2;
    std::int64_t head_dim = 64;
    std::int64_t intermediate = 704;
    std::int64_t window = 256;
};
constexpr DemoShape kShape;

constexpr std::array<const char*, 3> kSpecialTokens = {"<|endoftext|>", "<|im_start|>",
                                                       "<|im_end|>"};

class Xoshiro256 {
public:
    explicit Xoshiro256(std::uint64_t seed) {
        for (auto& word : s_) word = splitmix64(seed);
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in (0, 1): 53 random bits, never exactly 0 (Box-Muller takes its log).
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
    std::uint64_t below(std::uint64_t n) { return next() % n; }
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double radius = std::sqrt(-2.0 * std::log(uniform()));
        const double angle = 2.0 * 3.14159265358979323846 * uniform();
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
    double spare_ = 0.0;
    bool has_spare_ = false;
};

// Each tensor has its own stream (seed mixed with its name), so adding or reordering tensors
// never changes the others.
std::uint64_t tensor_seed(std::string_view name) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
    for (char c : name) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;
    }
    std::uint64_t state = kDemoSeed ^ hash;
    return splitmix64(state);
}

struct WeightSpec {
    std::string name;
    std::vector<std::int64_t> shape;
    double std = 0.0;  // 0: all ones (norm weights); negative: the negated draw
};

std::vector<WeightSpec> demo_weights() {
    const auto& s = kShape;
    const std::int64_t q_rows = s.heads * s.head_dim;
    const std::int64_t kv_rows = s.kv_heads * s.head_dim;
    constexpr double kMatrixStd = 0.02;
    // At theta = 0.5 the hard decision is sign(w . u), whatever the scale of w; the scale only
    // sets how soft p = sigmoid(z / tau) is. With |u| ~ sqrt(d) = 16 this std gives z a spread of
    // about 0.3, so p at tau = 0.1 spans most of (0, 1) instead of sticking to 0 or 1.
    constexpr double kRouterStd = 0.02;
    // Random routers put the decision boundary anywhere relative to the hidden states' shared
    // direction, so some layers route nearly every token and others nearly none. Flipping the
    // sign of a router turns a fraction f into 1 - f; these signs, found once on the demo
    // document, keep every layer between a few and about half of its tokens, as a sparse
    // trained model would.
    constexpr std::array<double, 6> kRouterSign = {1, -1, -1, 1, -1, 1};
    static_assert(kRouterSign.size() == kShape.layers);

    std::vector<WeightSpec> specs;
    namespace names = tensor_names;
    using names::AttentionPart;
    specs.push_back({std::string(names::kEmbedTokens), {s.vocab, s.hidden}, kMatrixStd});
    for (std::int64_t layer = 0; layer < s.layers; ++layer) {
        const auto name = [layer](std::string_view tensor) {
            return names::layer_tensor(layer, tensor);
        };
        specs.push_back({name(names::kInputNorm), {s.hidden}, 0.0});
        specs.push_back({name(names::kGlobalInputNorm), {s.hidden}, 0.0});
        specs.push_back({name(names::kPostAttentionNorm), {s.hidden}, 0.0});
        for (names::AttentionSet set : {names::AttentionSet::Local, names::AttentionSet::Global}) {
            const auto attn = [&](AttentionPart part) {
                return names::attention_tensor(layer, set, part);
            };
            specs.push_back({attn(AttentionPart::QProj), {q_rows, s.hidden}, kMatrixStd});
            specs.push_back({attn(AttentionPart::KProj), {kv_rows, s.hidden}, kMatrixStd});
            specs.push_back({attn(AttentionPart::VProj), {kv_rows, s.hidden}, kMatrixStd});
            specs.push_back({attn(AttentionPart::OProj), {s.hidden, q_rows}, kMatrixStd});
            specs.push_back({attn(AttentionPart::QNorm), {s.head_dim}, 0.0});
            specs.push_back({attn(AttentionPart::KNorm), {s.head_dim}, 0.0});
        }
        specs.push_back({name(names::kRouter),
                         {1, s.hidden},
                         kRouterSign[static_cast<std::size_t>(layer)] * kRouterStd});
        specs.push_back({name(names::kMlpGate), {s.intermediate, s.hidden}, kMatrixStd});
        specs.push_back({name(names::kMlpUp), {s.intermediate, s.hidden}, kMatrixStd});
        specs.push_back({name(names::kMlpDown), {s.hidden, s.intermediate}, kMatrixStd});
    }
    specs.push_back({std::string(names::kFinalNorm), {s.hidden}, 0.0});
    return specs;
}

std::string demo_config_json() {
    const auto& s = kShape;
    json j;
    j["architectures"] = {"L2AQwen3ForCausalLM"};
    j["model_type"] = "l2a_qwen3";
    j["l2a_untrained"] = true;
    j["l2a_demo"] = kDemoMarker;
    j["vocab_size"] = s.vocab;
    j["hidden_size"] = s.hidden;
    j["intermediate_size"] = s.intermediate;
    j["num_hidden_layers"] = s.layers;
    j["num_attention_heads"] = s.heads;
    j["num_key_value_heads"] = s.kv_heads;
    j["head_dim"] = s.head_dim;
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = 8192;
    j["rope_theta"] = 10000.0;
    j["rms_norm_eps"] = 1e-6;
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["initializer_range"] = 0.02;
    j["tie_word_embeddings"] = true;
    j["torch_dtype"] = "float32";
    j["bos_token_id"] = 256;
    j["eos_token_id"] = 256;
    j["use_cache"] = true;
    j["sliding_window"] = s.window;
    j["sigmoid_temp"] = 0.1;
    j["sigmoid_threshold"] = 0.5;
    j["sigmoid_linear"] = true;
    j["sig_input_type"] = "hidden_linearproj";
    j["l2a_initfrombase"] = false;
    return j.dump(2) + "\n";
}

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others are moved to
// U+0100 and up, so that every byte is a visible character in the vocabulary.
std::string byte_level_symbol(int byte) {
    const bool printable =
        (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
    unsigned codepoint = static_cast<unsigned>(byte);
    if (!printable) {
        int shifted = 0;
        for (int b = 0; b < byte; ++b) {
            const bool p =
                (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            if (!p) ++shifted;
        }
        codepoint = 256u + static_cast<unsigned>(shifted);
    }
    std::string out;
    if (codepoint < 0x80) {
        out += static_cast<char>(codepoint);
    } else {
        out += static_cast<char>(0xc0 | (codepoint >> 6));
        out += static_cast<char>(0x80 | (codepoint & 0x3f));
    }
    return out;
}

}  // namespace

std::string byte_level_tokenizer_json() {
    json byte_level = {{"type", "ByteLevel"},
                       {"add_prefix_space", false},
                       {"trim_offsets", false},
                       {"use_regex", false}};
    json added = json::array();
    for (std::size_t i = 0; i < kSpecialTokens.size(); ++i) {
        added.push_back({{"id", 256 + static_cast<int>(i)},
                         {"content", kSpecialTokens[i]},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}});
    }
    json vocab = json::object();
    for (int byte = 0; byte < 256; ++byte) vocab[byte_level_symbol(byte)] = byte;
    for (std::size_t i = 0; i < kSpecialTokens.size(); ++i) {
        vocab[kSpecialTokens[i]] = 256 + static_cast<int>(i);
    }
    json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = std::move(added);
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = byte_level;
    j["post_processor"] = byte_level;
    j["decoder"] = byte_level;
    j["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", ""},
                  {"end_of_word_suffix", ""},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", std::move(vocab)},
                  {"merges", json::array()}};
    return j.dump(2) + "\n";
}

namespace {

void write_demo_weights(const std::filesystem::path& path) {
    SafetensorsWriter writer(path);
    writer.set_metadata("format", "pt");
    writer.set_metadata("l2a.note", "random weights, untrained (L2A Studio untrained model)");
    const std::vector<WeightSpec> specs = demo_weights();
    for (const WeightSpec& spec : specs) writer.declare(spec.name, DType::F32, spec.shape);
    std::vector<float> buffer;
    for (const WeightSpec& spec : specs) {
        std::int64_t count = 1;
        for (std::int64_t dim : spec.shape) count *= dim;
        Xoshiro256 rng(tensor_seed(spec.name));
        constexpr std::int64_t kPiece = 1 << 16;
        for (std::int64_t done = 0; done < count; done += kPiece) {
            const std::int64_t n = std::min(kPiece, count - done);
            buffer.resize(static_cast<std::size_t>(n));
            for (float& value : buffer) {
                value = spec.std == 0.0 ? 1.0f : static_cast<float>(spec.std * rng.normal());
            }
            writer.write(buffer.data(), buffer.size() * sizeof(float));
        }
    }
    writer.finish();
}

bool demo_folder_complete(const std::filesystem::path& dir) {
    std::error_code ec;
    for (const char* name : {"config.json", "model.safetensors", "tokenizer.json"}) {
        if (!std::filesystem::is_regular_file(dir / name, ec)) return false;
    }
    try {
        const json config = json::parse(read_text_file(dir / "config.json"));
        return config.value("l2a_demo", "") == kDemoMarker;
    } catch (const std::exception&) {
        return false;
    }
}

std::string env(const char* name) {
    const char* value = std::getenv(name);
    return value ? std::string(value) : std::string();
}

}  // namespace

std::vector<std::filesystem::path> demo_model_candidates() {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates;
    if (std::string dir = env("L2A_DEMO_DIR"); !dir.empty()) return {fs::path(dir)};
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec && exe.has_parent_path()) {
        candidates.push_back(exe.parent_path().parent_path() / "share" / "l2a-studio" / "models" /
                             kDemoModelName);
    }
#ifdef L2A_ASSETS_DIR
    candidates.push_back(fs::path(L2A_ASSETS_DIR) / "models" / kDemoModelName);
#endif
    return candidates;
}

namespace {

// The first candidate that holds a config.json, if any.
std::optional<std::filesystem::path> first_model_folder(
    const std::vector<std::filesystem::path>& candidates) {
    std::error_code ec;
    for (const auto& dir : candidates) {
        if (std::filesystem::is_regular_file(dir / "config.json", ec)) return dir;
    }
    return std::nullopt;
}

}  // namespace

std::filesystem::path demo_model_dir() {
    const auto candidates = demo_model_candidates();
    if (auto dir = first_model_folder(candidates)) return *dir;
    return candidates.empty() ? std::filesystem::path(kDemoModelName) : candidates.back();
}

std::filesystem::path require_demo_model() {
    const auto candidates = demo_model_candidates();
    if (auto dir = first_model_folder(candidates)) return *dir;
    std::string looked;
    for (const auto& c : candidates) looked += (looked.empty() ? "" : ", ") + c.string();
    fail(candidates.empty() ? std::string(kDemoModelName) : candidates.back().string(),
         "the demo model is missing (looked in " + looked +
             "); reinstall L2A Studio, or set L2A_DEMO_DIR to a model folder");
}

std::filesystem::path ensure_untrained_model(const std::filesystem::path& dir) {
    if (demo_folder_complete(dir)) return dir;

    static std::atomic<unsigned> counter{0};
    const std::filesystem::path parent = dir.has_parent_path() ? dir.parent_path() : ".";
    const std::filesystem::path temp =
        parent / ("." + dir.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter++));
    const std::string origin = dir.string();
    std::error_code ec;
    std::filesystem::create_directories(temp, ec);
    if (ec) fail(origin, "cannot create the untrained model folder: " + ec.message());
    try {
        write_text_atomically(temp / "config.json", demo_config_json());
        write_text_atomically(temp / "tokenizer.json", byte_level_tokenizer_json());
        write_demo_weights(temp / "model.safetensors");
    } catch (...) {
        std::filesystem::remove_all(temp, ec);
        throw;
    }

    // A leftover incomplete folder is replaced; one completed meanwhile by another process wins.
    if (std::filesystem::exists(dir, ec) && !demo_folder_complete(dir)) {
        std::filesystem::remove_all(dir, ec);
    }
    std::filesystem::rename(temp, dir, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove_all(temp, ignored);
        if (demo_folder_complete(dir)) return dir;
        fail(origin, "cannot create the untrained model folder: " + ec.message());
    }
    return dir;
}

// ---- the demo document ------------------------------------------------------------------------

namespace {

std::string generated_document(std::size_t approx_bytes, std::uint64_t seed,
                               SyntheticDocStyle style) {
    SyntheticDocOptions options;
    options.target_bytes = std::max<std::size_t>(approx_bytes, 1);
    options.seed = seed;
    options.style = style;
    // References reach beyond the demo model's window (64) by far; short documents keep the
    // distance to a quarter of their length so that they still hold some.
    options.min_distance = std::min<std::size_t>(1536, std::max<std::size_t>(64, approx_bytes / 4));
    std::string text = make_synthetic_doc(options).text;
    if (text.size() > approx_bytes + approx_bytes / 10) {
        // Very small requests: end at a line boundary near the requested size.
        const std::size_t cut = text.rfind('\n', approx_bytes);
        text.resize(cut == std::string::npos || cut == 0 ? approx_bytes : cut + 1);
    }
    return text;
}

}  // namespace

std::string demo_document(std::size_t approx_bytes) {
    return generated_document(approx_bytes, kDemoDocumentSeed, SyntheticDocStyle::handbook);
}

}  // namespace l2a
