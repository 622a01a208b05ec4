// Training L2A routers (and, for a model trained from scratch, everything) with the paper's
// objective: cross-entropy + lambda * mean over layers of the sum over tokens of p_t^2, with a
// straight-through estimator for the hard decisions, temperature tau, and an optional dense
// global attention per layer and step so that skipped tokens get a router gradient. AdamW with a
// cosine schedule after linear warm-up, gradient clipping, checkpoints that resume exactly.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "l2a/engine/config.h"

namespace l2a {

struct TrainOptions {
    // The model: continue from a folder (e.g. made by `l2a construct`), or create one from
    // `init_config` with random weights (`train_all` is then the sensible choice).
    std::filesystem::path model_dir;
    std::optional<ModelConfig> init_config;
    std::filesystem::path tokenizer_json;  // with init_config: copied into the checkpoints

    std::filesystem::path data_dir;  // *.txt documents
    std::filesystem::path out_dir;   // checkpoints: out_dir/step-N and out_dir/last
    std::filesystem::path log_csv;   // "": out_dir/train.csv

    std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
    bool bf16_autocast = true;   // CUDA only
    bool train_all = false;      // false: attention, norms and router; FFN, embeddings, head frozen
    // With train_all false, an L2A model only: its global attention set and the global input norm
    // stay as they are too (after `l2a construct`, the base's attention), so the oracle's distant
    // mass keeps measuring where the base would look.
    bool freeze_global = false;
    // Keep only each layer's input during the forward and recompute the layer in the backward:
    // activation memory of one layer instead of all (about a third more compute).
    bool gradient_checkpointing = false;

    std::int64_t steps = 100;
    std::int64_t batch = 4;
    std::int64_t seq_len = 1024;
    double lr = 3e-4;
    double min_lr_ratio = 0.1;  // cosine decays to lr * this
    std::int64_t warmup = 10;   // linear warm-up steps (learning rate and the lambda ramp's start)
    double weight_decay = 0.1;
    double grad_clip = 1.0;

    double lambda = 1e-3;  // sparsity weight reached at the end of the ramp
    // Per layer, a factor on lambda (empty: 1 for every layer; else one non-negative value per
    // layer): a layer whose global attention is not worth its cost (say, one that spreads its
    // attention thinly over the whole past for every token) can be pressed harder toward local.
    std::vector<double> layer_lambda;
    // Locality pressure: + locality * the mean over layers, heads and sampled query positions of
    // the attention mass on keys older than `locality_window` (the routing oracle's "distant
    // mass"), of the attention a token would run globally: a plain model's attention, an L2A
    // model's global set. A base trained with it keeps the attention of tokens that gain little
    // from the far past near, and looks far only where that pays in the loss: the tokens a
    // router can then tell apart. Each step samples `locality_queries` positions at or after
    // the window, the same in every sequence of the batch (all of them when there are no more).
    // 0: off.
    double locality = 0.0;
    std::int64_t locality_window = 0;  // 0: an L2A model's sliding window (a plain model needs one)
    std::int64_t locality_queries = 256;
    std::int64_t lambda_ramp_steps =
        0;  // steps after warm-up (and router freeze) to reach `lambda` (0: to the end)
    double dense_prob = 0.1;  // per layer and step: global attention for every token
    // The routers' learning rate is lr * router_lr_scale, and 0 for the first
    // router_freeze_steps steps: a freshly constructed model routes every token and runs the
    // sum of its local and global attention (both copies of the base attention), so the
    // attention sets first adapt to working together before the router may drop tokens.
    // lambda's ramp starts after the freeze.
    double router_lr_scale = 1.0;
    std::int64_t router_freeze_steps = 0;
    std::uint64_t seed = 1;

    std::int64_t save_every = 0;  // 0: only at the end
    bool resume = false;          // continue from out_dir/last (options must match)
};

struct TrainStepLog {
    std::int64_t step = 0;  // 1-based
    double loss = 0.0;
    double cross_entropy = 0.0;
    double sparsity = 0.0;      // mean over layers of mean over tokens of p_t^2
    double distant_mass = 0.0;  // with locality pressure: the mean it presses on (else 0)
    double lambda = 0.0;
    double lr = 0.0;
    std::vector<double> global_fraction;  // per layer: hard decisions that were 1
    double tokens_per_second = 0.0;
};

struct TrainResult {
    std::vector<TrainStepLog> steps;  // this invocation's steps
    std::filesystem::path last_checkpoint;
    std::int64_t parameters = 0;
    std::int64_t trainable_parameters = 0;
};

// A plain Qwen2/Qwen3 model (no L2A layers) trains too, as the base that `l2a construct` turns
// into an L2A model: full causal attention, cross-entropy only, no routing columns in the log.
// Throws l2a::Error naming the file or option: no documents, an unsupported router, options
// that differ from the checkpoint being resumed, an unknown device. `progress` (may be empty)
// gets every step's log; `cancel` (may be null) stops between steps with a checkpoint.
TrainResult train(const TrainOptions& options,
                  const std::function<void(const TrainStepLog&)>& progress = {},
                  const std::atomic<bool>* cancel = nullptr);

}  // namespace l2a
