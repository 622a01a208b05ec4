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

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/document.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_choices.h"
#include "l2a/engine/whatif.h"
#include "l2a/profiler/remote.h"
#include "l2a/profiler/study.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

// Residual checkpoints of every layer are kept for live what-ifs while they take at most this
// much host memory (a CUDA run keeps them in GPU memory: StudyOptions::device_checkpoint_share);
// beyond it evenly spaced layers are kept, and a what-if starts from the nearest one below.
constexpr std::int64_t kCheckpointBudgetBytes = std::int64_t(2) << 30;
constexpr auto kProgressInterval = std::chrono::milliseconds(33);

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
struct ConnectJob {
    EngineChoice engine;
};
struct ExplainJob {
    std::int64_t token = 0;
    int layer = 0;
};
struct OracleJob {
    double min_mass = 0.5;
};
using Job =
    std::variant<RunJob, WhatIfJob, AdoptJob, MeasureJob, ConnectJob, ExplainJob, OracleJob>;

}  // namespace

struct RunController::Worker {
    explicit Worker(RunController* owner) : owner(owner) {
        thread = std::thread([this] { loop(); });
    }

    ~Worker() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
            drop_everything();
        }
        cancel_flag = true;
        wake.notify_all();
        thread.join();
    }

    // ---- called on the GUI thread ----------------------------------------------------------

    void submit_run(RunRequest request) {
        {
            std::lock_guard lock(mutex);
            drop_work_on_the_base();  // made for the old base
            pending_adopt.reset();
            pending_run = RunJob{std::move(request)};
            if (running) cancel_flag = true;
        }
        set_busy(true);
        wake.notify_all();
    }

    void submit_adopt(ProfilePtr profile) {
        {
            std::lock_guard lock(mutex);
            drop_work_on_the_base();
            pending_adopt = AdoptJob{std::move(profile)};
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

    void submit_explain(ExplainJob job) {
        {
            std::lock_guard lock(mutex);
            pending_explain = job;  // latest wins
        }
        set_busy(true);
        wake.notify_all();
    }

    void submit_oracle(OracleJob job) {
        {
            std::lock_guard lock(mutex);
            pending_oracle = job;
        }
        set_busy(true);
        wake.notify_all();
    }

    void submit_connect(EngineChoice engine) {
        {
            std::lock_guard lock(mutex);
            drop_work_on_the_base();  // made for the engine being left
            pending_connect = ConnectJob{std::move(engine)};
            if (running) cancel_flag = true;
        }
        set_busy(true);
        wake.notify_all();
    }

    void cancel() {
        {
            std::lock_guard lock(mutex);
            drop_everything();
            if (running) cancel_flag = true;
        }
        wake.notify_all();
        if (!running_now()) {
            set_busy(false);
        }
    }

    bool running_now() {
        std::lock_guard lock(mutex);
        return running || anything_pending();
    }

    // Under the mutex: the jobs that work on the current base (and its engine).
    void drop_work_on_the_base() {
        pending_run.reset();
        pending_whatif.reset();
        pending_measure.reset();
        pending_explain.reset();
        pending_oracle.reset();
    }
    void drop_everything() {
        drop_work_on_the_base();
        pending_adopt.reset();
        pending_connect.reset();
    }
    // Moves a waiting job of `slot` into `job`; false when there is none.
    template <typename T>
    static bool take(std::optional<T>& slot, Job& job) {
        if (!slot) return false;
        job = std::move(*slot);
        slot.reset();
        return true;
    }

    // Under the mutex.
    bool anything_pending() const {
        return pending_run || pending_whatif || pending_adopt || pending_measure ||
               pending_connect || pending_explain || pending_oracle;
    }

    // ---- the worker thread -----------------------------------------------------------------

    void loop() {
        for (;;) {
            Job job;
            {
                std::unique_lock lock(mutex);
                wake.wait(lock, [&] { return stopping || anything_pending(); });
                if (stopping) return;
                // In this order; an explanation before a what-if: the user waits on it with
                // the token selected.
                take(pending_connect, job) || take(pending_adopt, job) || take(pending_run, job) ||
                    take(pending_explain, job) || take(pending_whatif, job) ||
                    take(pending_oracle, job) || take(pending_measure, job);
                running = true;
                // A newer what-if makes a running what-if or TTFT measurement stale.
                running_whatif = std::holds_alternative<WhatIfJob>(job) ||
                                 std::holds_alternative<MeasureJob>(job);
                cancel_flag = false;
            }
            if (!std::holds_alternative<AdoptJob>(job) &&
                !std::holds_alternative<ConnectJob>(job)) {
                post([](RunController* c) { emit c->jobStarted(); });
            }
            try {
                std::visit([this](auto& j) { execute(j); }, job);
            } catch (const Cancelled&) {
                post([](RunController* c) { emit c->cancelled(); });
            } catch (const std::bad_alloc&) {
                post_failure("out of memory: the run needs more host memory than is free");
            } catch (const ConnectionLost& e) {
                post_failure(e.what());
                const QString where = engine_url + " (connection lost)";
                post([where](RunController* c) { emit c->engineChanged(where, true, {}); });
            } catch (const std::exception& e) {
                post_failure(e.what());
            }
            bool idle = false;
            {
                std::lock_guard lock(mutex);
                running = false;
                running_whatif = false;
                idle = !anything_pending();
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
        ModelSpec spec;
        spec.folder = r.model_dir;  // empty: the demo model
        spec.placement.device = r.options.device;
        spec.placement.dtype = r.dtype;
        adopted.reset();
        study->open_model(spec, events());
        check_cancel();

        StudyRunSpec run;
        if (!r.document.empty()) run.document.label = r.document.string();
        if (remote && !r.document.empty()) {
            // The engine gets the text; the file is read here.
            run.document.text = load_document(r.document).text;
        } else {
            run.document.path = r.document;  // empty: the demo document
        }
        run.options = r.options;
        // No limit asked: the whole document, up to the model's context.
        run.cut_at_context = true;
        run.count_all_tokens = true;
        run.threads = r.threads > 0 ? r.threads : default_cpu_threads();
        StudyEvents e = events();
        const QString device = q(r.options.device);
        e.tokens = [this, device](std::int64_t tokens) {
            post_started("Running " + count_text(tokens) + " tokens on " + device);
        };
        StudyRunResult result = study->run(run, e);
        check_cancel();
        RunInfo info;
        info.dtype = result.report.dtype;
        info.threads = result.report.threads;
        info.max_positions = result.report.max_positions;
        info.requested_max_tokens = result.report.requested_max_tokens;
        info.cut_by = result.report.cut_by;
        info.beyond_context = result.report.beyond_context;
        ProfilePtr profile = result.profile;
        base_profile = profile;
        post([profile, info](RunController* c) { emit c->runFinished(profile, info); });
    }

    void execute(ConnectJob& job) {
        const EngineChoice& e = job.engine;
        std::unique_ptr<Study> next;
        QStringList models;
        if (e.url.isEmpty()) {
            next = make_local_study(
                {.checkpoint_budget_bytes = kCheckpointBudgetBytes, .cancel = &cancel_flag});
        } else {
            EngineAddress address;
            address.url = e.url.toStdString();
            if (!e.token_file.isEmpty()) {
                address.token = read_engine_token(e.token_file.toStdString());
            }
            if (!e.tls_ca_file.isEmpty()) {
                address.tls_ca_pem = read_tls_ca_file(e.tls_ca_file.toStdString(), address.url);
            }
            next = connect_study(address, 10.0, &cancel_flag);
            if (address.url.rfind("ssh://", 0) != 0) {
                for (const std::string& m : engine_info(address).models) models << q(m);
            }
        }
        study = std::move(next);
        remote = !e.url.isEmpty();
        engine_url = e.url;
        // The base stays the app's; the new engine re-runs it when a what-if first needs it.
        if (base_profile) adopted = base_profile;
        const QString where = q(study->where());
        const bool is_remote = remote;
        post([where, is_remote, models](RunController* c) {
            emit c->engineChanged(where, is_remote, models);
        });
    }

    void execute(AdoptJob& job) {
        // Nothing to compute now: the model and the base re-run wait for the first what-if.
        base_profile = job.profile;
        adopted = std::move(job.profile);
    }

    // A profile opened from a file becomes the study's base when a what-if first needs it.
    void adopt_if_opened() {
        if (!adopted) return;
        post_started("Loading the model of the opened profile");
        study->adopt(adopted, "the opened profile", std::nullopt, events());
        adopted.reset();
    }

    void execute(WhatIfJob& job) {
        if (!base_profile) fail("what-if", "there is no base run yet: run a document first");
        adopt_if_opened();
        post_started("What-if");
        StudyWhatIfResult result = study->whatif(job.options, 0, events());
        check_cancel();
        ProfilePtr profile = result.variant;
        ComparisonPtr comparison = result.comparison;
        post([profile, comparison](RunController* c) {
            emit c->whatIfFinished(profile, comparison);
        });
    }

    void execute(ExplainJob& job) {
        if (!base_profile) fail("explain", "there is no base run yet: run a document first");
        adopt_if_opened();
        post_started(QString("Explaining token %1 in layer %2").arg(job.token).arg(job.layer));
        auto explanation = std::make_shared<const StudyExplanation>(
            study->explain(job.token, job.layer, events()));
        check_cancel();
        ExplanationPtr result = explanation;
        post([result](RunController* c) { emit c->explained(result); });
    }

    void execute(OracleJob& job) {
        if (!base_profile) fail("oracle", "there is no base run yet: run a document first");
        adopt_if_opened();
        post_started("Routing oracle: the distant mass of every token in every layer");
        ProfilePtr profile = study->oracle(job.min_mass, events());
        check_cancel();
        base_profile = profile;
        post([profile](RunController* c) { emit c->oracleFinished(profile); });
    }

    void execute(MeasureJob& job) {
        if (!base_profile || !job.variant || !job.comparison) {
            fail("TTFT", "there is no what-if to measure: make one first");
        }
        adopt_if_opened();
        post_started(QString("Measuring TTFT: %1 full runs each of the base and the variant")
                         .arg(job.repeats));
        auto [base_ttft, variant_ttft] =
            study->measure_ttft(job.variant->options, job.repeats, events());
        check_cancel();
        auto measured = std::make_shared<WhatIfComparison>(*job.comparison);
        measured->base_ttft = std::move(base_ttft);
        measured->variant_ttft = std::move(variant_ttft);
        ComparisonPtr result = measured;
        ProfilePtr profile = job.variant;
        post([profile, result](RunController* c) { emit c->ttftMeasured(profile, result); });
    }

    // The study's steps and progress as the controller's signals (progress at most every
    // kProgressInterval, and always at the end of a step).
    StudyEvents events() {
        StudyEvents e;
        e.step = [this](const std::string& step) {
            if (step.rfind("re-run of the base", 0) == 0) {
                post_started("Re-running the base to keep the state a what-if starts from");
            }
        };
        e.progress = [this](double job, double step, const std::string& stage) {
            const auto now = std::chrono::steady_clock::now();
            if (step < 1.0 && now - last_progress < kProgressInterval) return;
            last_progress = now;
            const QString text = q(stage);
            post([job, text](RunController* c) { emit c->progress(job, text); });
        };
        return e;
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
    std::optional<ConnectJob> pending_connect;
    std::optional<ExplainJob> pending_explain;
    std::optional<OracleJob> pending_oracle;
    std::atomic<bool> cancel_flag{false};
    bool busy = false;  // GUI thread only

    // Worker-thread state.
    bool remote = false;
    QString engine_url;
    std::unique_ptr<Study> study = make_local_study(
        {.checkpoint_budget_bytes = kCheckpointBudgetBytes, .cancel = &cancel_flag});
    ProfilePtr base_profile;
    ProfilePtr adopted;  // opened from a file, not yet the study's base
    std::chrono::steady_clock::time_point last_progress{};
};

RunController::RunController(QObject* parent) : QObject(parent) {
    qRegisterMetaType<l2a::ui::ProfilePtr>("l2a::ui::ProfilePtr");
    qRegisterMetaType<l2a::ui::ComparisonPtr>("l2a::ui::ComparisonPtr");
    qRegisterMetaType<l2a::ui::RunInfo>("l2a::ui::RunInfo");
    qRegisterMetaType<l2a::ui::ExplanationPtr>("l2a::ui::ExplanationPtr");
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

void RunController::explainToken(qint64 token, int layer) {
    worker_->submit_explain(ExplainJob{token, layer});
}

void RunController::runOracle(double min_mass) { worker_->submit_oracle(OracleJob{min_mass}); }

void RunController::cancel() { worker_->cancel(); }

void RunController::connectEngine(const EngineChoice& engine) { worker_->submit_connect(engine); }

}  // namespace l2a::ui
