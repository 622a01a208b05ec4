// `l2a info`: what a model is and what its KV cache costs, read from config.json and the
// safetensors headers only (no weights are loaded, so it is instant even for large models).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "engine_option.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/checkpoint.h"
#include "l2a/engine/config.h"
#include "l2a/engine/device.h"
#include "l2a/engine/metrics.h"
#include "l2a/profiler/remote.h"
#include "model_source.h"
#include "text_format.h"

namespace l2a::cli {
namespace {

using json = nlohmann::ordered_json;

constexpr int kBf16Bytes = 2;
constexpr std::int64_t kExampleLengths[] = {8192, 32768, 131072};

const char* architecture_name(ModelType type) {
    switch (type) {
        case ModelType::Qwen2:
            return "Qwen2 (full attention)";
        case ModelType::Qwen3:
            return "Qwen3 (full attention)";
        case ModelType::L2AQwen2:
            return "L2A on Qwen2";
        case ModelType::L2AQwen3:
            return "L2A on Qwen3";
    }
    return "?";
}

// KV-cache bytes of the whole model after `tokens` tokens, as compute_metrics counts them.
struct KvCost {
    const ModelConfig& config;
    std::int64_t per_token_per_cache;  // one layer, one cache (K and V)
    std::int64_t without_l2a(std::int64_t tokens) const {
        return config.num_hidden_layers * tokens * per_token_per_cache;
    }
    std::int64_t with_l2a(std::int64_t tokens) const {
        const LayerKv layer = layer_kv_bytes(config, tokens, kBf16Bytes);
        return config.num_hidden_layers * (layer.local_bytes + layer.global_bytes);
    }
};

std::string number_text(double value) {
    std::string text = format_fixed(value, 6);
    if (text.find('.') == std::string::npos) return text;
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    return text;
}

}  // namespace

// What a remote engine offers: its version, devices, model folders and shapes.
int engine_info_command(const Arguments& args) {
    EngineAddress address;
    address.url = *args.value("--engine");
    try {
        check_engine_url(address.url);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    if (address.url.rfind("ssh://", 0) == 0) {
        args.usage_error(
            "info --engine takes tcp://, tls:// or unix: (an ssh:// engine lives "
            "only as long as one command)");
    }
    if (auto token_file = args.value("--token-file")) address.token = read_token(*token_file);
    address.tls_ca_pem = read_tls_ca(args, address.url);
    const EngineInfo info = engine_info(address);
    if (args.has("--json")) {
        std::cout << json{{"engine", address.url},   {"version", info.version},
                          {"devices", info.devices}, {"models", info.models},
                          {"shapes", info.shapes},   {"documents", info.documents}}
                         .dump(2)
                  << "\n";
        return 0;
    }
    const auto list = [](const std::vector<std::string>& items) {
        std::string text;
        for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
        return text.empty() ? std::string("none") : text;
    };
    std::printf("%-11s%s (l2a %s)\n", "engine", address.url.c_str(), info.version.c_str());
    std::printf("%-11s%s\n", "devices", info.devices.c_str());
    std::printf("%-11s%s (and --demo)\n", "models", list(info.models).c_str());
    std::printf("%-11s%s\n", "shapes", list(info.shapes).c_str());
    std::printf("%-11s%s\n", "documents",
                info.documents ? "sent, or named on the engine (--engine-doc)" : "sent");
    return 0;
}

int info_command(std::span<const std::string_view> raw) {
    Arguments args("info",
                   {kModelOption,
                    kDemoOption,
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--json", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("info"), stdout);
        return 0;
    }
    if (remote_engine(args)) {
        if (args.has("--model") || args.has("--demo")) {
            args.usage_error("with --engine, info describes the engine: give no --model or --demo");
        }
        return engine_info_command(args);
    }
    const std::filesystem::path folder = model_folder(args);
    const ModelConfig c = load_model_config(folder / "config.json");
    const Checkpoint checkpoint = Checkpoint::open(folder);
    std::int64_t parameters = 0;
    for (const std::string& name : checkpoint.tensor_names()) {
        parameters += checkpoint.get(name).info->numel();
    }
    std::error_code ec;
    const bool has_tokenizer = std::filesystem::is_regular_file(folder / "tokenizer.json", ec);

    const KvCost kv{c, kv_bytes_per_token(c, kBf16Bytes)};
    const std::int64_t L = c.num_hidden_layers;
    const std::int64_t W = c.l2a.sliding_window;
    const double decision_logit = decision_cut(c.l2a);

    if (args.has("--json")) {
        json j;
        j["path"] = folder.string();
        j["model_type"] = model_type_name(c.model_type);
        j["architecture"] = architecture_name(c.model_type);
        j["untrained"] = c.untrained;
        j["num_layers"] = L;
        j["hidden_size"] = c.hidden_size;
        j["intermediate_size"] = c.intermediate_size;
        j["num_heads"] = c.num_attention_heads;
        j["num_kv_heads"] = c.num_key_value_heads;
        j["head_dim"] = c.head_dim;
        j["vocab_size"] = c.vocab_size;
        j["parameter_count"] = parameters;
        j["max_position_embeddings"] = c.max_position_embeddings;
        j["rope_theta"] = c.rope_theta;
        j["tokenizer"] = has_tokenizer;
        if (c.is_l2a()) {
            j["l2a"] = {{"sliding_window", W},
                        {"sigmoid_temp", c.l2a.sigmoid_temp},
                        {"sigmoid_threshold", c.l2a.sigmoid_threshold},
                        {"router_input", router_input_name(c.l2a.router_input)},
                        {"decision_logit_threshold", decision_logit}};
        } else {
            j["l2a"] = nullptr;
        }
        json examples = json::array();
        for (std::int64_t t : kExampleLengths) {
            json e = {{"tokens", t}, {"without_l2a_bytes", kv.without_l2a(t)}};
            e["with_l2a_bytes"] = c.is_l2a() ? json(kv.with_l2a(t)) : json(nullptr);
            examples.push_back(std::move(e));
        }
        j["kv_cache"] = {
            {"bytes_per_element", kBf16Bytes},
            {"bytes_per_token_per_layer_per_cache", kv.per_token_per_cache},
            {"without_l2a_bytes_per_token", L * kv.per_token_per_cache},
            {"with_l2a_global_bytes_per_token",
             c.is_l2a() ? json(L * kv.per_token_per_cache) : json(nullptr)},
            {"with_l2a_local_bytes_max",
             c.is_l2a() ? json(L * W * kv.per_token_per_cache) : json(nullptr)},
            {"examples", std::move(examples)},
        };
        json devices = json::array();
        for (int i = 0; i < cuda_device_count(); ++i) {
            const CudaDeviceInfo d = cuda_device_info(i);
            devices.push_back({{"device", "cuda:" + std::to_string(i)},
                               {"name", d.name},
                               {"compute_capability", std::to_string(d.compute_major) + "." +
                                                          std::to_string(d.compute_minor)},
                               {"total_bytes", d.total_bytes},
                               {"free_bytes", d.free_bytes}});
        }
        j["cuda_built"] = cuda_built();
        j["cuda_devices"] = std::move(devices);
        std::cout << j.dump(2) << "\n";
        return 0;
    }

    const auto line = [](const std::string& label, const std::string& text) {
        std::printf("%-15s%s\n", label.c_str(), text.c_str());
    };
    line("model", model_label(args, folder) + " (" + model_type_name(c.model_type) + ": " +
                      architecture_name(c.model_type) + ")");
    if (c.untrained) line("", "UNTRAINED: random weights, for trying the tool out");
    line("layers", group_digits(L) + ", hidden size " + group_digits(c.hidden_size) +
                       ", MLP intermediate size " + group_digits(c.intermediate_size));
    line("attention", group_digits(c.num_attention_heads) + " query heads, " +
                          group_digits(c.num_key_value_heads) + " key/value heads, head dim " +
                          group_digits(c.head_dim));
    line("vocabulary", group_digits(c.vocab_size) + " tokens" +
                           (has_tokenizer ? " (tokenizer.json)" : " (no tokenizer.json)"));
    line("parameters", group_digits(parameters) + " (" + format_count_short(parameters) + ")");
    line("positions", "up to " + group_digits(c.max_position_embeddings) + ", RoPE theta " +
                          number_text(c.rope_theta));
    if (c.is_l2a()) {
        line("L2A", "sliding window " + group_digits(W) + " tokens; router " +
                        router_input_name(c.l2a.router_input) + ", tau " +
                        number_text(c.l2a.sigmoid_temp) + ", theta " +
                        number_text(c.l2a.sigmoid_threshold));
        line("",
             "a token also runs global attention when its router logit z >= tau * "
             "ln(theta / (1 - theta)) = " +
                 number_text(decision_logit));
    } else {
        line("L2A", "none: every layer runs full causal attention");
    }

    const std::int64_t b = kv.per_token_per_cache;
    std::printf("\nKV cache (bf16, %d bytes per element)\n", kBf16Bytes);
    line("  per token", format_bytes_short(b) + " per layer and cache (2 x " +
                            std::to_string(c.num_key_value_heads) + " kv heads x " +
                            std::to_string(c.head_dim) + " x " + std::to_string(kBf16Bytes) +
                            " B)");
    line("  without L2A", format_bytes_short(L * b) +
                              " per token: one full-attention cache in each of " +
                              std::to_string(L) + " layers");
    if (c.is_l2a()) {
        line("  with L2A", format_bytes_short(L * b) +
                               " per token for the global caches (every layer "
                               "keeps all tokens), plus");
        line("", "local caches capped at " + group_digits(W) + " tokens: at most " +
                     format_bytes_short(L * W * b) + " in all");
        line("", "pruning a layer's global attention (l2a run --prune) removes its global cache");
    }
    std::printf("\n%15s  %16s", "tokens", "without L2A");
    if (c.is_l2a()) std::printf("  %16s", "with L2A");
    std::printf("\n");
    for (std::int64_t t : kExampleLengths) {
        std::printf("%15s  %16s", group_digits(t).c_str(),
                    format_bytes_short(kv.without_l2a(t)).c_str());
        if (c.is_l2a()) std::printf("  %16s", format_bytes_short(kv.with_l2a(t)).c_str());
        std::printf("\n");
    }

    std::printf("\n");
    if (!cuda_built()) {
        line("devices", "cpu (this build has no CUDA support)");
    } else if (cuda_device_count() == 0) {
        line("devices", "cpu (no CUDA device visible)");
    } else {
        line("devices", "cpu, and:");
        for (int i = 0; i < cuda_device_count(); ++i) {
            const CudaDeviceInfo d = cuda_device_info(i);
            line("  cuda:" + std::to_string(i),
                 d.name + " (compute " + std::to_string(d.compute_major) + "." +
                     std::to_string(d.compute_minor) + ", " + format_bytes_short(d.total_bytes) +
                     ", " + format_bytes_short(d.free_bytes) + " free)");
        }
    }
    return 0;
}

}  // namespace l2a::cli
