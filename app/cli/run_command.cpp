// `l2a run`: one document through one model, reported as text or JSON and optionally saved as a
// profile and a logits file.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "engine_option.h"
#include "guards.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/metrics.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/safetensors.h"
#include "l2a/profiler/study.h"
#include "model_source.h"
#include "progress_bar.h"
#include "study_printer.h"
#include "tensor_parallel_option.h"
#include "text_format.h"
#include "threads.h"

namespace l2a::cli {
namespace {

// ---- inputs --------------------------------------------------------------------------------

// A JSON array of token ids (their range is the study's to check against the model).
std::vector<std::int32_t> read_token_file(const std::filesystem::path& path) {
    const std::string origin = path.string();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& e) {
        fail(origin, describe_json_error(e.what()));
    }
    if (!j.is_array()) fail(origin, "expected a JSON array of token ids, e.g. [9707, 11, 1879]");
    std::vector<std::int32_t> ids;
    ids.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) {
        const nlohmann::json& entry = j[i];
        if (!entry.is_number_integer()) {
            fail(origin, "entry " + std::to_string(i) + " (" + entry.dump() +
                             ") is not an integer token id");
        }
        // An unsigned entry above INT64_MAX would wrap as a signed one: it is out of range too.
        const bool huge = entry.is_number_unsigned() &&
                          entry.get<std::uint64_t>() > static_cast<std::uint64_t>(INT32_MAX);
        const auto id = huge ? std::int64_t{-1} : entry.get<std::int64_t>();
        if (huge || id < 0 || id > INT32_MAX) {
            fail(origin, "token id " + entry.dump() + " at position " + std::to_string(i) +
                             " is outside any vocabulary");
        }
        ids.push_back(static_cast<std::int32_t>(id));
    }
    if (ids.empty()) fail(origin, "the input has no tokens");
    return ids;
}

// Says on stderr that --max-tokens cut the input.
void print_truncation(const Profile& p, const RunReport& report) {
    if (report.cut_by != "max tokens") return;
    const std::int64_t tokens = p.tokens_before_truncation;
    const std::int64_t kept = p.num_tokens();
    if (!report.counted_all) {
        // Only the beginning was read: the count is of that part.
        std::fprintf(stderr,
                     "l2a: %s: read the first %s of %s bytes: at least %s tokens, truncated to %s "
                     "(--max-tokens)\n",
                     p.document_path.c_str(),
                     group_digits(static_cast<std::int64_t>(report.bytes_read)).c_str(),
                     group_digits(static_cast<std::int64_t>(report.file_bytes)).c_str(),
                     group_digits(tokens).c_str(), group_digits(kept).c_str());
        return;
    }
    std::fprintf(stderr, "l2a: %s: %s tokens, truncated to %s (--max-tokens)\n",
                 p.document_path.c_str(), group_digits(tokens).c_str(), group_digits(kept).c_str());
}

// ---- options -------------------------------------------------------------------------------

RunOptions run_options(const Arguments& args) {
    RunOptions options;
    try {
        if (auto routing = args.value("--routing"))
            options.routing = RoutingPolicy::parse(*routing);
        if (auto prune = args.value("--prune")) options.prune = parse_pruning_plan(*prune);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    if (auto threshold = args.number("--threshold")) {
        if (!(*threshold > 0.0 && *threshold < 1.0)) {
            args.usage_error("--threshold: " + *args.value("--threshold") +
                             " is not strictly between 0 and 1");
        }
        options.threshold = threshold;
    }
    if (auto max_tokens = args.integer("--max-tokens", 1, INT64_MAX))
        options.max_tokens = *max_tokens;
    if (auto chunk = args.integer("--chunk", 1, 1 << 24)) options.chunk_size = *chunk;
    if (auto seed = args.unsigned_integer("--seed")) options.seed = *seed;
    if (auto device = args.value("--device")) options.device = *device;
    if (auto backend = args.value("--backend")) options.backend = *backend;
    options.as_base = args.has("--as-base");
    return options;
}

// ---- the report ----------------------------------------------------------------------------

// `counted_all`: false when only the beginning of the document was read, so that the token count
// before truncation is a lower bound.
void print_report(const Profile& p, const std::string& model_label, const std::string& device,
                  const std::string& threads, bool counted_all) {
    const ModelSummary& m = p.model;
    const RunMetrics& metrics = p.metrics;
    const auto line = [](const std::string& label, const std::string& text) {
        std::printf("%-11s %s\n", label.c_str(), text.c_str());
    };

    line("model", model_label + " (" + m.model_type + ", " + std::to_string(m.num_layers) +
                      " layers, " + format_count_short(m.parameter_count) + " parameters)");
    if (m.untrained) {
        line("",
             "UNTRAINED: random weights, so routing and quality show how the tool works, not "
             "what a trained model does");
    }
    std::string document = p.document_path + ": " + group_digits(p.num_tokens()) + " tokens";
    if (!p.document_text.empty())
        document +=
            " (" + group_digits(static_cast<std::int64_t>(p.document_text.size())) + " bytes)";
    if (p.tokens_before_truncation > p.num_tokens()) {
        document += std::string(", truncated from ") + (counted_all ? "" : "at least ") +
                    group_digits(p.tokens_before_truncation);
    }
    line("document", document);
    if (m.is_l2a) {
        const double theta = p.options.threshold.value_or(m.sigmoid_threshold);
        std::string run = "routing " + p.options.routing.to_string();
        if (p.options.routing.kind == RoutingKind::Learned) {
            run += ", threshold " + format_fixed(theta, 3) +
                   (p.options.threshold ? " (--threshold)" : " (the model's)");
        }
        run +=
            ", pruned layers: " +
            (p.options.prune.empty() ? std::string("none") : format_pruning_plan(p.options.prune));
        line("run", run);
    } else {
        line("run", "plain model: every layer runs full causal attention");
    }

    std::printf("\n%-5s  %7s\n", "layer", "global");
    for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
        const auto i = static_cast<std::size_t>(layer);
        const double fraction = i < metrics.global_fraction.size() ? metrics.global_fraction[i] : 0;
        const bool pruned = std::find(p.options.prune.begin(), p.options.prune.end(),
                                      static_cast<int>(layer)) != p.options.prune.end();
        std::printf("%5lld  %7s  %s%s\n", static_cast<long long>(layer),
                    format_percent(fraction).c_str(), fraction_bar(fraction, 20).c_str(),
                    pruned ? "  pruned" : "");
    }
    std::printf("%5s  %7s  of token-layer pairs ran global attention\n\n", "all",
                format_percent(metrics.global_fraction_overall).c_str());

    line("quality", "mean NLL " + format_fixed(metrics.mean_nll, 4) + " nats/token, perplexity " +
                        format_fixed(metrics.perplexity, 2));
    std::int64_t local = 0;
    std::int64_t global = 0;
    for (const LayerKv& kv : metrics.kv) {
        local += kv.local_bytes;
        global += kv.global_bytes;
    }
    const std::string element = kv_element_text(p.options.kv_bytes_per_element);
    if (m.is_l2a) {
        line("KV cache", format_bytes_short(metrics.kv_bytes_total) + " with L2A (" + element +
                             "; local " + format_bytes_short(local) + " + global " +
                             format_bytes_short(global) + ")");
        line("", format_bytes_short(metrics.kv_bytes_without_l2a) +
                     " for the same model with full attention in every layer");
    } else {
        line("KV cache", format_bytes_short(metrics.kv_bytes_total) + " (" + element + ")");
    }
    const double tokens_per_second =
        p.wall_seconds > 0 ? static_cast<double>(p.num_tokens()) / p.wall_seconds : 0.0;
    line("time", format_elapsed(p.wall_seconds) + ", " +
                     group_digits(static_cast<std::int64_t>(tokens_per_second + 0.5)) +
                     " tokens/s (" + device + ", " + p.options.backend +
                     (p.options.as_base ? ", as base model" : "") + ", " + threads + ")");
}

}  // namespace

int run_command(std::span<const std::string_view> raw) {
    Arguments args("run",
                   {kModelOption,
                    kDemoOption,
                    {"--doc", true},
                    {"--tokens", true},
                    {"--max-tokens", true},
                    {"--threshold", true},
                    {"--routing", true},
                    {"--prune", true},
                    {"--seed", true},
                    {"--chunk", true},
                    {"--device", true},
                    {"--backend", true},
                    {"--dtype", true},
                    {"--as-base", false},
                    {"--allow-nonfinite-weights", false},
                    {"--no-trace", false},
                    {"--out", true},
                    {"--logits-out", true},
                    kThreadsOption,
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--engine-doc", true},
                    {"--json", false},
                    {"--quiet", false},
                    kTensorParallelOption,
                    kTensorParallelRankOption,
                    kTensorParallelPortOption,
                    kTensorParallelRunOption},
                   raw);
    if (args.help()) {
        std::fputs(help_text("run"), stdout);
        return 0;
    }
    if (!args.has("--demo") && !args.has("--model")) args.usage_error("give --model DIR or --demo");
    const auto doc = args.value("--doc");
    const auto tokens_file = args.value("--tokens");
    const auto engine_doc = args.value("--engine-doc");
    const bool remote = remote_engine(args);
    if (int(doc.has_value()) + int(tokens_file.has_value()) + int(engine_doc.has_value()) > 1) {
        args.usage_error("give one input: --doc FILE, --tokens FILE or --engine-doc PATH");
    }
    if (!doc && !tokens_file && !engine_doc && !args.has("--demo")) {
        args.usage_error("give the input: --doc FILE or --tokens FILE");
    }
    if (engine_doc && !remote)
        args.usage_error("--engine-doc names a document on a remote --engine");
    if (remote && args.has("--logits-out")) {
        args.usage_error("--logits-out: a remote engine does not send logits back");
    }
    RunOptions options = run_options(args);
    const std::optional<Backend> backend = parse_backend(options.backend);
    if (!backend) {
        args.usage_error("--backend " + options.backend + ": expected " + kBackendChoices);
    }
    if (is_cpu_device(options.device) && *backend != Backend::Reference) {
        args.usage_error("--backend " + options.backend +
                         ": runs on CUDA devices only (add --device cuda; on the CPU the backend "
                         "is reference)");
    }
    const int tensor_parallel_ranks = tensor_parallel(args, options.device);
    int engine_threads = 0;
    const std::string threads = prepare_compute(args, options.device, engine_threads);
    const auto out = args.value("--out");
    const auto logits_out = args.value("--logits-out");
    const bool quiet = args.has("--quiet");
    // Before the model loads: a run that cannot save its result should not start.
    if (out) {
        check_output_file(args, {"--out", *out},
                          {{"--doc", doc.value_or("")},
                           {"--tokens", tokens_file.value_or("")},
                           {"--logits-out", logits_out.value_or("")}});
    }
    if (logits_out) {
        check_output_file(args, {"--logits-out", *logits_out},
                          {{"--doc", doc.value_or("")}, {"--tokens", tokens_file.value_or("")}});
    }

    // Before any process starts: the split must fit the model.
    check_tensor_parallel_folder(args, tensor_parallel_ranks);
    ModelSpec model = model_spec(args);
    const std::string label =
        args.has("--demo") ? std::string("<demo model>") : model.folder.string();
    model.placement.device = options.device;
    if (auto dtype = args.value("--dtype")) model.placement.dtype = *dtype;
    model.placement.allow_nonfinite_weights = args.has("--allow-nonfinite-weights");

    StudyRunSpec spec;
    spec.options = options;
    spec.trace = !args.has("--no-trace");
    spec.keep_checkpoints = false;  // one run, timed alone: no what-if follows it here
    spec.threads = engine_threads;
    if (doc && remote) {
        // The engine gets the text; the file is read here.
        Document d = load_document(*doc);
        spec.document.text = std::move(d.text);
        spec.document.label = *doc;
        if (d.replaced_sequences > 0) {
            std::fprintf(
                stderr, "l2a: warning: %s: replaced %s invalid UTF-8 sequence%s with U+FFFD\n",
                doc->c_str(), group_digits(static_cast<std::int64_t>(d.replaced_sequences)).c_str(),
                d.replaced_sequences == 1 ? "" : "s");
        }
    } else if (doc) {
        spec.document.path = *doc;
        spec.document.label = *doc;
    } else if (engine_doc) {
        spec.document.path = *engine_doc;
        spec.document.label = *engine_doc;
    } else if (tokens_file) {
        spec.document.token_ids = read_token_file(*tokens_file);
        spec.document.label = *tokens_file;
    }
    // No --doc or --tokens: the demo document.

    std::optional<SafetensorsWriter> logits_writer;
    std::int64_t logits_rows_written = 0;
    std::int64_t vocab_size = 0;
    StudyPrinter printer(quiet);
    StudyEvents events = printer.events();
    if (logits_out) {
        events.tokens = [&](std::int64_t num_tokens) {
            logits_writer.emplace(*logits_out);
            logits_writer->set_metadata("format", "pt");
            logits_writer->set_metadata("l2a.document", spec.document.demo()
                                                            ? std::string("<demo document>")
                                                            : spec.document.label);
            logits_writer->set_metadata("l2a.model", label);
            logits_writer->declare("logits", DType::F32, {num_tokens, vocab_size});
        };
        events.logits = [&](std::int64_t first_row, std::int64_t rows, std::int64_t vocab,
                            const float* data) {
            if (vocab != vocab_size || first_row != logits_rows_written) {
                fail(*logits_out, "logits arrived out of order (rows from " +
                                      std::to_string(first_row) + ", vocabulary " +
                                      std::to_string(vocab) + ")");
            }
            logits_writer->write(data, static_cast<std::size_t>(rows * vocab) * sizeof(float));
            logits_rows_written += rows;
        };
    }

    const std::unique_ptr<Study> study = open_study(args, tensor_parallel_ranks);
    vocab_size = study->open_model(model, events).vocab_size;
    throw_if_cancelled();
    const StudyRunResult run = study->run(spec, events);
    printer.finish();
    throw_if_cancelled();
    const Profile& profile = *run.profile;
    if (!tensor_parallel_worker()) print_truncation(profile, run.report);

    // Tensor parallel: nothing is written unless every rank finished cleanly.
    finish_tensor_parallel_before_writing();
    if (logits_writer) {
        logits_writer->finish();
        if (!quiet) std::fprintf(stderr, "l2a: wrote %s\n", logits_out->c_str());
    }
    if (out) {
        save_profile(profile, *out);
        if (!quiet) std::fprintf(stderr, "l2a: wrote %s\n", out->c_str());
    }

    if (args.has("--json")) {
        std::cout << profile_to_json(profile) << "\n";
    } else {
        print_report(
            profile, label,
            (profile.device == "cpu" ? std::string("cpu")
                                     : options.device + ": " + profile.device) +
                (remote ? " on " + study->where().substr(0, study->where().find(": ")) : ""),
            threads + (tensor_parallel_ranks > 1
                           ? ", tensor parallel over " + std::to_string(tensor_parallel_ranks) +
                                 " processes"
                           : std::string()),
            run.report.counted_all);
    }
    return 0;
}

}  // namespace l2a::cli
