// The run controller: runs on its worker thread, reports progress, cancels promptly, turns bad
// input into one-line errors and keeps working afterwards; what-if re-runs from the changed layer.
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "l2a/engine/demo.h"
#include "l2a/ui/run_controller.h"

using namespace l2a;
using namespace l2a::ui;

namespace {

RunRequest demo_request(std::int64_t max_tokens) {
    RunRequest r;
    r.options.max_tokens = max_tokens;
    return r;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

}  // namespace

class RunControllerTest : public QObject {
    Q_OBJECT

private slots:
    void defaultRunCompletesWithProgress() {
        RunController controller;
        QSignalSpy finished(&controller, &RunController::runFinished);
        QSignalSpy progress(&controller, &RunController::progress);
        QSignalSpy busy(&controller, &RunController::busyChanged);
        controller.startRun(demo_request(256));
        QVERIFY(controller.busy());
        QVERIFY(finished.wait(120000));
        const auto profile = finished.takeFirst().at(0).value<ProfilePtr>();
        QVERIFY(profile);
        QCOMPARE(profile->num_tokens(), 256);
        QVERIFY(profile->num_layers > 0);
        QCOMPARE(profile->decisions.size(), std::size_t(profile->num_layers * 256));
        QVERIFY(std::isfinite(profile->metrics.mean_nll));
        QCOMPARE(profile->document_path, std::string("<demo document>"));
        QVERIFY(progress.size() > 0);
        QCOMPARE(progress.last().at(0).toDouble(), 1.0);
        QTRY_VERIFY(!controller.busy());
        QCOMPARE(busy.last().at(0).toBool(), false);
    }

    void cancelStopsARunWithinHalfASecond() {
        RunController controller;
        QSignalSpy cancelled(&controller, &RunController::cancelled);
        QSignalSpy progress(&controller, &RunController::progress);
        QSignalSpy finished(&controller, &RunController::runFinished);
        controller.startRun(demo_request(0));  // the whole demo document: several seconds
        // Cancel once the prefill itself is under way.
        QTRY_VERIFY_WITH_TIMEOUT(progress.size() > 0, 120000);
        QElapsedTimer clock;
        clock.start();
        controller.cancel();
        QVERIFY(cancelled.wait(5000));
        const qint64 ms = clock.elapsed();
        QVERIFY2(ms <= 500, qPrintable(QString("cancel took %1 ms").arg(ms)));
        QCOMPARE(finished.size(), 0);
        QTRY_VERIFY(!controller.busy());
    }

    void corruptModelIsAnErrorAndTheControllerKeepsWorking() {
        QTemporaryDir dir;
        const std::filesystem::path model = dir.filePath("model").toStdString();
        std::filesystem::create_directories(model);
        write_file(model / "config.json", "{\"model_type\": \"qwen3\", \"hidden_size\": ");
        RunController controller;
        QSignalSpy failed(&controller, &RunController::failed);
        QSignalSpy finished(&controller, &RunController::runFinished);
        RunRequest bad = demo_request(64);
        bad.model_dir = model;
        controller.startRun(bad);
        QVERIFY(failed.wait(60000));
        const QString message = failed.takeFirst().at(0).toString();
        QVERIFY2(message.contains("config.json"), qPrintable(message));
        QVERIFY(!message.contains('\n'));

        // A bad safetensors header names that file.
        std::filesystem::copy(require_demo_model(), model,
                              std::filesystem::copy_options::overwrite_existing |
                                  std::filesystem::copy_options::recursive);
        write_file(model / "model.safetensors",
                   std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{", 9));
        controller.startRun(bad);
        QVERIFY(failed.wait(60000));
        const QString second = failed.takeFirst().at(0).toString();
        QVERIFY2(second.contains("model.safetensors"), qPrintable(second));

        controller.startRun(demo_request(64));
        QVERIFY(finished.wait(120000));
        QCOMPARE(finished.takeFirst().at(0).value<ProfilePtr>()->num_tokens(), 64);
    }

    // A tls:// engine's certificate authority is read before any connection: a file that is
    // no PEM certificate, or one given for another scheme, is one line naming the file.
    void engineCertificateAuthorityIsChecked() {
        QTemporaryDir dir;
        const QString text = dir.filePath("ca.txt");
        write_file(text.toStdString(), "not a certificate\n");
        RunController controller;
        QSignalSpy failed(&controller, &RunController::failed);
        QSignalSpy changed(&controller, &RunController::engineChanged);
        controller.connectEngine({"tls://127.0.0.1:1", {}, text});
        QVERIFY(failed.wait(30000));
        QString message = failed.takeFirst().at(0).toString();
        QVERIFY2(message.startsWith(text + ": not a PEM certificate"), qPrintable(message));
        controller.connectEngine({"tcp://127.0.0.1:1", {}, text});
        QVERIFY(failed.wait(30000));
        message = failed.takeFirst().at(0).toString();
        QVERIFY2(message.startsWith(text + ": a certificate authority is for tls:// engines only"),
                 qPrintable(message));
        QVERIFY(!message.contains('\n'));
        QCOMPARE(changed.size(), 0);
    }

    void whatIfPrunesALayerAndNoChangeIsExactlyZero() {
        RunController controller;
        QSignalSpy finished(&controller, &RunController::runFinished);
        QSignalSpy whatif(&controller, &RunController::whatIfFinished);
        QSignalSpy failed(&controller, &RunController::failed);

        // Before any base run: a clean error.
        controller.startWhatIf(RunOptions{});
        QVERIFY(failed.wait(30000));
        QVERIFY(failed.takeFirst().at(0).toString().contains("no base run"));

        controller.startRun(demo_request(192));
        QVERIFY(finished.wait(120000));
        const auto base = finished.takeFirst().at(0).value<ProfilePtr>();

        controller.startWhatIf(base->options);  // nothing changed
        QVERIFY(whatif.wait(60000));
        auto same = whatif.takeFirst().at(1).value<ComparisonPtr>();
        QVERIFY(same);
        QCOMPARE(same->delta_mean_nll, 0.0);
        QCOMPARE(same->kl_max, 0.0);

        RunOptions pruned = base->options;
        const int last = static_cast<int>(base->num_layers - 1);
        pruned.prune = {last};
        controller.startWhatIf(pruned);
        QVERIFY(whatif.wait(60000));
        const QList<QVariant> result = whatif.takeFirst();
        const auto variant = result.at(0).value<ProfilePtr>();
        const auto comparison = result.at(1).value<ComparisonPtr>();
        QCOMPARE(comparison->start_layer, last);
        QVERIFY(comparison->delta_mean_nll != 0.0);
        QVERIFY(comparison->variant_kv_bytes < comparison->base_kv_bytes);
        QVERIFY(variant->options.prune == pruned.prune);
        QCOMPARE(variant->metrics.global_fraction[static_cast<std::size_t>(last)], 0.0);
        // Layers below the pruned one are the base's.
        QVERIFY(std::equal(base->decisions.begin(), base->decisions.begin() + last * 192,
                           variant->decisions.begin()));
    }

    // The lens of a token after a run: each head's weights and their mean sum to 1 over the
    // keys up to the token, and the decision and logit are the profile's. A newer request
    // replaces a queued one.
    void explainTokenAfterARun() {
        RunController controller;
        QSignalSpy finished(&controller, &RunController::runFinished);
        QSignalSpy explained(&controller, &RunController::explained);
        QSignalSpy failed(&controller, &RunController::failed);

        controller.explainToken(3, 0);  // no base yet
        QVERIFY(failed.wait(30000));
        QVERIFY(failed.takeFirst().at(0).toString().contains("no base run"));

        constexpr std::int64_t T = 300;
        controller.startRun(demo_request(T));
        QVERIFY(finished.wait(120000));
        const auto base = finished.takeFirst().at(0).value<ProfilePtr>();
        const int layer = static_cast<int>(base->num_layers / 2);
        const std::int64_t token = T - 7;
        controller.explainToken(token, layer);
        QVERIFY(explained.wait(60000));
        const auto e = explained.takeFirst().at(0).value<ExplanationPtr>();
        QVERIFY(e);
        QCOMPARE(e->lens.token, token);
        QCOMPARE(e->lens.layer, layer);
        QCOMPARE(e->lens.mean_weights.size(), static_cast<std::size_t>(token + 1));
        QCOMPARE(e->lens.weights.size(), static_cast<std::size_t>(e->lens.heads * (token + 1)));
        double mean_sum = 0.0;
        for (float w : e->lens.mean_weights) mean_sum += w;
        QVERIFY2(std::abs(mean_sum - 1.0) < 1e-4, qPrintable(QString::number(mean_sum)));
        for (std::int64_t h = 0; h < e->lens.heads; ++h) {
            double sum = 0.0;
            for (std::int64_t k = 0; k <= token; ++k) {
                sum += e->lens.weights[static_cast<std::size_t>(h * (token + 1) + k)];
            }
            QVERIFY2(std::abs(sum - 1.0) < 1e-4,
                     qPrintable(QString("head %1: %2").arg(h).arg(sum)));
        }
        const auto at = static_cast<std::size_t>(layer * T + token);
        QCOMPARE(e->decision, base->decisions[at] != 0);
        QCOMPARE(e->router_logit, base->router_logits[at]);

        // Three requests at once: the first may run, the last one always does, the middle one
        // is replaced while queued.
        controller.explainToken(10, 0);
        controller.explainToken(11, 0);
        controller.explainToken(12, 1);
        QTRY_VERIFY_WITH_TIMEOUT(!controller.busy(), 60000);
        QVERIFY(explained.size() >= 1 && explained.size() <= 2);
        const auto last = explained.last().at(0).value<ExplanationPtr>();
        QCOMPARE(last->lens.token, std::int64_t{12});
        QCOMPARE(last->lens.layer, 1);
        for (const QList<QVariant>& args : explained) {
            QVERIFY(args.at(0).value<ExplanationPtr>()->lens.token != 11);
        }

        // A token out of range is one line naming it.
        controller.explainToken(T + 5, 0);
        QVERIFY(failed.wait(30000));
        const QString message = failed.takeFirst().at(0).toString();
        QVERIFY2(message.contains("token " + QString::number(T + 5)), qPrintable(message));
    }

    // The oracle: the base's profile with a distant mass per token and layer, in [0, 1], 0 for
    // the tokens whose window holds every key; the base's decisions unchanged.
    void oracleAddsDistantMasses() {
        RunController controller;
        QSignalSpy finished(&controller, &RunController::runFinished);
        QSignalSpy oracle(&controller, &RunController::oracleFinished);
        // Past the demo model's window of 256, so that some keys are older than it.
        constexpr std::size_t T = 400;
        controller.startRun(demo_request(T));
        QVERIFY(finished.wait(120000));
        const auto base = finished.takeFirst().at(0).value<ProfilePtr>();
        QVERIFY(base->distant_mass.empty());
        const auto W = static_cast<std::size_t>(base->model.sliding_window);
        QVERIFY(W > 0 && W < T);
        controller.runOracle(0.4);
        QVERIFY(oracle.wait(120000));
        const auto scored = oracle.takeFirst().at(0).value<ProfilePtr>();
        QVERIFY(scored);
        const std::size_t L = static_cast<std::size_t>(base->num_layers);
        QCOMPARE(scored->distant_mass.size(), L * T);
        QCOMPARE(scored->oracle_min_mass, 0.4);
        QVERIFY(scored->decisions == base->decisions);
        QVERIFY(scored->token_ids == base->token_ids);
        bool some_distant = false;
        for (std::size_t i = 0; i < scored->distant_mass.size(); ++i) {
            const float m = scored->distant_mass[i];
            QVERIFY(m >= 0.0f && m <= 1.0f + 1e-5f);
            if (i % T < W) QCOMPARE(m, 0.0f);  // the window holds every key
            some_distant = some_distant || m > 0.0f;
        }
        QVERIFY(some_distant);
    }

    void latestWhatIfWins() {
        RunController controller;
        QSignalSpy finished(&controller, &RunController::runFinished);
        QSignalSpy whatif(&controller, &RunController::whatIfFinished);
        controller.startRun(demo_request(192));
        QVERIFY(finished.wait(120000));
        const auto base = finished.takeFirst().at(0).value<ProfilePtr>();
        for (int layer = 0; layer < base->num_layers; ++layer) {
            RunOptions o = base->options;
            o.prune = {layer};
            controller.startWhatIf(o);
        }
        QTRY_VERIFY_WITH_TIMEOUT(!controller.busy(), 120000);
        QVERIFY(whatif.size() >= 1);
        const auto last = whatif.last().at(0).value<ProfilePtr>();
        QVERIFY(last->options.prune == PruningPlan{static_cast<int>(base->num_layers - 1)});
        QVERIFY(whatif.size() < base->num_layers || base->num_layers == 1);
    }
};

QTEST_GUILESS_MAIN(RunControllerTest)
#include "test_core_run_controller.moc"
