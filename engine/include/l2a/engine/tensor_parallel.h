// Tensor parallel on the CPU (issue 19): a loaded model split across the ranks of a process group,
// and a prefill that runs the shards together and gives every rank the single-process result.
//
// The split (Megatron-style): each attention set (the local and, for L2A, the global one) keeps
// the rank's query and KV heads (column-parallel Q/K/V and their biases) and the matching input
// columns of its O projection (row-parallel; an O bias stays on rank 0 only); the MLP keeps the
// rank's slice of the intermediate size (gate/up rows, down columns). Norms, the router, the
// embedding and the LM head are replicated. A run all-reduces (sums) the partial outputs of every
// O projection and of every MLP down projection, so the residual stream, the router logits and
// every routing decision are the same on every rank.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/process_group.h"

namespace l2a {

// The part of `model` that rank `rank` of `world` runs. Throws l2a::Error when world does not
// divide the query heads, the KV heads or the MLP's intermediate size, or the rank is outside
// 0..world-1. world 1 gives the model itself. The shard's config() is the shard's shape
// (num_attention_heads, num_key_value_heads and intermediate_size divided by world); its
// summary() is the whole model's.
Model shard_for_rank(const Model& model, int rank, int world);

// The same part read straight from a model folder (Model::load's checks and errors): only the
// rank's slices of the split tensors are copied to the placement's device, so a model that does
// not fit one GPU loads across several. Equal, tensor for tensor, to
// shard_for_rank(Model::load(model_dir, placement), rank, world). Throws l2a::Error as
// Model::load does and as shard_for_rank does for a split that does not divide the model.
Model load_model_shard(const std::filesystem::path& model_dir, const Placement& placement, int rank,
                       int world);
// The rank's part of Model::random(config, seed, placement), each split tensor made whole and cut
// one at a time (the same values on every rank as in the whole model).
Model random_model_shard(const ModelConfig& config, std::uint64_t seed, const Placement& placement,
                         int rank, int world);

// 16 hex digits of a hash over every weight tensor of the model (shape, dtype and bytes, in a
// fixed order), for checking that two models, or two ranks' shards, hold the same weights.
std::string weights_digest(const Model& model);

// The rank and world a model was sharded for (0 and 1 for a whole model).
struct ShardInfo {
    int rank = 0;
    int world = 1;
};
ShardInfo shard_info(const Model& model);

// The whole model's config, for a shard too (its config() is the shard's shape): what the
// metrics of a run count (the KV cache of every head).
ModelConfig whole_config(const Model& model);

// run_prefill over the shards of one model, one per rank of `group` (every rank calls it with the
// same tokens and options, and its own shard_for_rank(model, group.rank(), group.world())). Every
// rank returns the single-process result: the same logits, per-token loss, router logits and
// decisions. The same as run_prefill with PrefillHooks::group set (which run_prefill_from and
// the what-ifs take as well: the residual stream, and so every checkpoint, is the same on every
// rank). CPU and fp32 only for now; the distant-mass oracle is not supported. Throws l2a::Error as
// run_prefill does, and when a collective fails (another rank died or timed out).
PrefillResult run_prefill_parallel(const Model& shard, std::span<const std::int32_t> tokens,
                                   const RunOptions& options, ProcessGroup& group,
                                   const PrefillHooks& hooks = {});

}  // namespace l2a
