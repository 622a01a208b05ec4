#include "l2a/profiler/study.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <span>

#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/metrics.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_choices.h"
#include "l2a/engine/shapes.h"
#include "l2a/engine/tensor_parallel.h"
#include "l2a/engine/units.h"
#include "l2a/profiler/cupti_tracer.h"
#include "l2a/profiler/rank_timeline.h"

namespace l2a {
namespace {

constexpr const char* kDemoDocumentLabel = "<demo document>";
constexpr const char* kDemoModelLabel = "<demo model>";

std::string num(std::int64_t v) { return std::to_string(v); }

// A document given as token ids: checked against the vocabulary; with a tokenizer each token's
// text is recorded so that views can show it, without one the profile holds ids only.
TokenizedDocument document_of_ids(std::string label, const std::vector<std::int32_t>& ids,
                                  const Model& model) {
    const std::int64_t vocab = model.config().vocab_size;
    TokenizedDocument doc;
    doc.label = std::move(label);
    doc.ids = ids;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= vocab) {
            fail(doc.label, "token id " + num(ids[i]) + " at position " + num(std::int64_t(i)) +
                                " is outside the model's vocabulary (0.." + num(vocab - 1) + ")");
        }
    }
    if (const Tokenizer* tokenizer = model.tokenizer()) {
        std::string valid;
        for (std::int32_t id : doc.ids) {
            doc.begin.push_back(static_cast<std::uint32_t>(doc.text.size()));
            // A token that holds part of a character is shown by its display text (U+FFFD), so
            // that the recorded text stays valid UTF-8 and every token keeps its own span.
            const std::string bytes = tokenizer->decode({id});
            doc.text += sanitize_utf8(bytes, valid) == 0 ? bytes : tokenizer->token_text(id);
            doc.end.push_back(static_cast<std::uint32_t>(doc.text.size()));
        }
    } else {
        doc.begin.assign(doc.ids.size(), 0);
        doc.end.assign(doc.ids.size(), 0);
    }
    doc.tokens_before_truncation = static_cast<std::int64_t>(doc.ids.size());
    return doc;
}

const Tokenizer& require_tokenizer(const Model& model) {
    const Tokenizer* tokenizer = model.tokenizer();
    if (!tokenizer) {
        fail(model.summary().path,
             "the model has no tokenizer.json, so a document cannot be tokenized (give token "
             "ids instead)");
    }
    return *tokenizer;
}

// Reads (or takes) the document and tokenizes as much of it as max_tokens needs.
TokenizedDocument tokenize_spec(const DocumentSpec& spec, const Model& model,
                                std::int64_t max_tokens, const StudyEvents& events) {
    TokenizedDocument doc;
    if (!spec.token_ids.empty()) {
        doc =
            document_of_ids(spec.label.empty() ? "<token ids>" : spec.label, spec.token_ids, model);
    } else if (spec.text) {
        std::string text;
        const std::size_t replaced = sanitize_utf8(*spec.text, text);
        doc = tokenize_document(spec.label.empty() ? "<text>" : spec.label, std::move(text),
                                replaced, require_tokenizer(model));
    } else if (!spec.path.empty()) {
        doc =
            load_tokenized_document(spec.path, spec.label.empty() ? spec.path.string() : spec.label,
                                    require_tokenizer(model), max_tokens);
    } else {
        doc = tokenize_document(spec.label.empty() ? kDemoDocumentLabel : spec.label,
                                demo_document(), 0, require_tokenizer(model));
    }
    if (doc.replaced_sequences > 0 && events.warning) {
        const auto n = static_cast<std::int64_t>(doc.replaced_sequences);
        events.warning(doc.label + ": replaced " + group_digits(n) + " invalid UTF-8 sequence" +
                       (n == 1 ? "" : "s") + " with U+FFFD");
    }
    if (doc.ids.empty()) fail(doc.label, "the input has no tokens");
    return doc;
}

// The layers whose entering state the base keeps for what-ifs (T * hidden * `value_bytes` each):
// empty for every layer when they all fit in `budget`; else as many as fit, evenly spaced and
// ending at the last layer (a what-if begins at the nearest kept layer below its first change),
// and at least the last one. The final state is always kept as well.
std::vector<int> checkpoint_layers(const ModelConfig& config, std::int64_t tokens,
                                   std::int64_t budget, std::int64_t value_bytes) {
    const std::int64_t layers = config.num_hidden_layers;
    const std::int64_t per_layer =
        std::max<std::int64_t>(value_bytes * tokens * config.hidden_size, 1);
    if (per_layer * layers <= budget) return {};
    const std::int64_t fit = std::clamp<std::int64_t>(budget / per_layer, 1, layers);
    const std::int64_t step = (layers + fit - 1) / fit;
    std::vector<int> keep;
    for (std::int64_t l = layers - 1; l >= 0 && static_cast<std::int64_t>(keep.size()) < fit;
         l -= step) {
        keep.insert(keep.begin(), static_cast<int>(l));
    }
    return keep;
}

// Where the base's checkpoints go and how much they may take: a CUDA run keeps them in GPU memory
// (a share of what is free once the model is loaded), a CPU run in host memory (the budget).
std::int64_t checkpoint_budget(const std::string& device, std::int64_t host_budget,
                               double device_share) {
    const std::optional<Device> gpu = parse_device(device);
    if (!gpu || !gpu->is_cuda() || !(device_share > 0.0)) return host_budget;
    return static_cast<std::int64_t>(device_share *
                                     static_cast<double>(cuda_free_bytes(gpu->index)));
}

bool same_source(const ModelSpec& a, const ModelSpec& b) {
    return a.folder == b.folder && a.shape == b.shape && (a.shape.empty() || a.seed == b.seed);
}

// The largest per-token NLL difference between a profile and a re-run of it.
double worst_nll_difference(const std::vector<float>& recorded, const std::vector<float>& rerun) {
    double worst = 0.0;
    const std::size_t n = std::min(recorded.size(), rerun.size());
    for (std::size_t i = 1; i < n; ++i) {
        const double a = recorded[i];
        const double b = rerun[i];
        if (std::isfinite(a) && std::isfinite(b)) worst = std::max(worst, std::abs(a - b));
    }
    return worst;
}

class LocalStudy final : public Study {
public:
    explicit LocalStudy(const StudyOptions& options)
        : budget_(options.checkpoint_budget_bytes),
          device_share_(options.device_checkpoint_share),
          external_(options.cancel),
          group_(options.group && options.group->world() > 1 ? options.group : nullptr) {}

    std::string where() const override {
        const std::string device = model_ ? model_->placement().device : std::string("cpu");
        if (is_cpu_device(device)) return "cpu";
        return device + " " + device_name_;
    }

    ModelSummary open_model(const ModelSpec& requested, const StudyEvents& events) override {
        begin_call();
        ModelSpec spec = requested;
        spec.placement.device = rank_device(spec.placement.device);
        if (spec.demo()) spec.folder = require_demo_model();
        if (!spec.folder.empty()) {
            std::error_code error;
            const std::filesystem::path absolute = std::filesystem::absolute(spec.folder, error);
            if (!error) spec.folder = absolute.lexically_normal();
        }
        const bool keep = model_ && same_source(spec_, spec) &&
                          (model_->placement() == spec.placement ||
                           (parse_weight_dtype(spec.placement.dtype) == WeightDtype::Auto &&
                            model_->placement().device == spec.placement.device &&
                            model_->placement().allow_nonfinite_weights ==
                                spec.placement.allow_nonfinite_weights));
        if (keep) return model_->summary();
        drop_model();
        if (events.step) events.step("loading the model");
        // Tensor parallel: the rank reads only its part of the weights.
        const int rank = group_ ? group_->rank() : 0;
        const int world = group_ ? group_->world() : 1;
        if (!spec.shape.empty()) {
            model_.emplace(random_model_shard(published_shape(spec.shape), spec.seed,
                                              spec.placement, rank, world));
        } else {
            model_.emplace(load_model_shard(spec.folder, spec.placement, rank, world));
        }
        spec_ = spec;
        spec_.placement = model_->placement();
        device_name_.clear();
        if (!is_cpu_device(model_->placement().device)) {
            const std::optional<Device> device = parse_device(model_->placement().device);
            device_name_ = cuda_device_info(device ? device->index : 0).name;
        }
        if (events.warning) {
            for (const std::string& w : model_->warnings()) events.warning(w);
        }
        return model_->summary();
    }

    StudyRunResult run(const StudyRunSpec& spec, const StudyEvents& events) override {
        begin_call();
        const Model& model = require_model();
        const ModelConfig& config = model.config();
        RunOptions options = spec.options;
        options.device = rank_device(options.device);
        StudyRunResult out;
        RunReport& report = out.report;
        report.requested_max_tokens = options.max_tokens;
        report.max_positions = config.max_position_embeddings;
        report.dtype = model.placement().dtype;
        if (parse_device(options.device) != parse_device(model.placement().device)) {
            fail("", "the run is for " + options.device + " but the model is on " +
                         model.placement().device);
        }

        const std::int64_t context = config.max_position_embeddings;
        const std::int64_t read_limit = spec.count_all_tokens    ? 0
                                        : options.max_tokens > 0 ? options.max_tokens
                                        : spec.cut_at_context    ? context
                                                                 : 0;
        TokenizedDocument doc = tokenize_spec(spec.document, model, read_limit, events);
        check_cancel();
        const auto document_tokens = static_cast<std::int64_t>(doc.ids.size());
        report.counted_all = doc.counted_all;
        report.file_bytes = doc.file_bytes;
        report.bytes_read = doc.bytes_read;
        if (options.max_tokens <= 0 && spec.cut_at_context &&
            (document_tokens > context || !doc.counted_all)) {
            // The options record the limit that applied, so a saved profile says how it was cut.
            options.max_tokens = context;
            report.cut_by = "context";
        } else if (options.max_tokens > 0 &&
                   (document_tokens > options.max_tokens || !doc.counted_all)) {
            report.cut_by = "max tokens";
        }
        truncate(doc, options.max_tokens);
        const auto tokens = static_cast<std::int64_t>(doc.ids.size());
        report.beyond_context = tokens > config.max_position_embeddings;
        if (report.beyond_context && events.warning) {
            events.warning(group_digits(tokens) +
                           " tokens are more than the model's max_position_embeddings (" +
                           group_digits(config.max_position_embeddings) + ")");
        }
        if (spec.threads > 0) set_cpu_threads(spec.threads);
        report.threads = cpu_threads();
        check_cancel();

        if (events.step) {
            events.step("prefill of " + group_digits(tokens) + " tokens");
        }
        if (events.tokens) {
            events.tokens(tokens);
        }
        warm_up(doc.ids, options);
        Pass pass(*this, events, 0.0, 1.0);
        PrefillHooks hooks = pass.hooks();
        hooks.logits_sink = events.logits;
        std::optional<KernelTracer> tracer;
        start_tracer(tracer, hooks, options.device, spec.trace, events);
        WhatIfRun base;
        if (spec.keep_checkpoints) {
            const std::int64_t value_bytes = model.placement().dtype == "fp32" ? 4 : 2;
            const std::vector<int> keep = checkpoint_layers(
                config, tokens, checkpoint_budget(options.device, budget_, device_share_),
                value_bytes);
            base = run_whatif_base(model, doc.ids, options, hooks, keep.empty() ? nullptr : &keep);
        } else {
            // No copies of the residual stream: the run's time is the prefill's alone.
            base.options = options;
            base.result = run_prefill(model, doc.ids, options, hooks);
            base.run_seconds = base.result.wall_seconds;
            base.metrics = compute_metrics(whole_config(model), options, tokens,
                                           base.result.decisions, base.result.token_nll);
        }
        KernelTimeline timeline;
        if (tracer) timeline = tracer->finish(base.result.ranges);
        check_cancel();

        tokens_ = doc.ids;
        PrefillResult result = base.result;  // the base keeps its own copy for what-ifs
        Profile profile = make_profile(model, std::move(doc), options, std::move(result));
        attach_timeline(profile, tracer, std::move(timeline), spec.trace);
        gather_ranges(profile, base.result.started_ns);
        auto shared = std::make_shared<const Profile>(std::move(profile));
        base_run_ = std::move(base);
        base_ = shared;
        base_origin_.clear();
        out.profile = std::move(shared);
        return out;
    }

    void adopt(std::shared_ptr<const Profile> profile, const std::string& origin,
               const std::optional<ModelSpec>& model, const StudyEvents& events) override {
        begin_call();
        if (!profile) fail(origin, "no profile");
        if (rank_device(profile->options.device) != profile->options.device) {
            // This rank re-runs it on its own GPU.
            auto own = std::make_shared<Profile>(*profile);
            own->options.device = rank_device(profile->options.device);
            profile = std::move(own);
        }
        const Profile& p = *profile;
        if (p.token_ids.empty()) fail(origin, "the profile holds no tokens to re-run");
        try {
            require_device(p.options.device);
        } catch (const Error& e) {
            fail(origin,
                 "was recorded on " + p.options.device + ", which cannot run here: " + e.what());
        }
        ModelSpec spec;
        if (model) {
            spec = *model;
        } else {
            spec.folder = recorded_folder(p, origin);
            spec.placement.device = p.options.device;
            if (!p.dtype.empty()) spec.placement.dtype = p.dtype;
        }
        if (!spec.folder.empty()) {
            // The shape first, from config.json alone: a mismatch should not wait for weights.
            std::error_code error;
            if (std::filesystem::is_regular_file(spec.folder / "config.json", error)) {
                const std::string shape = model_difference(
                    p.model,
                    summarize_config(load_model_config(spec.folder / "config.json"),
                                     spec.folder.string()),
                    spec.folder.string(), false);
                if (!shape.empty() && !model) {
                    fail(origin, "was recorded with the model in " + spec.folder.string() +
                                     ", which has changed since (" + shape +
                                     "); give the model it was made with: --model DIR");
                }
                if (!shape.empty()) {
                    fail(origin, "was recorded with another model (" + shape +
                                     "); give the model it was made with");
                }
            }
        }
        const ModelSummary found = open_model(spec, events);
        const std::string difference = model_difference(
            p.model, found, spec.demo() ? kDemoModelLabel : spec.folder.string(), true);
        if (!difference.empty()) {
            fail(origin, "was recorded with another model (" + difference +
                             "); give the model it was made with");
        }
        if (!p.model.config_hash.empty() && !found.config_hash.empty() &&
            p.model.config_hash != found.config_hash && events.warning) {
            events.warning(origin + ": the model's config.json has changed since the profile was " +
                           "recorded (hash " + p.model.config_hash + ", now " + found.config_hash +
                           ")");
        }
        base_ = std::move(profile);
        base_origin_ = origin;
        base_run_.reset();
        tokens_ = base_->token_ids;
    }

    StudyWhatIfResult whatif(const RunOptions& requested, int ttft_repeats,
                             const StudyEvents& events) override {
        begin_call();
        const Profile& base = require_base("what-if");
        const Model& model = require_model();
        const RunOptions variant = keep_base_placement(requested);
        const int start = first_changed_layer(model.config(), base.options, variant);
        const double share = ttft_repeats > 0 ? 0.5 : 1.0;  // of the job before TTFT runs
        double done = 0.0;
        if (!has_checkpoint(start)) {
            const std::vector<int> keep = {start};
            rerun_base(&keep, events, 0.0, share / 2);
            done = share / 2;
        }
        if (events.step) events.step("variant");
        Pass pass(*this, events, done, share - done);
        PrefillHooks hooks = pass.hooks();
        std::optional<KernelTracer> tracer;
        start_tracer(tracer, hooks, variant.device, true, events);
        WhatIfRun run = run_whatif_variant(model, tokens_, *base_run_, variant, hooks);
        KernelTimeline timeline;
        if (tracer) timeline = tracer->finish(run.result.ranges);
        check_cancel();
        auto comparison = std::make_shared<WhatIfComparison>(
            compare(model, tokens_, *base_run_, run, [this] { check_cancel(); }));
        Profile profile = make_variant_profile(base, run);
        attach_timeline(profile, tracer, std::move(timeline), true);
        gather_ranges(profile, run.result.started_ns);
        if (ttft_repeats > 0) {
            auto [base_ttft, variant_ttft] =
                measure(variant, ttft_repeats, events, share, 1.0 - share);
            comparison->base_ttft = std::move(base_ttft);
            comparison->variant_ttft = std::move(variant_ttft);
        }
        return {std::make_shared<const Profile>(std::move(profile)), std::move(comparison),
                run.run_seconds};
    }

    std::pair<TtftMeasurement, TtftMeasurement> measure_ttft(const RunOptions& variant, int repeats,
                                                             const StudyEvents& events) override {
        begin_call();
        require_base("TTFT");
        require_model();
        return measure(keep_base_placement(variant), repeats, events, 0.0, 1.0);
    }

    StudyExplanation explain(std::int64_t token, int layer, const StudyEvents& events) override {
        begin_call();
        const Profile& base = require_base("explain");
        const Model& model = require_model();
        const std::int64_t L = model.config().num_hidden_layers;
        const std::int64_t T = base.num_tokens();
        refuse_tensor_parallel("explain");
        if (!model.config().is_l2a()) {
            fail("explain", "the model is a plain " + model.summary().model_type +
                                " model: no layer has a global attention of its own to explain");
        }
        if (layer < 0 || layer >= L) {
            fail("explain", "layer " + num(layer) + " does not exist (the model has " + num(L) +
                                " layers: 0-" + num(L - 1) + ")");
        }
        if (token < 0 || token >= T) {
            fail("explain", "token " + num(token) + " does not exist (the run has " + num(T) +
                                " tokens: 0-" + num(T - 1) + ")");
        }
        if (!kept(layer)) keep_entering(layer, events);
        if (events.step)
            events.step("attention of token " + num(token) + " in layer " + num(layer));
        StudyExplanation out;
        out.lens =
            attention_lens(model, base_run_->checkpoints.entering[static_cast<std::size_t>(layer)],
                           T, layer, token);
        const auto at = static_cast<std::size_t>(layer * T + token);
        out.router_logit = base.router_logits[at];
        out.probability =
            1.0 /
            (1.0 + std::exp(-static_cast<double>(out.router_logit) / base.model.sigmoid_temp));
        out.decision = base.decisions[at] != 0;
        report_progress(events, 1.0, 1.0, "done");
        return out;
    }

    std::shared_ptr<const Profile> oracle(double min_mass, const StudyEvents& events) override {
        begin_call();
        const Profile& base = require_base("oracle");
        const Model& model = require_model();
        refuse_tensor_parallel("oracle");
        if (!model.config().is_l2a()) {
            fail("oracle", "the model is a plain " + model.summary().model_type +
                               " model: it has no router to score");
        }
        if (!(min_mass >= 0.0 && min_mass <= 1.0)) {
            fail("oracle", "--min-mass " + format_fixed(min_mass, 3) + " is not between 0 and 1");
        }
        const std::int64_t L = model.config().num_hidden_layers;
        const std::int64_t T = base.num_tokens();
        if (events.step) events.step("routing oracle, " + group_digits(T) + " tokens");
        std::vector<float> mass(static_cast<std::size_t>(L * T), 0.0f);
        Pass pass(*this, events, 0.0, 1.0);
        PrefillHooks hooks = pass.hooks();
        hooks.distant_mass = [&](int layer, std::span<const float> m) {
            std::copy(m.begin(), m.end(), mass.begin() + static_cast<std::ptrdiff_t>(layer * T));
        };
        const PrefillResult rerun = run_prefill(model, tokens_, base.options, hooks);
        check_cancel();
        warn_if_not_reproduced(rerun.token_nll, events);
        auto with_oracle = std::make_shared<Profile>(base);
        with_oracle->distant_mass = std::move(mass);
        with_oracle->oracle_min_mass = min_mass;
        base_ = with_oracle;
        return with_oracle;
    }

    StudyPruneResult suggest_prune(double max_dnll, const StudyEvents& events) override {
        begin_call();
        require_base("suggest-prune");
        const Model& model = require_model();
        if (!has_every_checkpoint()) rerun_base(nullptr, events, 0.0, 0.3);
        if (events.step) events.step("greedy search");
        PrefillHooks hooks;
        hooks.cancel = flag();
        hooks.group = group_;
        StudyPruneResult out;
        out.suggestion = l2a::suggest_prune(
            model, tokens_, *base_run_, max_dnll,
            [&](std::int64_t done, std::int64_t most) {
                const double f = static_cast<double>(done) /
                                 static_cast<double>(std::max<std::int64_t>(most, 1));
                report_progress(events, 0.3 + 0.7 * f, f, "variant " + num(done));
            },
            hooks);
        check_cancel();
        out.base_kv_bytes = base_run_->metrics.kv_bytes_total;
        out.base_ttft_predicted = calibrate_timing(*base_run_)
                                      .predict_ttft(base_run_->result.decisions,
                                                    static_cast<std::int64_t>(tokens_.size()));
        return out;
    }

    void cancel() override { flag()->store(true); }

private:
    // One engine pass mapped onto [offset, offset + scale] of the job's progress.
    class Pass {
    public:
        Pass(LocalStudy& study, const StudyEvents& events, double offset, double scale)
            : study_(study), events_(events), offset_(offset), scale_(scale) {}
        PrefillHooks hooks() {
            PrefillHooks h;
            h.cancel = study_.flag();
            h.group = study_.group_;
            h.progress = [this](const RunProgress& p) {
                study_.report_progress(events_, offset_ + scale_ * p.fraction, p.fraction,
                                       describe(p));
            };
            return h;
        }

    private:
        LocalStudy& study_;
        const StudyEvents& events_;
        double offset_;
        double scale_;
    };

    void begin_call() {
        if (!external_) own_.store(false);
        last_fraction_ = 0.0;
        check_cancel();
    }
    std::atomic<bool>* flag() const { return external_ ? external_ : &own_; }
    void check_cancel() const {
        if (flag()->load()) throw Cancelled();
    }

    void report_progress(const StudyEvents& events, double job, double step,
                         const std::string& stage) {
        job = std::max(last_fraction_, std::clamp(job, 0.0, 1.0));
        last_fraction_ = job;
        if (events.progress) events.progress(job, std::clamp(step, 0.0, 1.0), stage);
    }

    const Model& require_model() const {
        if (!model_) fail("", "no model is open");
        return *model_;
    }
    const Profile& require_base(const std::string& what) const {
        if (!base_) fail(what, "there is no base run yet: run a document first");
        return *base_;
    }
    void drop_model() {
        model_.reset();
        base_run_.reset();
        warmed_ = false;
    }

    // The folder a profile recorded for its model, which must still be there.
    static std::filesystem::path recorded_folder(const Profile& p, const std::string& origin) {
        const std::string& recorded = p.model.path;
        if (recorded.empty()) {
            fail(origin,
                 "does not record the folder of its model; give the model it was made with: "
                 "--model DIR (or --demo)");
        }
        std::error_code error;
        if (!std::filesystem::is_regular_file(std::filesystem::path(recorded) / "config.json",
                                              error)) {
            fail(origin, "was recorded with the model in " + recorded +
                             ", which is no longer there; give the model it was made with: "
                             "--model DIR (or --demo)");
        }
        return recorded;
    }

    // A what-if keeps the base's document and placement.
    RunOptions keep_base_placement(RunOptions variant) const {
        variant.device = base_->options.device;
        variant.max_tokens = base_->options.max_tokens;
        return variant;
    }

    // Whether the base kept the state entering `layer` (the final state for num_layers).
    bool kept(int layer) const {
        if (!base_run_) return false;
        const ResidualCheckpoints& c = base_run_->checkpoints;
        if (layer >= static_cast<int>(model_->config().num_hidden_layers)) {
            return !c.final_hidden.empty();
        }
        const auto s = static_cast<std::size_t>(layer);
        return s < c.entering.size() && !c.entering[s].empty();
    }
    // A what-if that changes layer `start` can begin at a kept state at or below it.
    bool has_checkpoint(int start) const {
        for (int l = start; l >= 0; --l) {
            if (kept(l)) return true;
        }
        return false;
    }
    bool has_every_checkpoint() const {
        for (int l = 0; l <= static_cast<int>(model_->config().num_hidden_layers); ++l) {
            if (!kept(l)) return false;
        }
        return true;
    }

    // Re-runs the base keeping `keep` (nullptr: every layer) and says so when the re-run does
    // not reproduce the profile (another device or build): comparisons are against the re-run.
    // The first run on a GPU pays one-time costs (module loading, library handles, the caching
    // allocator's first blocks): a short untimed run first keeps them out of the profile's first
    // layer. Once per model.
    void warm_up(std::span<const std::int32_t> ids, const RunOptions& options) {
        if (warmed_ || is_cpu_device(options.device) || ids.empty()) return;
        RunOptions quick = options;
        quick.token_nll = false;
        PrefillHooks hooks;
        hooks.cancel = flag();
        hooks.group = group_;
        run_prefill(*model_, ids.first(std::min<std::size_t>(ids.size(), 512)), quick, hooks);
        warmed_ = true;
    }

    // Keeps the base's state entering `layer` as well: the layers from the nearest kept one
    // below it run up to it (nothing else), or the whole base re-runs when none below is kept.
    void keep_entering(int layer, const StudyEvents& events) {
        int below = layer - 1;
        while (below >= 0 && !kept(below)) --below;
        if (below < 0) {
            // The layers kept so far stay kept (later what-ifs start from them), and this one.
            std::vector<int> keep = {layer};
            for (int l = 0; l < static_cast<int>(model_->config().num_hidden_layers); ++l) {
                if (kept(l)) keep.push_back(l);
            }
            rerun_base(&keep, events, 0.0, 0.9);
            return;
        }
        if (events.step) {
            events.step("layers " + num(below) + "-" + num(layer - 1) + " of the base again");
        }
        Pass pass(*this, events, 0.0, 0.9);
        PrefillHooks hooks = pass.hooks();
        ResidualCheckpoints state;
        state.layers = {layer};
        hooks.checkpoints = &state;
        hooks.stop_at_layer = layer;
        run_prefill_from(*model_, tokens_, base_->options, below,
                         base_run_->checkpoints.entering[static_cast<std::size_t>(below)], hooks);
        check_cancel();
        base_run_->checkpoints.entering[static_cast<std::size_t>(layer)] =
            state.entering[static_cast<std::size_t>(layer)];
        base_run_->checkpoints.layers.push_back(layer);
    }

    void rerun_base(const std::vector<int>* keep, const StudyEvents& events, double offset,
                    double scale) {
        if (events.step) {
            events.step("re-run of the base, " +
                        group_digits(static_cast<std::int64_t>(tokens_.size())) + " tokens");
        }
        Pass pass(*this, events, offset, scale);
        base_run_ = run_whatif_base(*model_, tokens_, base_->options, pass.hooks(), keep);
        check_cancel();
        warn_if_not_reproduced(base_run_->result.token_nll, events);
    }

    // A re-run of the base should reproduce its profile (another device or build may not).
    void warn_if_not_reproduced(const std::vector<float>& rerun_nll, const StudyEvents& events) {
        const double worst = worst_nll_difference(base_->token_nll, rerun_nll);
        if (worst > 1e-3 && events.warning) {
            events.warning((base_origin_.empty() ? std::string("the base run") : base_origin_) +
                           ": the re-run of the base differs from the profile (per-token NLL by "
                           "up to " +
                           format_fixed(worst, 4) + "); comparing against the re-run");
        }
    }

    std::pair<TtftMeasurement, TtftMeasurement> measure(const RunOptions& variant, int repeats,
                                                        const StudyEvents& events, double offset,
                                                        double scale) {
        if (events.step) {
            events.step("time to first token, " + num(repeats) + " runs each of base and variant");
        }
        PrefillHooks hooks;
        hooks.cancel = flag();
        hooks.group = group_;
        auto result = measure_ttft_pair(
            *model_, tokens_, base_->options, variant, repeats, hooks,
            [&](std::int64_t done, std::int64_t all) {
                const double f =
                    static_cast<double>(done) / static_cast<double>(std::max<std::int64_t>(all, 1));
                report_progress(events, offset + scale * f, f,
                                "TTFT run " + num(done) + " of " + num(all));
            });
        check_cancel();
        return result;
    }

    // Tensor parallel on GPUs: each rank runs on its group's GPU, whichever CUDA device the run
    // names ("cuda", or "cuda:0" in the profile of such a run, which rank 0 ran).
    std::string rank_device(const std::string& device) const {
        const bool cuda = device.rfind("cuda", 0) == 0;
        if (!group_ || is_cpu_device(group_->device()) || !cuda) return device;
        return group_->device();
    }

    // What needs the whole model in one process.
    void refuse_tensor_parallel(const std::string& what) const {
        if (group_) {
            fail(what, "not available under tensor parallel (this process holds rank " +
                           num(group_->rank()) + "'s part of " + num(group_->world()) +
                           "); run it without --tensor-parallel");
        }
    }

    // Tensor parallel: every rank's host ranges, kernels and memory operations into the profile
    // (the same on every rank), rank 0's first, so that its records still index its ranges.
    // `started_ns`: this rank's start of the run on the steady clock, which the processes of one
    // computer share: the others' times are moved onto rank 0's.
    void gather_ranges(Profile& profile, std::int64_t started_ns) const {
        if (!group_) return;
        merge_rank_timelines(profile,
                             group_->all_gather_bytes(encode_rank_timeline(profile, started_ns)));
    }

    void start_tracer(std::optional<KernelTracer>& tracer, PrefillHooks& hooks,
                      const std::string& device, bool trace, const StudyEvents& events) {
        if (is_cpu_device(device) || !trace) return;
        tracer.emplace(hooks.observer);
        hooks.observer = &*tracer;
        if (!tracer->active() && events.warning) {
            events.warning("no kernel timeline: " + tracer->reason());
        }
    }

    static void attach_timeline(Profile& profile, const std::optional<KernelTracer>& tracer,
                                KernelTimeline timeline, bool trace) {
        if (is_cpu_device(profile.options.device)) return;
        profile.kernels = std::move(timeline.kernels);
        profile.memory_ops = std::move(timeline.memory_ops);
        if (tracer) {
            profile.timeline_source = timeline.source;
        } else if (!trace) {
            profile.timeline_source = "host timers only: --no-trace";
        }
    }

    std::int64_t budget_;
    double device_share_;
    bool warmed_ = false;  // a run on the GPU has warmed it up (warm_up), for this model
    std::atomic<bool>* external_;
    ProcessGroup* group_;  // tensor parallel; nullptr for a process alone
    mutable std::atomic<bool> own_{false};
    double last_fraction_ = 0.0;

    ModelSpec spec_;
    std::optional<Model> model_;
    std::string device_name_;
    std::shared_ptr<const Profile> base_;
    std::string base_origin_;  // the file a base was adopted from; "" for a run
    std::optional<WhatIfRun> base_run_;
    std::vector<std::int32_t> tokens_;
};

}  // namespace

std::string ModelSpec::label() const {
    if (!shape.empty()) return shape + " (random weights, seed " + std::to_string(seed) + ")";
    if (folder.empty()) return kDemoModelLabel;
    return folder.string();
}

std::unique_ptr<Study> make_local_study(const StudyOptions& options) {
    return std::make_unique<LocalStudy>(options);
}

std::string model_difference(const ModelSummary& recorded, const ModelSummary& found,
                             const std::string& where, bool compare_parameters) {
    const std::pair<const char*, std::pair<std::int64_t, std::int64_t>> fields[] = {
        {"layers", {recorded.num_layers, found.num_layers}},
        {"hidden_size", {recorded.hidden_size, found.hidden_size}},
        {"intermediate_size", {recorded.intermediate_size, found.intermediate_size}},
        {"heads", {recorded.num_heads, found.num_heads}},
        {"kv heads", {recorded.num_kv_heads, found.num_kv_heads}},
        {"head_dim", {recorded.head_dim, found.head_dim}},
        {"vocabulary", {recorded.vocab_size, found.vocab_size}},
        {"sliding_window", {recorded.sliding_window, found.sliding_window}},
        {"parameters",
         {recorded.parameter_count,
          compare_parameters ? found.parameter_count : recorded.parameter_count}},
    };
    if (recorded.model_type != found.model_type) {
        return "model_type " + recorded.model_type + " in the profile, " + found.model_type +
               " in " + where;
    }
    for (const auto& [name, values] : fields) {
        if (values.first != values.second) {
            return std::string(name) + " " + num(values.first) + " in the profile, " +
                   num(values.second) + " in " + where;
        }
    }
    return {};
}

}  // namespace l2a
