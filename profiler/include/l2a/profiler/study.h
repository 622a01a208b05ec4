// The study service: what a client does with a model and a document, in one place. It opens a
// model, runs a document into a Profile (with the CUPTI kernel timeline on CUDA, host ranges on
// the CPU), keeps the base run's residual checkpoints within a memory budget, and answers
// what-ifs against that base: checked to be the same model, with the base's re-run checked to
// reproduce a saved profile. `l2a run`, `l2a whatif`, `l2a suggest-prune` and the desktop app's
// run controller are thin clients of it.
//
// One caller at a time: every call but cancel() runs on the caller's thread until done.
// cancel() may be called from any thread; the running call then throws l2a::Cancelled.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "l2a/engine/lens.h"
#include "l2a/engine/model.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/whatif.h"

namespace l2a {

// Host memory the base run's residual checkpoints may take on the CPU (T * hidden * 4 bytes per
// layer in fp32; a CUDA run keeps them in GPU memory: StudyOptions::device_checkpoint_share):
// within it every layer's state is kept and a what-if re-runs only from its first changed
// layer; beyond it as many layers as fit are kept, evenly spaced and ending at the last layer,
// and a what-if begins at the nearest kept layer below its first change. A what-if below every
// kept layer re-runs the base first.
inline constexpr std::int64_t kDefaultCheckpointBudgetBytes = std::int64_t{2} << 30;

// Which model a study works on.
struct ModelSpec {
    // A model folder. Empty (and no shape): the shipped demo model.
    std::filesystem::path folder;
    // A published shape with random weights instead of a folder ("qwen3-8b", shapes.h), for
    // benchmarks: no download, no tokenizer (documents are token ids).
    std::string shape;
    std::uint64_t seed = 0;  // of the shape's random weights
    Placement placement;

    bool demo() const { return folder.empty() && shape.empty(); }
    // What reports call it: "<demo model>", the folder, or "qwen3-8b (random weights, seed 0)".
    std::string label() const;
};

// The document of a run. Exactly one source: token ids, the text itself, a file the engine
// reads, or none of them for the shipped demo document.
struct DocumentSpec {
    std::string label;  // what reports call it; "" takes the file name or "<demo document>"
    std::filesystem::path path;
    std::optional<std::string> text;
    std::vector<std::int32_t> token_ids;

    bool demo() const { return path.empty() && !text && token_ids.empty(); }
};

struct StudyRunSpec {
    DocumentSpec document;
    RunOptions options;
    // With options.max_tokens 0: false runs the whole document (a warning when it is longer
    // than the model's max_position_embeddings), true cuts it there (RunReport::cut_by says so).
    bool cut_at_context = false;
    // Tokenize the whole document even when only its beginning runs, so that the profile's
    // tokens_before_truncation is exact (else only as much is read as the run needs, and
    // RunReport::counted_all says whether the count is a lower bound).
    bool count_all_tokens = false;
    bool trace = true;  // the CUPTI kernel timeline of CUDA runs
    // Keep residual checkpoints (within the budget) for later what-ifs. false: a plain prefill,
    // timed without the copies (`l2a run`, benchmarks); a what-if then re-runs the base first.
    bool keep_checkpoints = true;
    int threads = 0;  // CPU threads; 0: default_cpu_threads()
};

// What a run knew beside its profile.
struct RunReport {
    std::string dtype;  // the weights' dtype as placed ("fp32", "bf16", "fp16")
    int threads = 0;
    std::int64_t max_positions = 0;         // the model's max_position_embeddings
    std::int64_t requested_max_tokens = 0;  // the option as asked (0: the whole document)
    // "" (not cut), "max tokens" (the option) or "context" (cut_at_context).
    std::string cut_by;
    bool beyond_context = false;  // more tokens ran than the model has positions
    // false when only the beginning of the file was read (a long file and max_tokens): then
    // the profile's tokens_before_truncation is a lower bound.
    bool counted_all = true;
    std::uint64_t file_bytes = 0;
    std::uint64_t bytes_read = 0;
};

struct StudyRunResult {
    std::shared_ptr<const Profile> profile;
    RunReport report;
    // The bytes the profile took on the wire (a remote engine's); 0 for a local run.
    std::int64_t transfer_bytes = 0;
};

struct StudyWhatIfResult {
    std::shared_ptr<const Profile> variant;
    std::shared_ptr<const WhatIfComparison> comparison;
    double run_seconds = 0.0;  // the variant's own re-run (WhatIfRun::run_seconds)
};

// Why a token went global (lens.h) with what the base run decided for it.
struct StudyExplanation {
    AttentionLens lens;
    float router_logit = 0.0f;  // NaN in a plain layer
    double probability = 0.0;   // sigmoid(router_logit / tau)
    bool decision = false;      // what the base ran (0 in a pruned layer)
};

struct StudyPruneResult {
    PruneSuggestion suggestion;
    std::int64_t base_kv_bytes = 0;
    double base_ttft_predicted = 0.0;  // seconds, by the base's timing model
};

// How a study reports while it works. Every callback is optional and called on the thread of
// the running call.
struct StudyEvents {
    // A step of the job begins: "loading the model", "prefill of 2,048 tokens", "re-run of the
    // base, 2,048 tokens", "variant", "time to first token, 3 runs each of base and variant",
    // "greedy search".
    std::function<void(const std::string& step)> step;
    // Progress of the whole call in [0, 1] (never lower than the last within a call), of the
    // current step in [0, 1], and what runs now (describe(RunProgress): "layer 4 of 0-5",
    // "layer 3 of 0-5: mlp", "LM head and per-token loss"; or "TTFT run 2 of 6", "variant 3").
    std::function<void(double job, double step, const std::string& stage)> progress;
    // Something questionable but not fatal, one line naming the file ("doc.txt: replaced 3
    // invalid UTF-8 sequences with U+FFFD").
    std::function<void(const std::string& warning)> warning;
    // run() only: the number of tokens about to run, before the first logits.
    std::function<void(std::int64_t tokens)> tokens;
    // run() only: the float32 next-token logits in order, `rows` rows of `vocab` at a time.
    std::function<void(std::int64_t first_row, std::int64_t rows, std::int64_t vocab,
                       const float* data)>
        logits;
};

struct StudyOptions {
    std::int64_t checkpoint_budget_bytes = kDefaultCheckpointBudgetBytes;
    // A CUDA run keeps its checkpoints in GPU memory, in the model's dtype (T * hidden * 2 bytes
    // per layer in bf16): at most this share of the GPU memory free when the run starts (the
    // model loaded). With every layer kept, the attention lens and a what-if start from the
    // state they need without re-running anything. 0: checkpoint_budget_bytes instead.
    double device_checkpoint_share = 0.4;
    // The flag the study's runs stop on, when the caller owns one (the CLI's signal flag, an
    // app's worker flag): cancel() sets it, and the caller resets it. nullptr: the study's own,
    // reset at the start of every call.
    std::atomic<bool>* cancel = nullptr;
    // Tensor parallel: the group this process is one rank of (it must outlive the study). Every
    // rank makes the same calls with the same arguments; open_model keeps the rank's shard
    // (shard_for_rank), every run is split across the ranks, and each run's profile holds every
    // rank's host ranges (TimedRange::rank) and the world size. CPU and fp32 only; explain and
    // oracle are refused. nullptr (or a group of one): a run of this process alone.
    ProcessGroup* group = nullptr;
};

class Study {
public:
    virtual ~Study() = default;

    // Where runs happen: "cpu" or "cuda:0 NVIDIA H200" on this computer; a remote engine says
    // its address first ("tcp://gpu1:7787: cuda:0 NVIDIA H200").
    virtual std::string where() const = 0;

    // Loads the model, or keeps it when the spec asks for the one loaded (same source and
    // placement). Load warnings go to events.warning. Returns its summary. Throws l2a::Error
    // naming the folder and the problem.
    virtual ModelSummary open_model(const ModelSpec& spec, const StudyEvents& events = {}) = 0;

    // Runs the document on the open model and makes the result the base of later what-ifs.
    // Throws l2a::Error (no model open, bad document or options) and l2a::Cancelled.
    virtual StudyRunResult run(const StudyRunSpec& spec, const StudyEvents& events = {}) = 0;

    // Makes a saved profile the base of later what-ifs. Its model: `model` when given, else the
    // folder, dtype and device the profile recorded. The folder must hold the same model (shape
    // from config.json before the weights load, then parameter count; a changed config.json is
    // a warning). `origin` names the profile in errors. The base is re-run by the first what-if,
    // which warns when the re-run does not reproduce the profile's per-token loss.
    virtual void adopt(std::shared_ptr<const Profile> profile, const std::string& origin,
                       const std::optional<ModelSpec>& model, const StudyEvents& events = {}) = 0;

    // The base re-run with `variant` from the first layer it changes (device and max_tokens
    // stay the base's). `ttft_repeats` > 0 also times that many full runs of each, alternately
    // (measure_ttft_pair). Throws l2a::Error when there is no base.
    virtual StudyWhatIfResult whatif(const RunOptions& variant, int ttft_repeats = 0,
                                     const StudyEvents& events = {}) = 0;

    // Time to first token of the base and of `variant`, `repeats` full runs each.
    virtual std::pair<TtftMeasurement, TtftMeasurement> measure_ttft(
        const RunOptions& variant, int repeats, const StudyEvents& events = {}) = 0;

    // The attention lens of `token` in `layer` of the base: from the base's kept state entering
    // the layer, or a re-run of the base that keeps it. Throws l2a::Error when there is no base,
    // for a plain model, or a token or layer out of range.
    virtual StudyExplanation explain(std::int64_t token, int layer,
                                     const StudyEvents& events = {}) = 0;

    // The routing oracle of the base: one more run of it that computes, layer by layer, the
    // distant mass of every token's global query (lens.h). Returns the base's profile with
    // distant_mass and oracle_min_mass set, which becomes the base. Throws l2a::Error when
    // there is no base or the model is plain.
    virtual std::shared_ptr<const Profile> oracle(double min_mass,
                                                  const StudyEvents& events = {}) = 0;

    // Greedy pruning search on the base within `max_dnll` nats per token.
    virtual StudyPruneResult suggest_prune(double max_dnll, const StudyEvents& events = {}) = 0;

    // Stops the running call (from any thread): it throws l2a::Cancelled within a layer.
    virtual void cancel() = 0;
};

// A study that runs on this computer.
std::unique_ptr<Study> make_local_study(const StudyOptions& options = {});

// The first difference between a recorded model and one found ("layers 6 in the profile, 4 in
// DIR"), or "" when they agree. `compare_parameters`: also the parameter count (known once the
// weights are read).
std::string model_difference(const ModelSummary& recorded, const ModelSummary& found,
                             const std::string& where, bool compare_parameters);

}  // namespace l2a
