// `l2a train`: the L2A objective on a folder of documents, from a checkpoint or from scratch.
#include <cstdio>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "guards.h"
#include "l2a/engine/config.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/train.h"
#include "l2a/engine/units.h"
#include "progress_bar.h"
#include "text_format.h"
#include "threads.h"

namespace l2a::cli {

int train_command(std::span<const std::string_view> raw) {
    Arguments args("train",
                   {{"--model", true},
                    {"--config", true},
                    {"--tokenizer", true},
                    {"--data", true},
                    {"--out", true},
                    {"--device", true},
                    {"--steps", true},
                    {"--batch", true},
                    {"--seq-len", true},
                    {"--lr", true},
                    {"--warmup", true},
                    {"--lambda", true},
                    {"--lambda-ramp", true},
                    {"--lambda-layers", true},
                    {"--locality", true},
                    {"--locality-window", true},
                    {"--locality-queries", true},
                    {"--dense-prob", true},
                    {"--train", true},
                    {"--seed", true},
                    {"--save-every", true},
                    {"--weight-decay", true},
                    {"--resume", false},
                    {"--no-autocast", false},
                    {"--checkpointing", false},
                    {"--router-lr-scale", true},
                    {"--router-freeze", true},
                    kThreadsOption,
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("train"), stdout);
        return 0;
    }
    TrainOptions o;
    const auto data = args.value("--data");
    const auto out = args.value("--out");
    if (!data) args.usage_error("give the documents: --data DIR (a folder of .txt files)");
    if (!out) args.usage_error("give the checkpoint folder: --out DIR");
    check_output_folder({"--out", *out});
    o.data_dir = *data;
    o.out_dir = *out;
    o.resume = args.has("--resume");
    if (auto model = args.value("--model")) o.model_dir = *model;
    if (auto config = args.value("--config")) {
        if (args.value("--model")) args.usage_error("give --model DIR or --config FILE, not both");
        o.init_config = load_model_config(*config);
        const auto tokenizer = args.value("--tokenizer");
        if (!tokenizer) args.usage_error("--config: give the tokenizer too (--tokenizer FILE)");
        o.tokenizer_json = *tokenizer;
    }
    if (o.model_dir.empty() && !o.init_config && !o.resume) {
        args.usage_error(
            "give --model DIR (e.g. from l2a construct), or --config FILE --tokenizer FILE");
    }
    if (auto device = args.value("--device")) o.device = *device;
    require_device(o.device);
    if (auto v = args.integer("--steps", 1, std::int64_t(1) << 40)) o.steps = *v;
    if (auto v = args.integer("--batch", 1, 1 << 20)) o.batch = *v;
    if (auto v = args.integer("--seq-len", 2, std::int64_t(1) << 24)) o.seq_len = *v;
    if (auto v = args.integer("--warmup", 0, std::int64_t(1) << 40)) o.warmup = *v;
    if (auto v = args.integer("--lambda-ramp", 0, std::int64_t(1) << 40)) o.lambda_ramp_steps = *v;
    if (auto v = args.integer("--save-every", 0, std::int64_t(1) << 40)) o.save_every = *v;
    if (auto v = args.unsigned_integer("--seed")) o.seed = *v;
    if (auto v = args.number("--lr")) o.lr = *v;
    if (auto v = args.number("--lambda")) o.lambda = *v;
    if (auto v = args.number("--dense-prob")) o.dense_prob = *v;
    if (auto v = args.number("--weight-decay")) o.weight_decay = *v;
    if (auto v = args.number("--router-lr-scale")) {
        if (!(*v >= 0)) args.usage_error("--router-lr-scale: must not be negative");
        o.router_lr_scale = *v;
    }
    if (auto v = args.integer("--router-freeze", 0, std::int64_t(1) << 40))
        o.router_freeze_steps = *v;
    if (!(o.lr > 0)) args.usage_error("--lr: must be positive");
    if (!(o.lambda >= 0)) args.usage_error("--lambda: must not be negative");
    if (auto v = args.numbers("--lambda-layers")) {
        for (double f : *v) {
            if (!(f >= 0)) {
                args.usage_error("--lambda-layers: every factor must be 0 or more (" +
                                 format_fixed(f, 3) + " is not)");
            }
        }
        o.layer_lambda = *v;
    }
    if (auto v = args.number("--locality")) {
        if (!(*v >= 0)) args.usage_error("--locality: must not be negative");
        o.locality = *v;
    }
    if (auto v = args.integer("--locality-window", 1, std::int64_t(1) << 40))
        o.locality_window = *v;
    if (auto v = args.integer("--locality-queries", 1, std::int64_t(1) << 40))
        o.locality_queries = *v;
    if (o.locality == 0 && (args.has("--locality-window") || args.has("--locality-queries")))
        args.usage_error("--locality-window and --locality-queries go with --locality X (X > 0)");
    if (!(o.dense_prob >= 0 && o.dense_prob <= 1))
        args.usage_error("--dense-prob: must be within 0..1");
    if (auto group = args.value("--train")) {
        if (*group != "attention" && *group != "all" && *group != "local") {
            args.usage_error("--train " + *group + ": expected attention, local or all");
        }
        o.train_all = *group == "all";
        o.freeze_global = *group == "local";
    } else {
        o.train_all = o.init_config.has_value();  // from scratch everything trains
    }
    o.bf16_autocast = !args.has("--no-autocast");
    o.gradient_checkpointing = args.has("--checkpointing");
    const bool quiet = args.has("--quiet");
    const std::string threads = apply_threads(args);

    ProgressBar bar("training, " + group_digits(o.steps) + " steps", !quiet);
    const TrainResult r = train(
        o,
        [&](const TrainStepLog& s) {
            char stage[160];
            if (s.global_fraction.empty() && o.locality > 0) {  // a plain model, pressed near
                std::snprintf(stage, sizeof stage,
                              "step %lld, loss %.4f (CE %.4f), distant mass %.3f, %.0f tok/s",
                              static_cast<long long>(s.step), s.loss, s.cross_entropy,
                              s.distant_mass, s.tokens_per_second);
            } else if (s.global_fraction.empty()) {  // a plain model: no routing
                std::snprintf(stage, sizeof stage, "step %lld, loss %.4f, %.0f tok/s",
                              static_cast<long long>(s.step), s.loss, s.tokens_per_second);
            } else {
                double sum = 0;
                for (double g : s.global_fraction) sum += g;
                std::snprintf(stage, sizeof stage,
                              "step %lld, loss %.4f (CE %.4f), routed %.1f%%, %.0f tok/s",
                              static_cast<long long>(s.step), s.loss, s.cross_entropy,
                              100.0 * sum / static_cast<double>(s.global_fraction.size()),
                              s.tokens_per_second);
            }
            bar.update(static_cast<double>(s.step) / static_cast<double>(o.steps), stage);
        },
        cancel_flag());
    bar.finish();
    if (cancel_requested()) {
        // train() stopped between steps and saved a complete checkpoint to resume from.
        std::fprintf(stderr,
                     "l2a: train: stopped after step %lld; %s holds it (continue with --resume)\n",
                     static_cast<long long>(r.steps.empty() ? 0 : r.steps.back().step),
                     r.last_checkpoint.string().c_str());
        throw_if_cancelled();
    }
    if (!quiet && !r.steps.empty()) {
        const TrainStepLog& s = r.steps.back();
        std::printf(
            "%s parameters (%s trained); step %lld: loss %.4f, cross-entropy %.4f, mean p^2 %.4g, "
            "lambda %.3g\n",
            format_count_short(r.parameters).c_str(),
            format_count_short(r.trainable_parameters).c_str(), static_cast<long long>(s.step),
            s.loss, s.cross_entropy, s.sparsity, s.lambda);
        if (o.locality > 0) {
            std::printf("distant mass %.4f (locality pressure %.3g)\n", s.distant_mass, o.locality);
        }
        std::printf("%s on %s\n", threads.c_str(), o.device.c_str());
        std::printf("checkpoint: %s (log: %s)\n", r.last_checkpoint.string().c_str(),
                    (o.out_dir / "train.csv").string().c_str());
    }
    return 0;
}

}  // namespace l2a::cli
