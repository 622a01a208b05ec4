// Runs on one worker thread owned by this object: model loading, tokenizing, the base prefill
// and what-if re-runs. The GUI thread only sends requests and receives results through queued
// signals; nothing here blocks it. Cancel is checked between chunks and layers by the engine.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <filesystem>
#include <memory>
#include <string>

#include "l2a/engine/run_options.h"
#include "l2a/ui/session.h"

namespace l2a::ui {

struct RunRequest {
    std::filesystem::path model_dir;  // empty: the shipped demo model
    std::filesystem::path document;   // empty: the demo document
    // device, backend, max_tokens, routing, threshold, ... max_tokens 0: the whole document up
    // to the model's context (max_position_embeddings); a longer document is cut there and the
    // RunInfo says so. A max_tokens above the context runs that many tokens (RunInfo says it
    // went beyond the context).
    RunOptions options;
    std::string dtype = "auto";  // Placement::dtype
    int threads = 0;             // CPU threads of the run; 0: the engine's default
};

// Where runs happen: this computer (url empty), or a remote engine (`l2a serve`) at url
// (tcp://HOST:PORT, tls://HOST:PORT, unix:PATH, ssh://[USER@]HOST[:PORT][/PATH/TO/l2a]).
struct EngineChoice {
    QString url;
    QString token_file;   // the server's token (its first line); "" for none
    QString tls_ca_file;  // tls://: the certificate authority to trust; "" for the system's
};

class RunController : public QObject {
    Q_OBJECT
public:
    explicit RunController(QObject* parent = nullptr);
    ~RunController() override;  // cancels the current job and joins the worker

    bool busy() const;

    // A full base run. The model stays loaded for later what-ifs (reloaded only when the folder,
    // device or dtype change). A request while busy cancels the running job and replaces it.
    void startRun(const RunRequest& request);
    // Makes `profile` (opened from a file) the base for later what-ifs. Its model is loaded
    // from profile->model.path when the first what-if needs it, and its base re-run then (what-if
    // needs the residual checkpoints a saved profile does not hold).
    void adoptBase(ProfilePtr profile);
    // Re-runs the base with `variant` options from the first layer they change. While a what-if
    // runs, a newer request replaces the queued one (latest wins); a running base run is not
    // interrupted by it. Fails (signal) when there is no base.
    void startWhatIf(const RunOptions& variant);
    // Times `repeats` full runs (after a warm-up) of the base and of `variant`'s options,
    // alternately, on the worker (measure_ttft_pair), and emits ttftMeasured with a copy of
    // `comparison` that holds both measurements. A newer what-if cancels it.
    void startMeasureTtft(ProfilePtr variant, ComparisonPtr comparison, int repeats);
    // The attention lens of `token` in `layer` of the base (Study::explain), emitted as
    // explained. While one is queued, a newer request replaces it; a running one finishes.
    // Fails (signal) when there is no base, for a plain model or a token or layer out of range.
    void explainToken(qint64 token, int layer);
    // The routing oracle of the base (Study::oracle): one more run of it that computes every
    // token's distant mass in every layer. Emits oracleFinished with the base's profile and
    // its distant_mass, which becomes the base of later what-ifs and explanations.
    void runOracle(double min_mass);
    // Effective within 0.5 s; emits cancelled() once the worker has stopped.
    void cancel();
    // Runs from now on happen on `engine` (connected on the worker: engineChanged on success,
    // failed with one line otherwise, the old engine kept). Pending work for the old engine is
    // dropped; the base stays and is re-run on the new engine by the first what-if.
    void connectEngine(const EngineChoice& engine);

signals:
    void busyChanged(bool busy);
    void jobStarted();                  // a run or what-if begins: progress 0
    void started(const QString& what);  // "Running 2,048 tokens on cpu"
    // fraction in [0, 1] of the whole job (a what-if that re-runs the base first counts both
    // passes), never lower than the last within a job; stage names layers from 0 as the views
    // do ("layer 3 of 0-5: mlp").
    void progress(double fraction, const QString& stage);
    void runFinished(l2a::ui::ProfilePtr profile, l2a::ui::RunInfo info);
    void whatIfFinished(l2a::ui::ProfilePtr variant, l2a::ui::ComparisonPtr comparison);
    void explained(l2a::ui::ExplanationPtr explanation);
    // The base's profile with distant_mass [L, T] and oracle_min_mass set.
    void oracleFinished(l2a::ui::ProfilePtr profile);
    // The comparison of `variant` with its TTFT measured (base_ttft, variant_ttft filled).
    void ttftMeasured(l2a::ui::ProfilePtr variant, l2a::ui::ComparisonPtr comparison);
    // One line that names the file or input and the problem ("model.safetensors: truncated ...").
    void failed(const QString& message);
    // Where runs happen now: "cpu", "cuda:0 NVIDIA H200", "tcp://gpu1:7787: cuda:0 NVIDIA H200",
    // or "<url> (connection lost)"; a remote engine's model folders (names under its --models).
    void engineChanged(const QString& where, bool remote, const QStringList& models);
    void cancelled();

private:
    struct Worker;
    std::unique_ptr<Worker> worker_;
};

}  // namespace l2a::ui
