#include "l2a/ui/run_controller.h"

#include <QMetaObject>
#include <QPointer>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>

#include "l2a/engine/demo.h"
#include "l2a/engine/document.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_choices.h"
#include "l2a/engine/whatif.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

// Residual checkpoints of every layer are kept for live what-ifs while they take at most this
// much host memory; beyond it only the final state is kept and a what-if re-runs the base once
// keeping the checkpoint it needs.
constexpr std::int64_t kCheckpointBudgetBytes = std::int64_t(2) << 30;
constexpr auto kProgressInterval = std::chrono::milliseconds(33);

const char* const kDemoDocumentLabel = "<demo document>";

QString q(const std::string& text) { return QString::fromStdString(text); }

struct RunJob {
    RunRequest request;
};
struct WhatIfJob {
    RunOptions options;
};
struct AdoptJob {
    ProfilePtr profile;
};
struct MeasureJob {
    ProfilePtr variant;
    ComparisonPtr comparison;
    int repeats = 3;
};
using Job = std::variant<RunJob, WhatIfJob, AdoptJob, MeasureJob>;

}  // namespace

struct RunController::Worker {
    explicit Worker(RunController* owner) : owner(owner) {
        thread = std::thread([this] { loop(); });
    }

    ~Worker() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
            pending_run.reset();
            pending_whatif.reset();
            pending_adopt.reset();
            pending_measure.reset();
        }
        cancel_flag = true;
        wake.notify_all();
        thread.join();
    }

    // ---- called on the GUI thread ----------------------------------------------------------

    void submit_run(RunRequest request) {
        {
            std::lock_guard lock(mutex);
            pending_run = RunJob{std::move(request)};
            pending_adopt.reset();
            pending_whatif.reset();  // its options were made for the old base
            pending_measure.reset();
            if (running) cancel_flag = true;
        }
        set_busy(true);
        wake.notify_all();
    }

    void submit_adopt(ProfilePtr profile) {
        {
            std::lock_guard lock(mutex);
            pending_adopt = AdoptJob{std::move(profile)};
            pending_run.reset();
            pending_whatif.reset();
            pending_measure.reset();
            if (running) cancel_flag = true;
        }
        set_busy(true);
        wake.notify_all();
    }

    void submit_measure(MeasureJob job) {
        {
            std::lock_guard lock(mutex);
            pending_measure = std::move(job);
        }
        set_busy(true);
        wake.notify_all();
    }

    void submit_whatif(RunOptions options) {
        {
            std::lock_guard lock(mutex);
            pending_measure.reset();  // made for the variant this one replaces
            pending_whatif = WhatIfJob{std::move(options)};
            // Latest wins: a running what-if is stale now; a running base run is not touched.
            if (running && running_whatif) cancel_flag = true;
        }
        set_busy(true);
        wake.notify_all();
    }

    void cancel() {
        {
            std::lock_guard lock(mutex);
            pending_run.reset();
            pending_whatif.reset();
            pending_adopt.reset();
            pending_measure.reset();
            if (running) cancel_flag = true;
        }
        wake.notify_all();
        if (!running_now()) {
            set_busy(false);
        }
    }

    bool running_now() {
        std::lock_guard lock(mutex);
        return running || pending_run || pending_whatif || pending_adopt || pending_measure;
    }

    // ---- the worker thread -----------------------------------------------------------------

    void loop() {
        for (;;) {
            Job job;
            {
                std::unique_lock lock(mutex);
                wake.wait(lock, [&] {
                    return stopping || pending_run || pending_whatif || pending_adopt ||
                           pending_measure;
                });
                if (stopping) return;
                if (pending_adopt) {
                    job = std::move(*pending_adopt);
                    pending_adopt.reset();
                } else if (pending_run) {
                    job = std::move(*pending_run);
                    pending_run.reset();
                } else if (pending_whatif) {
                    job = std::move(*pending_whatif);
                    pending_whatif.reset();
                } else {
                    job = std::move(*pending_measure);
                    pending_measure.reset();
                }
                running = true;
                // A newer what-if makes a running what-if or TTFT measurement stale.
                running_whatif = std::holds_alternative<WhatIfJob>(job) ||
                                 std::holds_alternative<MeasureJob>(job);
                cancel_flag = false;
            }
            progress_offset = 0.0;
            progress_scale = 1.0;
            last_fraction = 0.0;
            if (!std::holds_alternative<AdoptJob>(job)) {
                post([](RunController* c) { emit c->jobStarted(); });
            }
            try {
                std::visit([this](auto& j) { execute(j); }, job);
            } catch (const Cancelled&) {
                post([](RunController* c) { emit c->cancelled(); });
            } catch (const std::bad_alloc&) {
                post_failure("out of memory: the run needs more host memory than is free");
            } catch (const std::exception& e) {
                post_failure(e.what());
            }
            bool idle = false;
            {
                std::lock_guard lock(mutex);
                running = false;
                running_whatif = false;
                idle = !pending_run && !pending_whatif && !pending_adopt && !pending_measure;
            }
            if (idle) {
                post([](RunController* c) {
                    // A new request may have arrived in between: only the last word counts.
                    if (!c->worker_->running_now()) c->worker_->set_busy(false);
                });
            }
        }
    }

    void execute(RunJob& job) {
        const RunRequest& r = job.request;
        post_started("Loading the model");
        Placement placement;
        placement.device = r.options.device;
        placement.dtype = r.dtype;
        const std::filesystem::path dir = r.model_dir.empty() ? require_demo_model() : r.model_dir;
        const Model& m = load_model(dir, placement);
        check_cancel();

        TokenizedDocument doc;
        const Tokenizer* tokenizer = m.tokenizer();
        if (!tokenizer) {
            fail(dir.string(),
                 "the model folder has no tokenizer.json, so a document cannot be "
                 "tokenized");
        }
        if (r.document.empty()) {
            doc = tokenize_document(kDemoDocumentLabel, demo_document(), 0, *tokenizer);
        } else {
            Document d = load_document(r.document);
            doc = tokenize_document(r.document.string(), std::move(d.text), d.replaced_sequences,
                                    *tokenizer);
        }
        if (doc.ids.empty()) fail(doc.label, "the document has no tokens");
        const ModelConfig& config = m.config();
        RunInfo info;
        info.dtype = m.placement().dtype;
        info.max_positions = config.max_position_embeddings;
        info.requested_max_tokens = r.options.max_tokens;
        // No limit asked: the whole document, up to the model's context. The options record
        // the limit that applied, so a saved profile says how it was cut.
        RunOptions options = r.options;
        const auto document_tokens = static_cast<std::int64_t>(doc.ids.size());
        if (options.max_tokens <= 0 && document_tokens > config.max_position_embeddings) {
            options.max_tokens = config.max_position_embeddings;
            info.cut_by = "context";
        } else if (options.max_tokens > 0 && document_tokens > options.max_tokens) {
            info.cut_by = "max tokens";
        }
        truncate(doc, options.max_tokens);
        check_cancel();

        const auto T = static_cast<std::int64_t>(doc.ids.size());
        info.beyond_context = T > config.max_position_embeddings;
        set_cpu_threads(r.threads > 0 ? r.threads : default_cpu_threads());
        info.threads = cpu_threads();
        post_started("Running " + count_text(T) + " tokens on " + q(r.options.device));
        const std::int64_t bytes = 4 * T * config.hidden_size * config.num_hidden_layers;
        const std::vector<int> none;
        WhatIfRun run = run_whatif_base(m, doc.ids, options, hooks(),
                                        bytes <= kCheckpointBudgetBytes ? nullptr : &none);
        check_cancel();
        tokens = doc.ids;
        PrefillResult result = run.result;  // the base keeps its own copy for what-ifs
        auto profile = std::make_shared<const Profile>(
            make_profile(m, std::move(doc), options, std::move(result)));
        base_run = std::move(run);
        base_profile = profile;
        post([profile, info](RunController* c) { emit c->runFinished(profile, info); });
    }

    void execute(AdoptJob& job) {
        // Nothing to compute now: the model and the base re-run wait for the first what-if.
        base_profile = std::move(job.profile);
        base_run.reset();
        tokens = base_profile ? base_profile->token_ids : std::vector<std::int32_t>{};
    }

    void execute(WhatIfJob& job) {
        if (!base_profile) fail("what-if", "there is no base run yet: run a document first");
        RunOptions variant = job.options;
        // A what-if keeps the base's document, device and backend.
        variant.device = base_profile->options.device;
        variant.max_tokens = base_profile->options.max_tokens;
        const Model& m = model_for_base();
        const int start = first_changed_layer(m.config(), base_profile->options, variant);
        const auto needs_checkpoint = [&] {
            const auto L = static_cast<int>(m.config().num_hidden_layers);
            if (!base_run) return true;
            if (start >= L) return base_run->checkpoints.final_hidden.empty();
            const auto s = static_cast<std::size_t>(start);
            return s >= base_run->checkpoints.entering.size() ||
                   base_run->checkpoints.entering[s].empty();
        };
        if (needs_checkpoint()) {
            post_started("Re-running the base to keep the state entering layer " +
                         QString::number(start));
            // Two passes in one progress bar: the base's first half, the variant's second.
            progress_scale = 0.5;
            const std::vector<int> keep = {start};
            base_run = run_whatif_base(m, tokens, base_profile->options, hooks(), &keep);
            check_cancel();
            progress_offset = 0.5;
        }
        post_started("What-if from layer " + QString::number(start));
        WhatIfRun run = run_whatif_variant(m, tokens, *base_run, variant, hooks());
        check_cancel();
        auto comparison =
            std::make_shared<const WhatIfComparison>(compare(m, tokens, *base_run, run));
        auto profile = std::make_shared<const Profile>(make_variant_profile(*base_profile, run));
        post([profile, comparison](RunController* c) {
            emit c->whatIfFinished(profile, comparison);
        });
    }

    void execute(MeasureJob& job) {
        if (!base_profile || !job.variant || !job.comparison) {
            fail("TTFT", "there is no what-if to measure: make one first");
        }
        RunOptions variant = job.variant->options;
        variant.device = base_profile->options.device;
        variant.max_tokens = base_profile->options.max_tokens;
        const Model& m = model_for_base();
        post_started(QString("Measuring TTFT: %1 full runs each of the base and the variant")
                         .arg(job.repeats));
        PrefillHooks h;
        h.cancel = &cancel_flag;
        auto [base_ttft, variant_ttft] = measure_ttft_pair(
            m, tokens, base_profile->options, variant, job.repeats, h,
            [this](std::int64_t done, std::int64_t all) {
                const double fraction = all > 0 ? static_cast<double>(done) / all : 0.0;
                const QString stage = QString("TTFT run %1 of %2").arg(done).arg(all);
                post([fraction, stage](RunController* c) { emit c->progress(fraction, stage); });
            });
        check_cancel();
        auto measured = std::make_shared<WhatIfComparison>(*job.comparison);
        measured->base_ttft = std::move(base_ttft);
        measured->variant_ttft = std::move(variant_ttft);
        ComparisonPtr result = measured;
        ProfilePtr profile = job.variant;
        post([profile, result](RunController* c) { emit c->ttftMeasured(profile, result); });
    }

    // The model the base profile was made with (loaded once).
    const Model& model_for_base() {
        std::filesystem::path dir = base_profile->model.path;
        if (dir.empty()) fail("what-if", "the profile does not say which model made it");
        Placement placement;
        placement.device = base_profile->options.device;
        return load_model(dir, placement);
    }

    const Model& load_model(const std::filesystem::path& dir, const Placement& placement) {
        if (!model || model_dir != dir ||
            !(model->placement() == placement ||
              (parse_weight_dtype(placement.dtype) == WeightDtype::Auto &&
               model->placement().device == placement.device))) {
            model.reset();
            base_run.reset();
            model.emplace(Model::load(dir, placement));
            model_dir = dir;
        }
        return *model;
    }

    PrefillHooks hooks() {
        PrefillHooks h;
        h.cancel = &cancel_flag;
        h.progress = [this](const RunProgress& pass) {
            const double fraction =
                std::max(last_fraction, progress_offset + progress_scale * pass.fraction);
            const auto now = std::chrono::steady_clock::now();
            if (pass.fraction < 1.0 && now - last_progress < kProgressInterval) return;
            last_progress = now;
            last_fraction = fraction;
            const QString text = q(describe(pass));
            post([fraction, text](RunController* c) { emit c->progress(fraction, text); });
        };
        return h;
    }

    void check_cancel() const {
        if (cancel_flag) throw Cancelled();
    }

    void post_started(const QString& what) {
        post([what](RunController* c) { emit c->started(what); });
    }

    void post_failure(const std::string& message) {
        // One line: the first line of the engine's message, which names the file.
        std::string line = message.substr(0, message.find('\n'));
        const QString text = q(line);
        post([text](RunController* c) { emit c->failed(text); });
    }

    template <typename F>
    void post(F&& f) {
        QPointer<RunController> target(owner);
        QMetaObject::invokeMethod(
            owner,
            [target, f = std::forward<F>(f)] {
                if (target) f(target.data());
            },
            Qt::QueuedConnection);
    }

    void set_busy(bool value) {
        if (busy == value) return;
        busy = value;
        emit owner->busyChanged(value);
    }

    RunController* owner;
    std::thread thread;
    std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;
    bool running = false;
    bool running_whatif = false;
    std::optional<RunJob> pending_run;
    std::optional<WhatIfJob> pending_whatif;
    std::optional<AdoptJob> pending_adopt;
    std::optional<MeasureJob> pending_measure;
    std::atomic<bool> cancel_flag{false};
    bool busy = false;  // GUI thread only

    // Worker-thread state.
    std::optional<Model> model;
    std::filesystem::path model_dir;
    std::optional<WhatIfRun> base_run;
    ProfilePtr base_profile;
    std::vector<std::int32_t> tokens;
    std::chrono::steady_clock::time_point last_progress{};
    double progress_offset = 0.0;  // this pass's share of the job's progress bar
    double progress_scale = 1.0;
    double last_fraction = 0.0;
};

RunController::RunController(QObject* parent) : QObject(parent) {
    qRegisterMetaType<l2a::ui::ProfilePtr>("l2a::ui::ProfilePtr");
    qRegisterMetaType<l2a::ui::ComparisonPtr>("l2a::ui::ComparisonPtr");
    qRegisterMetaType<l2a::ui::RunInfo>("l2a::ui::RunInfo");
    worker_ = std::make_unique<Worker>(this);
}

RunController::~RunController() = default;

bool RunController::busy() const { return worker_->busy; }

void RunController::startRun(const RunRequest& request) { worker_->submit_run(request); }

void RunController::adoptBase(ProfilePtr profile) { worker_->submit_adopt(std::move(profile)); }

void RunController::startWhatIf(const RunOptions& variant) { worker_->submit_whatif(variant); }

void RunController::startMeasureTtft(ProfilePtr variant, ComparisonPtr comparison, int repeats) {
    worker_->submit_measure(MeasureJob{std::move(variant), std::move(comparison), repeats});
}

void RunController::cancel() { worker_->cancel(); }

}  // namespace l2a::ui
