// The studio as a user meets it: it starts with the default and completes a run of the whole
// demo document (the loss `l2a run --demo` reports) with its summary shown, a cut run says so
// and runs whole in one click, the views share one selection, a prune box triggers a live
// what-if, every export format is written, a run can be cancelled (the title still names what
// is shown), progress never goes back, the layout gives every view room at 1280x720 and
// 1920x1080, and a corrupt model folder is an error dialog after which the app still works.
#include <QAbstractItemModel>
#include <QApplication>
#include <QComboBox>
#include <QContextMenuEvent>
#include <QDialog>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QFileInfo>
#include <QFrame>
#include <QHeaderView>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QScrollBar>
#include <QSet>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStatusBar>
#include <QTableView>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QTextDocument>
#include <QTimer>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/profiler/remote.h"
#include "l2a/profiler/report_pdf.h"
#include "l2a/ui/document_view.h"
#include "l2a/ui/layers_view.h"
#include "l2a/ui/lens_view.h"
#include "l2a/ui/main_window.h"
#include "l2a/ui/routing_map_view.h"
#include "l2a/ui/run_controller.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/summary_view.h"
#include "l2a/ui/timeline_view.h"
#include "l2a/ui/units.h"
#include "l2a/ui/view_benchmark.h"
#include "l2a/ui/whatif_view.h"

using namespace l2a;
using namespace l2a::ui;

namespace {

constexpr int kRunTimeoutMs = 120000;

// Closes the next message box that opens and keeps its text.
class MessageBoxCatcher : public QObject {
public:
    MessageBoxCatcher() {
        timer_.setInterval(50);
        connect(&timer_, &QTimer::timeout, this, [this] {
            if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget())) {
                text = box->text();
                box->done(QMessageBox::Ok);
                timer_.stop();
            }
        });
        timer_.start();
    }
    QString text;

private:
    QTimer timer_;
};

bool gl_available(RoutingMapView* map) { return map->isValid() && map->context(); }

// Distinct colours in a grid of samples over `area` of `image`: a blank or unpainted region
// (a GL view that was not composited grabs as black or as one background colour) has one or two.
int distinct_colours(const QImage& image, const QRect& area) {
    QSet<QRgb> colours;
    for (int y = area.top(); y < area.bottom(); y += 3) {
        for (int x = area.left(); x < area.right(); x += 3) colours.insert(image.pixel(x, y));
    }
    return static_cast<int>(colours.size());
}

// The test's own grouping, independent of l2a::group_digits.
QString with_commas(qint64 n) {
    QString digits = QString::number(n);
    for (qsizetype i = digits.size() - 3; i > 0; i -= 3) digits.insert(i, ',');
    return digits;
}

// Every column of `table` ends inside its viewport: none needs a sideways scroll.
void expect_columns_inside(QTableView* table, const char* what) {
    QHeaderView* header = table->horizontalHeader();
    for (int c = 0; c < header->count(); ++c) {
        const int right = header->sectionViewportPosition(c) + header->sectionSize(c);
        QVERIFY2(right <= table->viewport()->width(),
                 qPrintable(QString("%1: column %2 ends at %3 of %4 px")
                                .arg(what)
                                .arg(c)
                                .arg(right)
                                .arg(table->viewport()->width())));
    }
}

template <typename W>
W* child(QWidget* window, const char* name) {
    W* w = window->findChild<W*>(name);
    if (!w) qFatal("no child %s", name);
    return w;
}

// Everything the status bar's labels say, joined.
QString status_text(QMainWindow* window) {
    QStringList texts;
    for (QLabel* label : window->statusBar()->findChildren<QLabel*>()) texts << label->text();
    return texts.join(" | ");
}

// `base` with `layer` pruned: its global share 0 there.
ProfilePtr pruned_variant(const Profile& base, int layer) {
    auto variant = std::make_shared<Profile>(base);
    variant->options.prune = {layer};
    variant->metrics.global_fraction.at(static_cast<std::size_t>(layer)) = 0.0;
    return variant;
}

// `base` with a distant mass for every token and layer (as the routing oracle adds them): high
// where the token was routed, so that each layer's scores are defined.
ProfilePtr with_distant_masses(const Profile& base) {
    auto p = std::make_shared<Profile>(base);
    p->distant_mass.resize(p->decisions.size());
    for (std::size_t i = 0; i < p->decisions.size(); ++i) {
        p->distant_mass[i] = p->decisions[i] ? 0.7f : 0.1f + 0.5f * static_cast<float>(i % 2);
    }
    return p;
}

QAction* action(QWidget* window, const char* name) {
    auto* a = window->findChild<QAction*>(name);
    if (!a) qFatal("no action %s", name);
    return a;
}

// A comparison of `base` with layer `layer` pruned whose texts are as long as those of the
// demo's what-if (the layout is what the tests check, not these numbers).
ComparisonPtr demo_like_comparison(const Profile& base, int layer) {
    auto c = std::make_shared<WhatIfComparison>();
    c->num_tokens = base.num_tokens();
    c->start_layer = layer;
    c->base_mean_nll = base.metrics.mean_nll;
    c->variant_mean_nll = base.metrics.mean_nll + 0.0036;
    c->delta_mean_nll = 0.0036;
    c->base_perplexity = base.metrics.perplexity;
    c->variant_perplexity = base.metrics.perplexity + 0.006;
    c->delta_perplexity = 0.006;
    c->kl_mean = 0.00345;
    c->kl_max = 2.11049;
    c->kl_max_token = base.num_tokens() / 4;
    c->top1_agreement = 0.9867;
    c->base_kv_bytes = 26'015'000;
    c->variant_kv_bytes = 21'810'000;
    c->kv_bytes_without_l2a = 25'230'000;
    c->base_kv_relative = 1.031;
    c->variant_kv_relative = 0.864;
    c->base_global_fraction = base.metrics.global_fraction;
    c->variant_global_fraction = pruned_variant(base, layer)->metrics.global_fraction;
    c->base_ttft_predicted = 3.299;
    c->variant_ttft_predicted = 3.226;
    return c;
}

}  // namespace

class StudioTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        QApplication::setOrganizationName("L2A Studio tests");
        QApplication::setApplicationName("l2a-studio-test");
        // A fresh start, except for the max-tokens limit an earlier version saved by default:
        // it must not cut the run.
        QSettings().clear();
        QSettings().setValue("run/max_tokens", 4096);
        window_ = std::make_unique<MainWindow>(StudioOptions{});
        window_->resize(1400, 900);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
        // The first start runs the default (demo model, demo document) at once.
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->base() != nullptr, kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
    }

    void defaultRunFillsTheViews() {
        const ProfilePtr& p = window_->session()->base();
        QVERIFY(p->num_tokens() > 100);
        QCOMPARE(p->document_path, std::string("<demo document>"));
        QVERIFY2(window_->windowTitle().contains("demo document") &&
                     window_->windowTitle().contains("demo model"),
                 qPrintable(window_->windowTitle()));
        QCOMPARE(window_->layersView()->model()->rowCount(), static_cast<int>(p->num_layers));
        RoutingMapView* map = window_->routingMapView();
        map->update();
        QTest::qWait(100);
        if (!gl_available(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        map->repaint();
        QTRY_VERIFY(!map->textureSize().isEmpty());
        QCOMPARE(map->textureSize(),
                 QSize(static_cast<int>(p->num_tokens()), static_cast<int>(p->num_layers)));
        const long long routed = std::count(p->decisions.begin(), p->decisions.end(), 1);
        QVERIFY(routed > 0);
        QCOMPARE(map->routedTexelsOnGpu(), routed);
        QVERIFY(window_->timelineView()->laneCount() >= 1 || !window_->timelineView()->isVisible());
    }

    // The whole demo document ran (an old saved limit of 4096 was dropped), the same tokens
    // and the same loss as the engine's run of the demo, which is what `l2a run --demo` does.
    void defaultRunIsTheWholeDemoDocument() {
        const ProfilePtr p = window_->session()->base();
        QVERIFY(!QSettings().contains("run/max_tokens"));
        QCOMPARE(child<QSpinBox>(window_.get(), "maxTokens")->value(), 0);
        QCOMPARE(p->num_tokens(), p->tokens_before_truncation);
        QVERIFY(!child<QFrame>(window_.get(), "runNotice")->isVisible());
        const Model model = Model::load(require_demo_model());
        TokenizedDocument doc =
            tokenize_document("<demo document>", demo_document(), 0, *model.tokenizer());
        QVERIFY(doc.ids.size() > 4096);
        QCOMPARE(p->num_tokens(), static_cast<qint64>(doc.ids.size()));
        QVERIFY(p->token_ids == doc.ids);
        const RunOptions options;
        PrefillResult result = run_prefill(model, doc.ids, options);
        const Profile reference = make_profile(model, std::move(doc), options, std::move(result));
        QVERIFY2(std::abs(reference.metrics.mean_nll - p->metrics.mean_nll) < 1e-4,
                 qPrintable(QString("app %1, engine %2")
                                .arg(p->metrics.mean_nll, 0, 'f', 6)
                                .arg(reference.metrics.mean_nll, 0, 'f', 6)));
    }

    // After the default run, without any what-if: every row of the run summary, from the
    // profile's own numbers; no empty what-if comparison.
    void summaryShownAfterTheDefaultRun() {
        const ProfilePtr p = window_->session()->base();
        auto* summary = child<SummaryView>(window_.get(), "runSummary");
        QVERIFY(summary->isVisible());
        auto shown = [&](const char* row) { return summary->shownValue(row); };
        const QString tokens = with_commas(p->num_tokens());
        QVERIFY2(shown("document") == "demo document, " + tokens + " of " + tokens + " tokens",
                 qPrintable(shown("document")));
        QVERIFY2(shown("model").startsWith("demo model, 6 layers, "), qPrintable(shown("model")));
        QVERIFY2(shown("placement").startsWith("cpu · reference · fp32 · ") &&
                     shown("placement").contains("thread"),
                 qPrintable(shown("placement")));
        QCOMPARE(shown("loss"), QString::number(p->metrics.mean_nll, 'f', 4) + " nats/token");
        QCOMPARE(shown("perplexity"), QString::number(p->metrics.perplexity, 'f', 3));
        QVERIFY2(shown("global").startsWith(
                     QString::number(100.0 * p->metrics.global_fraction_overall, 'f', 1) + "%"),
                 qPrintable(shown("global")));
        // KV memory with and without L2A: a little more with it (global K/V of every token
        // plus the window), and the line that says why.
        const double relative = static_cast<double>(p->metrics.kv_bytes_total) /
                                static_cast<double>(p->metrics.kv_bytes_without_l2a);
        QVERIFY(relative > 1.0 && relative < 1.1);
        QCOMPARE(shown("kv"), byte_size_text(p->metrics.kv_bytes_total, 2) + ", " +
                                  QString::number(100.0 * relative, 'f', 1) + "% of without L2A");
        QCOMPARE(shown("kv_base"), byte_size_text(p->metrics.kv_bytes_without_l2a, 2));
        auto* note = child<QLabel>(window_.get(), "summary_kv_note");
        QVERIFY(note->isVisible());
        QVERIFY2(note->text().contains("Pruning layers is what saves"), qPrintable(note->text()));
        QVERIFY2(note->text().startsWith("Counted in bf16"), qPrintable(note->text()));
        QVERIFY2(shown("time").contains("wall time") && shown("time").contains("per-token loss"),
                 qPrintable(shown("time")));
        // Nothing to compare yet: the what-if's comparison is hidden, not a column of blanks.
        QVERIFY(!child<QWidget>(window_->whatIfView(), "comparison")->isVisible());
    }

    // A run cut by the max-tokens option says so over the map, and one click runs it whole.
    void cutRunShowsANoticeAndRunsWhole() {
        auto* max_tokens = child<QSpinBox>(window_.get(), "maxTokens");
        max_tokens->setValue(1000);
        QSignalSpy finished(window_->controller(), &RunController::runFinished);
        window_->runNow();
        QVERIFY(finished.wait(kRunTimeoutMs));
        const ProfilePtr cut = window_->session()->base();
        QCOMPARE(cut->num_tokens(), qint64(1000));
        QVERIFY(cut->tokens_before_truncation > 1000);
        auto* notice = child<QFrame>(window_.get(), "runNotice");
        QTRY_VERIFY(notice->isVisible());
        const QString text = child<QLabel>(window_.get(), "runNoticeText")->text();
        QVERIFY2(text.contains("first 1,000 of the " + with_commas(cut->tokens_before_truncation) +
                               " tokens") &&
                     text.contains("max tokens"),
                 qPrintable(text));
        QVERIFY(child<SummaryView>(window_.get(), "runSummary")
                    ->shownValue("document")
                    .contains("cut by max tokens"));
        auto* whole = child<QPushButton>(window_.get(), "runWholeDocument");
        QVERIFY(whole->isVisible());
        QTest::mouseClick(whole, Qt::LeftButton);
        QVERIFY(finished.wait(kRunTimeoutMs));
        const ProfilePtr p = window_->session()->base();
        QCOMPARE(p->num_tokens(), cut->tokens_before_truncation);
        QCOMPARE(p->tokens_before_truncation, p->num_tokens());
        QVERIFY(!notice->isVisible());
        QCOMPARE(max_tokens->value(), 0);
    }

    void selectionIsSharedByTheViews() {
        Selection* selection = window_->selection();
        selection->clear();
        RoutingMapView* map = window_->routingMapView();
        if (!gl_available(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        // A click in the middle of the routing map selects a token and a layer there.
        const QPoint centre(map->width() / 2, map->height() / 2);
        QTest::mouseMove(map, centre);
        QTest::mousePress(map, Qt::LeftButton, {}, centre);
        QTest::mouseRelease(map, Qt::LeftButton, {}, centre);
        QTRY_VERIFY(selection->token() >= 0);
        QVERIFY(selection->layer() >= 0);
        // The document shows it, the layer table follows.
        QTRY_VERIFY(!window_->documentView()->selectedTokenRect().isEmpty());
        QCOMPARE(window_->layersView()->table()->currentIndex().row(), selection->layer());
        // And back: choosing a row in the layer table selects that layer everywhere.
        const int row = (selection->layer() + 1) % window_->layersView()->model()->rowCount();
        window_->layersView()->table()->selectRow(row);
        QCOMPARE(selection->layer(), row);
    }

    void pruneBoxRunsALiveWhatIf() {
        const ProfilePtr base = window_->session()->base();
        QAbstractItemModel* model = window_->layersView()->model();
        const int last = model->rowCount() - 1;
        QSignalSpy finished(window_->controller(), &RunController::whatIfFinished);
        QVERIFY(
            model->setData(model->index(last, LayersView::Prune), Qt::Checked, Qt::CheckStateRole));
        QVERIFY(finished.wait(kRunTimeoutMs));
        QTRY_VERIFY(window_->session()->variant() != nullptr);
        const QString dnll = window_->whatIfView()->shownValue("delta_nll");
        QVERIFY2(!dnll.isEmpty(), "no Δ NLL shown");
        QVERIFY(!window_->whatIfView()->shownValue("kv_saved").isEmpty());
        QVERIFY(window_->whatIfView()->shownValue("kv_saved") != "0 B");
        QVERIFY(window_->session()->comparison()->delta_mean_nll != 0.0);
        // Un-pruning returns to the base: the variant goes away.
        QVERIFY(model->setData(model->index(last, LayersView::Prune), Qt::Unchecked,
                               Qt::CheckStateRole));
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->variant() == nullptr, 5000);
        QVERIFY(window_->session()->base() == base);
    }

    // File > Connect to Engine: runs, what-ifs and the status bar go through a remote engine
    // (an `l2a serve` in this process on loopback); back on this computer afterwards.
    void remoteEngineRunsPrunesAndDisconnects() {
        if (!l2a::remote_engine_built()) QSKIP("this build has no remote engine");
        l2a::ServeOptions options;
        options.listen = "127.0.0.1:0";
        l2a::StudyServer server(options);
        const QString url = QString("tcp://127.0.0.1:%1").arg(server.port());
        QSignalSpy finished(window_->controller(), &RunController::runFinished);
        window_->connectEngine(url, {});
        QTRY_VERIFY_WITH_TIMEOUT(window_->engineStatus().startsWith("Engine: " + url + ": cpu"),
                                 kRunTimeoutMs);
        window_->runNow();
        QVERIFY(finished.wait(kRunTimeoutMs));
        const ProfilePtr base = window_->session()->base();
        QVERIFY(base && base->num_tokens() > 0);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);

        QAbstractItemModel* model = window_->layersView()->model();
        const int last = model->rowCount() - 1;
        QSignalSpy whatif(window_->controller(), &RunController::whatIfFinished);
        QVERIFY(
            model->setData(model->index(last, LayersView::Prune), Qt::Checked, Qt::CheckStateRole));
        QVERIFY(whatif.wait(kRunTimeoutMs));
        QTRY_VERIFY(window_->session()->variant() != nullptr);
        QCOMPARE(window_->session()->comparison()->start_layer, last);
        QVERIFY(model->setData(model->index(last, LayersView::Prune), Qt::Unchecked,
                               Qt::CheckStateRole));
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->variant() == nullptr, 5000);

        window_->connectEngine({}, {});
        QTRY_VERIFY_WITH_TIMEOUT(window_->engineStatus() == "Engine: this computer (cpu)",
                                 kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
    }

    // File > Connect to Engine: the certificate authority row is for tls:// only; what the dialog
    // gives reaches the controller, whose one-line error names a CA file that is no PEM.
    void connectDialogTakesACertificateAuthorityForTls() {
        QTemporaryDir dir;
        const QString ca_file = dir.filePath("ca.txt");
        {
            QFile f(ca_file);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("not a certificate\n");
        }
        QStringList seen;
        QTimer poll;
        poll.setInterval(50);
        connect(&poll, &QTimer::timeout, this, [&] {
            auto* dialog = qobject_cast<QDialog*>(QApplication::activeModalWidget());
            if (!dialog || dialog->windowTitle() != "Connect to Engine") return;
            poll.stop();
            auto* url = dialog->findChild<QComboBox*>("engineUrl");
            auto* ca = dialog->findChild<QLineEdit*>("engineTlsCa");
            if (!url || !ca) {
                seen << "missing widgets";
                dialog->reject();
                return;
            }
            url->setEditText("tcp://127.0.0.1:1");
            seen << QString("tcp enabled=%1").arg(ca->isEnabled());
            url->setEditText("tls://127.0.0.1:1");
            seen << QString("tls enabled=%1").arg(ca->isEnabled());
            ca->setText(ca_file);
            const QString shot = qEnvironmentVariable("L2A_DIALOG_SCREENSHOT");
            if (!shot.isEmpty()) dialog->grab().save(shot);
            dialog->accept();
        });
        poll.start();
        // Should the dialog not be found, close whatever is modal so that the test fails rather
        // than waits (a timer of this test's own: it never fires into a later one).
        QTimer give_up;
        give_up.setSingleShot(true);
        connect(&give_up, &QTimer::timeout, this, [] {
            if (auto* modal = qobject_cast<QDialog*>(QApplication::activeModalWidget())) {
                modal->reject();
            }
        });
        give_up.start(20000);
        window_->connectEngineDialog();
        give_up.stop();
        QCOMPARE(seen, (QStringList{"tcp enabled=0", "tls enabled=1"}));
        MessageBoxCatcher failure;
        QTRY_VERIFY_WITH_TIMEOUT(!failure.text.isEmpty(), 30000);
        QVERIFY2(failure.text.startsWith(ca_file + ": not a PEM certificate"),
                 qPrintable(failure.text));
        // Remembered for that engine, as its token file is.
        QCOMPARE(QSettings().value("engines/tls_ca_file/tls:||127.0.0.1:1").toString(), ca_file);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);

        // A TLS server whose self-signed certificate the app is told to trust: connected.
        if (!l2a::remote_engine_built()) QSKIP("this build has no remote engine");
        const QString cert = dir.filePath("cert.pem");
        const QString key = dir.filePath("key.pem");
        const QString make =
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
            "-addext subjectAltName=DNS:localhost -keyout '" +
            key + "' -out '" + cert + "' >/dev/null 2>&1";
        if (std::system(make.toUtf8().constData()) != 0) {
            QSKIP("openssl could not make a certificate");
        }
        l2a::ServeOptions options;
        options.listen = "127.0.0.1:0";
        options.tls_cert_pem = l2a::read_pem_file(cert.toStdString(), "CERTIFICATE", "a cert");
        options.tls_key_pem = l2a::read_pem_file(key.toStdString(), "PRIVATE KEY", "a key");
        l2a::StudyServer server(options);
        const QString url = QString("tls://localhost:%1").arg(server.port());
        window_->connectEngine(url, {}, cert);
        QTRY_VERIFY_WITH_TIMEOUT(window_->engineStatus().startsWith("Engine: " + url + ": cpu"),
                                 kRunTimeoutMs);
        window_->connectEngine({}, {});
        QTRY_VERIFY_WITH_TIMEOUT(window_->engineStatus() == "Engine: this computer (cpu)",
                                 kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
    }

    // TTFT: the prediction shows with the what-if and says it is one; a measurement happens
    // only on request, as full runs of both base and variant, and shows their medians.
    void measureTtftOnRequest() {
        QAbstractItemModel* model = window_->layersView()->model();
        const int last = model->rowCount() - 1;
        QSignalSpy finished(window_->controller(), &RunController::whatIfFinished);
        QVERIFY(
            model->setData(model->index(last, LayersView::Prune), Qt::Checked, Qt::CheckStateRole));
        QVERIFY(finished.wait(kRunTimeoutMs));
        QTRY_VERIFY(window_->session()->variant() != nullptr);
        WhatIfView* whatif = window_->whatIfView();
        QVERIFY2(whatif->shownValue("ttft_predicted").endsWith("predicted"),
                 qPrintable(whatif->shownValue("ttft_predicted")));
        QCOMPARE(whatif->shownValue("ttft_measured"), QString("not measured"));
        QVERIFY(!window_->session()->comparison()->base_ttft.measured());
        auto* repeats = child<QSpinBox>(whatif, "ttftRepeats");
        repeats->setValue(2);
        QSignalSpy measured(window_->controller(), &RunController::ttftMeasured);
        QTest::mouseClick(child<QPushButton>(whatif, "measureTtft"), Qt::LeftButton);
        QVERIFY(measured.wait(kRunTimeoutMs));
        QTRY_VERIFY(window_->session()->comparison()->base_ttft.measured());
        const ComparisonPtr c = window_->session()->comparison();
        QCOMPARE(c->base_ttft.samples.size(), std::size_t(2));
        QCOMPARE(c->variant_ttft.samples.size(), std::size_t(2));
        QVERIFY(c->base_ttft.min > 0 && c->base_ttft.min <= c->base_ttft.median &&
                c->base_ttft.median <= c->base_ttft.max);
        QVERIFY2(whatif->shownValue("ttft_measured").contains("median of 2 runs each"),
                 qPrintable(whatif->shownValue("ttft_measured")));
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
        QVERIFY(model->setData(model->index(last, LayersView::Prune), Qt::Unchecked,
                               Qt::CheckStateRole));
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->variant() == nullptr, 5000);
    }

    void exportWritesEveryFormat() {
        QTemporaryDir dir;
        const QStringList formats = {"html", "json", "csv", "chrome", "pdf"};
        for (const QString& format : formats) {
            if (format == "pdf" && !pdf_export_available()) continue;
            const QString path =
                dir.filePath("report." + (format == "chrome" ? QString("trace.json") : format));
            QVERIFY2(window_->exportTo(format, path), qPrintable(format));
            const QString written = format == "csv" ? dir.filePath("report.layers.csv") : path;
            QFile file(written);
            QVERIFY2(file.open(QIODevice::ReadOnly), qPrintable(written));
            const QByteArray head = file.read(16);
            QVERIFY2(file.size() > 100, qPrintable(written));
            if (format == "html") QVERIFY(head.startsWith("<!DOCTYPE html>"));
            if (format == "pdf") QVERIFY(head.startsWith("%PDF-"));
            if (format == "json" || format == "chrome") QVERIFY(head.startsWith("{"));
            if (format == "csv") {
                QVERIFY(QFile::exists(dir.filePath("report.tokens.csv")));
                QVERIFY(QFile::exists(dir.filePath("report.routing.csv")));
            }
        }
        // A folder that does not exist: a dialog names the file, nothing is written.
        MessageBoxCatcher catcher;
        QVERIFY(!window_->exportTo("html", dir.filePath("missing/report.html")));
        QTRY_VERIFY(!catcher.text.isEmpty());
        QVERIFY2(catcher.text.contains("report.html"), qPrintable(catcher.text));
    }

    void cancelStopsARun() {
        // Later runs use this document too, so it lives as long as the test case.
        const QString doc = documents_.filePath("long.txt");
        {
            std::ofstream out(doc.toStdString());
            for (int i = 0; i < 6; ++i) out << demo_document(6000);
        }
        QSignalSpy cancelled(window_->controller(), &RunController::cancelled);
        QSignalSpy progress(window_->controller(), &RunController::progress);
        const ProfilePtr before = window_->session()->base();
        const QString title = window_->windowTitle();
        QVERIFY2(title.contains("demo document"), qPrintable(title));
        window_->openDocument(doc);  // starts a run
        // The status bar says at once what is starting; the title still names what is shown.
        QVERIFY2(status_text(window_.get()).contains("long.txt"),
                 qPrintable(status_text(window_.get())));
        QCOMPARE(window_->windowTitle(), title);
        QTRY_VERIFY_WITH_TIMEOUT(progress.size() > 0, kRunTimeoutMs);
        window_->cancelRun();  // what Esc and the status bar's Cancel button do
        QVERIFY(cancelled.wait(5000));
        QTRY_VERIFY(!window_->controller()->busy());
        QVERIFY(window_->session()->base() == before);  // the shown run is untouched
        // After the cancel the title names the document still shown, not the cancelled one.
        QCOMPARE(window_->windowTitle(), title);
        QVERIFY(!window_->windowTitle().contains("long.txt"));
        QVERIFY2(status_text(window_.get()).contains("Cancelled"),
                 qPrintable(status_text(window_.get())));
    }

    // A model whose context is shorter than the document: the whole-document default stops at
    // the context and says so; "Run the whole document" runs past it with a warning, as the
    // command line warns.
    void contextCutIsSaidAndPastTheContextWarns() {
        QTemporaryDir dir;
        const std::filesystem::path demo = require_demo_model();
        const std::filesystem::path model = dir.filePath("short-context").toStdString();
        std::filesystem::create_directories(model);
        for (const char* name : {"model.safetensors", "tokenizer.json"}) {
            std::filesystem::copy_file(demo / name, model / name);
        }
        QFile config(QString::fromStdString((demo / "config.json").string()));
        QVERIFY(config.open(QIODevice::ReadOnly));
        QByteArray text = config.readAll();
        QVERIFY(text.contains("\"max_position_embeddings\": 16384"));
        text.replace("\"max_position_embeddings\": 16384", "\"max_position_embeddings\": 2048");
        QFile out(QString::fromStdString((model / "config.json").string()));
        QVERIFY(out.open(QIODevice::WriteOnly));
        out.write(text);
        out.close();

        QSignalSpy finished(window_->controller(), &RunController::runFinished);
        window_->openModelFolder(QString::fromStdString(model.string()));
        QVERIFY(finished.wait(kRunTimeoutMs));
        const ProfilePtr cut = window_->session()->base();
        QCOMPARE(cut->num_tokens(), qint64(2048));
        QVERIFY(cut->tokens_before_truncation > 2048);
        auto* notice = child<QFrame>(window_.get(), "runNotice");
        auto* label = child<QLabel>(window_.get(), "runNoticeText");
        QTRY_VERIFY(notice->isVisible());
        QVERIFY2(label->text().contains("context is 2,048 tokens"), qPrintable(label->text()));
        QTest::mouseClick(child<QPushButton>(window_.get(), "runWholeDocument"), Qt::LeftButton);
        QVERIFY(finished.wait(kRunTimeoutMs));
        const ProfilePtr whole = window_->session()->base();
        QCOMPARE(whole->num_tokens(), cut->tokens_before_truncation);
        QTRY_VERIFY(notice->isVisible());
        QVERIFY2(label->text().contains("more than the model's max_position_embeddings (2,048)"),
                 qPrintable(label->text()));
        QVERIFY(!child<QPushButton>(window_.get(), "runWholeDocument")->isVisible());
        child<QSpinBox>(window_.get(), "maxTokens")->setValue(0);
    }

    void corruptModelIsAnErrorAndTheAppKeepsWorking() {
        QTemporaryDir dir;
        const std::filesystem::path model = dir.filePath("broken-model").toStdString();
        std::filesystem::create_directories(model);
        std::ofstream(model / "config.json")
            << "{\"model_type\": \"l2a_qwen3\", \"hidden_size\": 64";
        MessageBoxCatcher catcher;
        window_->openModelFolder(QString::fromStdString(model.string()));
        QTRY_VERIFY_WITH_TIMEOUT(!catcher.text.isEmpty(), kRunTimeoutMs);
        QVERIFY2(catcher.text.contains("config.json"), qPrintable(catcher.text));
        QTRY_VERIFY(!window_->controller()->busy());
        // Back to the demo model: a run completes.
        QSignalSpy finished(window_->controller(), &RunController::runFinished);
        window_->openModelFolder(QString::fromStdString(require_demo_model().string()));
        QVERIFY(finished.wait(kRunTimeoutMs));
    }

    void profileRoundTripAndRecentFiles() {
        QTemporaryDir dir;
        const QString path = dir.filePath("run.l2a");
        const qint64 tokens = window_->session()->base()->num_tokens();
        window_->saveProfile(path);
        QVERIFY(QFileInfo(path).size() > 0);
        QCOMPARE(window_->session()->baseFile(), path);
        QCOMPARE(QSettings().value("recent").toStringList().value(0), path);
        window_->openProfile(path);
        QCOMPARE(window_->session()->base()->num_tokens(), tokens);
        QCOMPARE(window_->session()->baseFile(), path);
        // A recent file that has gone: a message names it and it leaves the list.
        QVERIFY(QFile::remove(path));
        QMenu* recent = nullptr;
        for (QMenu* menu : window_->findChildren<QMenu*>()) {
            if (menu->title() == "Recent Files") recent = menu;
        }
        QVERIFY(recent != nullptr);
        QVERIFY(!recent->actions().isEmpty());
        QCOMPARE(recent->actions().first()->text(), path);
        MessageBoxCatcher catcher;
        recent->actions().first()->trigger();
        QTRY_VERIFY(!catcher.text.isEmpty());
        QVERIFY2(catcher.text.contains(path), qPrintable(catcher.text));
        QVERIFY(!QSettings().value("recent").toStringList().contains(path));
        QTRY_VERIFY(recent->actions().isEmpty() || recent->actions().first()->text() != path);
    }

    // A what-if on a profile opened from a file re-runs the base first, then the variant: one
    // progress bar that never goes back, and stages that count layers as the views do.
    void progressCountsLayersFromZeroAndNeverGoesBack() {
        QTemporaryDir dir;
        const QString path = dir.filePath("run.l2a");
        window_->saveProfile(path);
        window_->openProfile(path);
        const qint64 layers = window_->session()->base()->num_layers;
        QSignalSpy progress(window_->controller(), &RunController::progress);
        QSignalSpy finished(window_->controller(), &RunController::whatIfFinished);
        window_->session()->setLayerPruned(static_cast<int>(layers) - 1, true);
        QVERIFY(finished.wait(kRunTimeoutMs));
        QVERIFY(progress.size() >= 3);
        double last = 0.0;
        for (const QList<QVariant>& args : progress) {
            const double fraction = args.at(0).toDouble();
            QVERIFY2(fraction >= last, qPrintable(QString("%1 after %2").arg(fraction).arg(last)));
            last = fraction;
            const QString stage = args.at(1).toString();
            static const QRegularExpression layer(R"(layer (\d+))");
            const auto m = layer.match(stage);
            if (m.hasMatch()) {
                QVERIFY2(m.captured(1).toInt() < layers, qPrintable(stage));
            }
        }
        QVERIFY(last > 0.5);  // both passes are in the one bar
        window_->session()->setLayerPruned(static_cast<int>(layers) - 1, false);
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->variant() == nullptr, 5000);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
    }

    // Explain Token on the selected token: the lens panel comes to the front and lists the
    // tokens its global attention reads most (weights descending, the largest striped fully in
    // the document); clicking one selects it and the document scrolls to it.
    void explainTokenShowsTheLens() {
        const ProfilePtr base = window_->session()->base();
        QAction* explain = action(window_.get(), "explainToken");
        window_->selection()->clear();
        QVERIFY(!explain->isEnabled());
        QVERIFY2(explain->toolTip().contains("Select a token"), qPrintable(explain->toolTip()));
        const qint64 token = base->num_tokens() - 40;
        window_->selection()->setLayer(2);
        window_->selection()->setToken(token);
        QVERIFY(explain->isEnabled());
        QCOMPARE(explain->shortcut(), QKeySequence(Qt::Key_X));
        QSignalSpy explained(window_->controller(), &RunController::explained);
        explain->trigger();
        QVERIFY(explained.wait(kRunTimeoutMs));
        QTRY_VERIFY(window_->session()->explanation() != nullptr);
        const ExplanationPtr e = window_->session()->explanation();
        QCOMPARE(e->lens.token, token);
        QCOMPARE(e->lens.layer, 2);
        LensView* lens = window_->lensView();
        QTRY_VERIFY(lens->isVisible());
        QVERIFY2(lens->shownValue("token").startsWith(QString("Token %1 ").arg(token)),
                 qPrintable(lens->shownValue("token")));
        QVERIFY(lens->shownValue("router").contains(e->decision ? "ran global attention"
                                                                : "local only"));
        QTableWidget* sources = lens->sourcesTable();
        QCOMPARE(sources->rowCount(), 10);
        double previous = 2.0;
        for (int r = 0; r < sources->rowCount(); ++r) {
            const qint64 t = sources->item(r, 0)->data(Qt::UserRole).toLongLong();
            QVERIFY(t >= 0 && t <= token);
            const double w = e->lens.mean_weights[static_cast<std::size_t>(t)];
            QVERIFY(w <= previous);
            previous = w;
            QCOMPARE(sources->item(r, 2)->text(), count_text(token - t));
        }
        const qint64 top = sources->item(0, 0)->data(Qt::UserRole).toLongLong();
        QCOMPARE(window_->documentView()->lensStrength(top), 1.0);
        QCOMPARE(window_->documentView()->lensStrength(token + 1), 0.0);
        QVERIFY(lens->localTable()->rowCount() > 0);
        // A click on the last source selects it; the document shows it.
        const int row = sources->rowCount() - 1;
        const qint64 clicked = sources->item(row, 0)->data(Qt::UserRole).toLongLong();
        const QRect cell = sources->visualItemRect(sources->item(row, 3));
        QTest::mouseClick(sources->viewport(), Qt::LeftButton, {}, cell.center());
        QCOMPARE(window_->selection()->token(), clicked);
        QTRY_VERIFY(!window_->documentView()->selectedTokenRect().isEmpty());
        // A right click on a token selects it and offers Explain Token first.
        window_->selection()->setToken(10);
        QTRY_VERIFY(!window_->documentView()->selectedTokenRect().isEmpty());
        const QRect first = window_->documentView()->selectedTokenRect();
        auto* text = window_->documentView()->findChild<QPlainTextEdit*>();
        QVERIFY(text);
        // A later token on the line of token 10.
        QPoint at = first.center();
        qint64 under = 0;
        while (under <= 10 && at.x() < text->viewport()->width()) {
            at.rx() += 3;
            under = window_->documentView()->tokenAt(at);
        }
        QVERIFY(under > 10);
        QStringList offered;
        QTimer::singleShot(200, this, [&offered] {
            if (auto* menu = qobject_cast<QMenu*>(QApplication::activePopupWidget())) {
                for (QAction* a : menu->actions()) offered << a->text();
                menu->close();
            }
        });
        QContextMenuEvent menu_event(QContextMenuEvent::Mouse, at,
                                     text->viewport()->mapToGlobal(at));
        QApplication::sendEvent(text->viewport(), &menu_event);
        QCOMPARE(window_->selection()->token(), under);
        QVERIFY2(!offered.isEmpty() && offered.first() == explain->text(),
                 qPrintable(offered.join(", ")));
        // A plain model: nothing to explain, and the action says why.
        auto plain = std::make_shared<Profile>(*base);
        plain->model.is_l2a = false;
        StudioOptions options;
        options.run_on_start = false;
        MainWindow other(options);
        other.session()->setBase(plain);
        other.selection()->setToken(5);
        QVERIFY(!action(&other, "explainToken")->isEnabled());
        QVERIFY2(action(&other, "explainToken")->toolTip().contains("plain model"),
                 qPrintable(action(&other, "explainToken")->toolTip()));
        QVERIFY(!action(&other, "routingOracle")->isEnabled());
    }

    // Run > Routing Oracle: the base gains a distant mass per token and layer, the what-if made
    // before it stays, the layer table shows the oracle's columns and the document underlines
    // the tokens the router missed in the selected layer.
    void routingOracleAddsTheLayerColumns() {
        auto* max_tokens = child<QSpinBox>(window_.get(), "maxTokens");
        max_tokens->setValue(600);  // the oracle's extra run on a short run
        QSignalSpy finished(window_->controller(), &RunController::runFinished);
        window_->runNow();
        QVERIFY(finished.wait(kRunTimeoutMs));
        max_tokens->setValue(0);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
        const ProfilePtr base = window_->session()->base();
        QCOMPARE(base->num_tokens(), qint64(600));
        QTableView* table = window_->layersView()->table();
        for (int c : {LayersView::OracleAuc, LayersView::OraclePrecision, LayersView::OracleRecall})
            QVERIFY(table->isColumnHidden(c));
        QSignalSpy whatif(window_->controller(), &RunController::whatIfFinished);
        window_->session()->setLayerPruned(1, true);
        QVERIFY(whatif.wait(kRunTimeoutMs));
        QTRY_VERIFY(window_->session()->variant() != nullptr);
        const ProfilePtr variant = window_->session()->variant();

        QSignalSpy oracle(window_->controller(), &RunController::oracleFinished);
        action(window_.get(), "routingOracle")->trigger();
        QVERIFY(oracle.wait(kRunTimeoutMs));
        const ProfilePtr scored = window_->session()->base();
        const std::size_t L = static_cast<std::size_t>(base->num_layers);
        QCOMPARE(scored->distant_mass.size(), L * 600);
        QVERIFY(scored->decisions == base->decisions);
        QCOMPARE(window_->session()->variant(), variant);
        QVERIFY(window_->session()->whatIfOptions().prune == PruningPlan{1});
        for (int c : {LayersView::OracleAuc, LayersView::OraclePrecision, LayersView::OracleRecall})
            QVERIFY(!table->isColumnHidden(c));
        QAbstractItemModel* model = window_->layersView()->model();
        QCOMPARE(model->headerData(LayersView::OracleAuc, Qt::Horizontal).toString(),
                 QString("AUC"));
        QVERIFY(model->headerData(LayersView::OracleAuc, Qt::Horizontal, Qt::ToolTipRole)
                    .toString()
                    .contains("ROC-AUC"));
        // The AUC shown is the share of (needs, does not need) pairs the logit orders right,
        // counted here pair by pair.
        const int layer = 3;
        const std::size_t T = 600;
        double right = 0.0;
        std::int64_t pairs = 0;
        for (std::size_t a = 0; a < T; ++a) {
            if (scored->distant_mass[layer * T + a] < scored->oracle_min_mass) continue;
            for (std::size_t b = 0; b < T; ++b) {
                if (scored->distant_mass[layer * T + b] >= scored->oracle_min_mass) continue;
                const float za = scored->router_logits[layer * T + a];
                const float zb = scored->router_logits[layer * T + b];
                right += za > zb ? 1.0 : za == zb ? 0.5 : 0.0;
                ++pairs;
            }
        }
        const QString shown = model->index(layer, LayersView::OracleAuc).data().toString();
        if (pairs > 0) {
            QCOMPARE(shown, QString::number(right / static_cast<double>(pairs), 'f', 2));
        } else {
            QCOMPARE(shown, QString("–"));
        }
        // The missed tokens of the selected layer are underlined and listed in the lens.
        window_->selection()->setLayer(layer);
        QTableWidget* missed = window_->lensView()->missedTable();
        for (int r = 0; r < missed->rowCount(); ++r) {
            const qint64 t = missed->item(r, 0)->data(Qt::UserRole).toLongLong();
            QVERIFY(window_->documentView()->missedMarked(t));
            QCOMPARE(scored->decisions[layer * T + static_cast<std::size_t>(t)], std::uint8_t{0});
        }
        QVERIFY(!window_->lensView()->shownValue("oracle").isEmpty());
        window_->session()->setLayerPruned(1, false);
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->variant() == nullptr, 5000);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
    }

    // On a machine with a GPU: a run on cuda:0 from the app records its kernels (CUPTI) and the
    // timeline adds their GPU stream lanes to the host lanes. With L2A_WRITE_SCREENSHOT=1 the
    // window, timeline in front, is saved as studio-cuda.png in docs/images (or in
    // $L2A_SCREENSHOT_DIR).
    void cudaRunShowsItsKernelTimeline() {
        if (cuda_device_count() == 0) QSKIP("no CUDA device (or a build without CUDA)");
        TimelineView* timeline = window_->timelineView();
        for (QDockWidget* d : window_->findChildren<QDockWidget*>()) {
            if (d->widget() == timeline) d->raise();
        }
        timeline->update();
        QTest::qWait(300);
        const int cpu_lanes = timeline->laneCount();
        QVERIFY(window_->session()->base()->kernels.empty());  // the CPU run's profile
        QTemporaryDir dir;
        const QString cpu_run = dir.filePath("cpu-run.l2a");
        window_->saveProfile(cpu_run);

        auto* device = child<QComboBox>(window_.get(), "device");
        device->setCurrentText("cuda:0");
        QCOMPARE(device->currentText(), QString("cuda:0"));
        QSignalSpy finished(window_->controller(), &RunController::runFinished);
        window_->runNow();
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() == 1, kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
        const ProfilePtr p = window_->session()->base();
        QVERIFY2(!p->device.empty() && p->device != "cpu", p->device.c_str());
        QVERIFY2(!p->kernels.empty(), "a CUDA run from the app recorded no kernels");
        verifyGpuLanesAndScreenshot(cpu_lanes, "cuda run", 2, "studio-cuda.png");
        if (QTest::currentTestFailed()) return;
        // The first layer's time is the layer's own: the study warmed the GPU up before the run
        // (one-time CUDA set-up used to land there, hundreds of times a layer's time).
        std::vector<double> layer_ms;
        for (const LayerTiming& layer : summarize_timeline(*p).layers) {
            layer_ms.push_back(layer.seconds * 1e3);
        }
        QVERIFY(layer_ms.size() > 1);
        const double slowest_other = *std::max_element(layer_ms.begin() + 1, layer_ms.end());
        QVERIFY2(layer_ms[0] < 5 * slowest_other + 20.0,
                 qPrintable(QString("layer 0 %1 ms, the slowest other %2 ms")
                                .arg(layer_ms[0])
                                .arg(slowest_other)));
        // The later cases work on the CPU run.
        device->setCurrentText("cpu");
        MessageBoxCatcher back;
        window_->openProfile(cpu_run);
        QTest::qWait(100);
        QVERIFY2(back.text.isEmpty(), qPrintable(back.text));
        QCOMPARE(window_->session()->base()->device, std::string("cpu"));
    }

    // A profile of a CUDA run made through a remote engine (`l2a run --demo --device cuda --engine
    // tcp://...` against `l2a serve` on an H100; tests/data/profiles/README.md), opened here:
    // its kernels and memory operations fill GPU lanes of the timeline beside the host ranges.
    void openedRemoteCudaProfileShowsItsKernelTimeline() {
        QTemporaryDir dir;
        const QString previous = dir.filePath("before.l2a");
        window_->saveProfile(previous);
        TimelineView* timeline = window_->timelineView();
        for (QDockWidget* d : window_->findChildren<QDockWidget*>()) {
            if (d->widget() == timeline) d->raise();
        }
        timeline->update();
        QTest::qWait(300);
        QCOMPARE(window_->session()->base()->device, std::string("cpu"));  // lanes of a CPU run
        const int cpu_lanes = timeline->laneCount();
        MessageBoxCatcher catcher;  // an error opening it must fail the case, not wait for a click
        window_->openProfile(QString(L2A_SOURCE_DIR) + "/tests/data/profiles/remote-cuda-h100.l2a");
        QTest::qWait(100);
        QVERIFY2(catcher.text.isEmpty(), qPrintable(catcher.text));
        const ProfilePtr p = window_->session()->base();
        QVERIFY2(QString::fromStdString(p->device).contains("H100"), p->device.c_str());
        QVERIFY2(p->kernels.size() > 100, qPrintable(QString::number(p->kernels.size())));
        QCOMPARE(QString::fromStdString(p->timeline_source), QString("cupti"));
        // The run summary's "ran on": the GPU and the dtype the profile recorded.
        QTRY_VERIFY([&] {
            for (const QLabel* label : window_->findChildren<QLabel*>()) {
                if (label->text().contains("NVIDIA H100") && label->text().contains("bf16")) {
                    return true;
                }
            }
            return false;
        }());
        verifyGpuLanesAndScreenshot(cpu_lanes, "remote cuda profile", 5, "studio-remote-cuda.png");
        if (QTest::currentTestFailed()) return;
        MessageBoxCatcher back;
        window_->openProfile(previous);  // the later cases work on the CPU run
        QTest::qWait(100);
        QVERIFY2(back.text.isEmpty(), qPrintable(back.text));
        QCOMPARE(window_->session()->base()->device, std::string("cpu"));
    }

    void shortcutsDialogText() {
        QTextDocument doc;
        doc.setHtml(MainWindow::shortcutsText());
        const QString plain = doc.toPlainText();
        QVERIFY2(!plain.contains("OOpen") && !plain.contains("Ctrl+Shift+OOpen"),
                 qPrintable(plain));
        for (const char* key : {"F5", "Esc", "Ctrl+O", "Ctrl+Shift+O", "Ctrl+Shift+P", "Ctrl+S",
                                "Ctrl+E", "Ctrl+R", "X", "Ctrl+Q"}) {
            QVERIFY2(MainWindow::shortcutsText().contains(QString("<b>%1</b>").arg(key)), key);
        }
    }

    // At 1280x720 and 1920x1080 the default layout shows every row of the 6-layer table, a
    // document pane with room for lines of text, the routing map and the summary; after a
    // what-if, every column of the layer table without scrolling sideways and every metric of
    // the what-if's results without scrolling down.
    void layoutAtBothSizes_data() {
        QTest::addColumn<QSize>("size");
        QTest::newRow("1280x720") << QSize(1280, 720);
        QTest::newRow("1920x1080") << QSize(1920, 1080);
    }
    void layoutAtBothSizes() {
        QFETCH(QSize, size);
        QSettings().remove("window/state");
        QSettings().remove("window/geometry");
        StudioOptions options;
        options.run_on_start = false;
        MainWindow window(options);
        // With the routing oracle's columns, the widest the table gets.
        window.session()->setBase(with_distant_masses(*window_->session()->base()), {},
                                  window_->session()->baseInfo());
        window.resize(size);
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QTest::qWait(300);  // the default sizes are applied once the window is shown
        QCOMPARE(window.size(), size);
        QTableView* table = window.layersView()->table();
        QCOMPARE(table->model()->rowCount(), 6);
        for (int row = 0; row < 6; ++row) {
            const QRect cell = table->visualRect(table->model()->index(row, 0));
            QVERIFY2(table->viewport()->rect().contains(cell),
                     qPrintable(QString("row %1 at %2,%3 %4x%5 of a viewport %6 px tall")
                                    .arg(row)
                                    .arg(cell.x())
                                    .arg(cell.y())
                                    .arg(cell.width())
                                    .arg(cell.height())
                                    .arg(table->viewport()->height())));
        }
        DocumentView* document = window.documentView();
        QVERIFY2(document->width() >= 360 && document->height() >= 120,
                 qPrintable(QString("%1x%2").arg(document->width()).arg(document->height())));
        QVERIFY(window.routingMapView()->height() >= 200);
        QVERIFY(window.routingMapView()->width() >= 500);
        auto* summary = child<SummaryView>(&window, "runSummary");
        QVERIFY(summary->isVisible());
        // Every row of the summary fits (its last, the time, is inside the widget).
        auto* time = child<QLabel>(&window, "summary_time");
        QVERIFY2(time->mapTo(summary, QPoint(0, time->height())).y() <= summary->height(),
                 qPrintable(QString("summary %1 px tall").arg(summary->height())));
        // A what-if's results (layer 4 pruned, numbers as long as the demo's): in front, each
        // column of the layer table (the what-if share shown now) inside the table, every
        // metric inside the what-if's scroll area as it stands.
        window.session()->setVariant(pruned_variant(*window.session()->base(), 4),
                                     demo_like_comparison(*window.session()->base(), 4));
        QTRY_VERIFY(!table->isColumnHidden(LayersView::VariantFraction));
        QVERIFY(!table->isColumnHidden(LayersView::OracleAuc));
        QTest::qWait(100);
        QVERIFY(!table->horizontalScrollBar()->isVisible());
        expect_columns_inside(table, "layer table");
        if (QTest::currentTestFailed()) return;
        auto* metrics = child<QWidget>(&window, "variantVsBase");
        QTRY_VERIFY(metrics->isVisible());
        auto* scroll = qobject_cast<QScrollArea*>(
            window.whatIfView()->parentWidget()->parentWidget());  // viewport, then the area
        QVERIFY(scroll);
        const QRect shown(metrics->mapTo(scroll->viewport(), QPoint(0, 0)), metrics->size());
        QVERIFY2(scroll->viewport()->rect().contains(shown),
                 qPrintable(QString("the results at %1..%2 of a %3 px tall view")
                                .arg(shown.top())
                                .arg(shown.bottom())
                                .arg(scroll->viewport()->height())));
        // The per-layer comparison under them: every column inside its table ("change" whole,
        // not cut to "0.0 p" in the narrow dock of 1280x720).
        auto* comparison = child<QTableWidget>(&window, "layerComparison");
        QTRY_VERIFY(comparison->isVisible());
        expect_columns_inside(comparison, "what-if comparison");
        if (QTest::currentTestFailed()) return;
        // Each column as wide as its widest cell and its header: nothing elided.
        auto* cells = static_cast<QAbstractItemView*>(comparison);  // sizeHintForColumn is public
        for (int c = 0; c < comparison->columnCount(); ++c) {
            QHeaderView* header = comparison->horizontalHeader();
            const int wanted = std::max(cells->sizeHintForColumn(c), header->sectionSizeHint(c));
            QVERIFY2(header->sectionSize(c) >= wanted,
                     qPrintable(QString("what-if column %1: %2 px of %3")
                                    .arg(c)
                                    .arg(header->sectionSize(c))
                                    .arg(wanted)));
        }
        window.session()->clearVariant();
        // A new run brings the summary back in front.
        window.session()->setBase(window_->session()->base(), {}, window_->session()->baseInfo());
        QTRY_VERIFY(summary->isVisible());
        // A 36-layer model: the table scrolls to its last row.
        window.session()->setBase(
            std::make_shared<const Profile>(synthetic_profile(500, 36, 0.2, 1)));
        QCOMPARE(table->model()->rowCount(), 36);
        QTRY_VERIFY(table->verticalScrollBar()->isVisible());
        table->scrollToBottom();
        QVERIFY(
            table->viewport()->rect().contains(table->visualRect(table->model()->index(35, 0))));
    }

    // docs/images/studio-1280x720.png and studio-1920x1080.png: a fresh window of each size
    // with the default run, a selected token and a pruned layer, what a newcomer sees first.
    // Also the timeline tab and a deep zoom of the routing map, in the temporary folder.
    void screenshot_data() {
        QTest::addColumn<QSize>("size");
        QTest::newRow("1280x720") << QSize(1280, 720);
        QTest::newRow("1920x1080") << QSize(1920, 1080);
    }
    void screenshot() {
        if (qEnvironmentVariable("L2A_WRITE_SCREENSHOT") != "1") {
            QSKIP("set L2A_WRITE_SCREENSHOT=1 to write docs/images/studio-*.png");
        }
        QFETCH(QSize, size);
        child<QSpinBox>(window_.get(), "maxTokens")->setValue(0);
        window_->close();  // saves its options (the whole document) for the next window
        // The default layout, not the one the last window saved.
        QSettings().remove("window/state");
        QSettings().remove("window/geometry");
        window_ = std::make_unique<MainWindow>(StudioOptions{});
        window_->resize(size);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->base() != nullptr, kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
        window_->selection()->setLayer(2);
        window_->selection()->setToken(window_->session()->base()->num_tokens() / 3);
        QAbstractItemModel* model = window_->layersView()->model();
        QSignalSpy whatif(window_->controller(), &RunController::whatIfFinished);
        // The last layer: the demo model's busiest, so that the what-if has something to show.
        model->setData(model->index(model->rowCount() - 1, LayersView::Prune), Qt::Checked,
                       Qt::CheckStateRole);
        QVERIFY(whatif.wait(kRunTimeoutMs));
        QTest::qWait(300);
        const QImage image = window_->grab().toImage();
        QVERIFY(!image.isNull());
        QCOMPARE(image.size() / image.devicePixelRatio(), size);
        QVERIFY2(distinct_colours(image, image.rect()) > 50, "the window grabbed blank");
        // The routing map (a GL view) must be in the picture, not a black or empty rectangle.
        RoutingMapView* map = window_->routingMapView();
        const qreal dpr = image.devicePixelRatio();
        const QRect map_area(map->mapTo(window_.get(), QPoint(0, 0)) * dpr, map->size() * dpr);
        const int map_colours = distinct_colours(image, map_area);
        QVERIFY2(map_colours > 8, qPrintable(QString("routing map: %1 colours").arg(map_colours)));
        const QString name = QString("studio-%1x%2.png").arg(size.width()).arg(size.height());
        const QString path = QString(L2A_SOURCE_DIR) + "/docs/images/" + name;
        QDir().mkpath(QString(L2A_SOURCE_DIR) + "/docs/images");
        QVERIFY(image.save(path));

        // For a look by eye: the timeline tab, and the map zoomed in to single tokens.
        TimelineView* timeline = window_->timelineView();
        for (QDockWidget* d : window_->findChildren<QDockWidget*>()) {
            if (d->widget() == timeline) d->raise();
        }
        map->setVisibleTokens(1000, 1060);
        QTest::qWait(300);
        const QString extra = QDir::tempPath() + "/" + name;
        QVERIFY(window_->grab().toImage().save(extra.chopped(4) + "-timeline-zoom.png"));
        // The variant with its pruned layer, and the timeline at a microsecond scale.
        map->setVisibleTokens(0, static_cast<double>(window_->session()->base()->num_tokens()));
        map->setShowVariant(true);
        const TimedRange& first = window_->session()->base()->ranges.front();
        timeline->setVisibleTime(first.begin_ns * 1e-9, first.begin_ns * 1e-9 + 40e-6);
        QTest::qWait(300);
        QVERIFY(window_->grab().toImage().save(extra.chopped(4) + "-variant-us.png"));
        map->setShowVariant(false);
    }

    // docs/images/studio-lens.png: the routing oracle run and the lens of a routed token with
    // much of its attention beyond the window, at 1280x720.
    void lensScreenshot() {
        if (qEnvironmentVariable("L2A_WRITE_SCREENSHOT") != "1") {
            QSKIP("set L2A_WRITE_SCREENSHOT=1 to write docs/images/studio-lens.png");
        }
        const QSize size(1280, 720);
        child<QSpinBox>(window_.get(), "maxTokens")->setValue(0);
        window_->close();
        QSettings().remove("window/state");
        QSettings().remove("window/geometry");
        window_ = std::make_unique<MainWindow>(StudioOptions{});
        window_->resize(size);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->base() != nullptr, kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
        QSignalSpy oracle(window_->controller(), &RunController::oracleFinished);
        action(window_.get(), "routingOracle")->trigger();
        QVERIFY(oracle.wait(kRunTimeoutMs));
        const ProfilePtr p = window_->session()->base();
        const auto T = static_cast<std::size_t>(p->num_tokens());
        // The layer that routes the most tokens, and in it the routed token with the highest
        // distant mass.
        std::size_t layer = 0;
        for (std::size_t l = 0; l < p->metrics.global_fraction.size(); ++l) {
            if (p->metrics.global_fraction[l] > p->metrics.global_fraction[layer]) layer = l;
        }
        std::size_t token = T / 2;
        float best = -1.0f;
        for (std::size_t t = 0; t < T; ++t) {
            const float m = p->distant_mass[layer * T + t];
            if (p->decisions[layer * T + t] && m > best) {
                best = m;
                token = t;
            }
        }
        window_->selection()->setLayer(static_cast<int>(layer));
        window_->selection()->setToken(static_cast<qint64>(token));
        QSignalSpy explained(window_->controller(), &RunController::explained);
        action(window_.get(), "explainToken")->trigger();
        QVERIFY(explained.wait(kRunTimeoutMs));
        QTest::qWait(300);
        const QImage image = window_->grab().toImage();
        QVERIFY2(distinct_colours(image, image.rect()) > 50, "the window grabbed blank");
        QVERIFY(image.save(QString(L2A_SOURCE_DIR) + "/docs/images/studio-lens.png"));
        // For a look by eye: the whole lens panel, the oracle's plot at its foot.
        QVERIFY(window_->lensView()->grab().toImage().save(QDir::tempPath() +
                                                           "/studio-lens-panel.png"));
    }

    void cleanupTestCase() { window_.reset(); }

private:
    // After a profile with GPU kernels became the base: the timeline has more lanes than it had
    // with `cpu_lanes` (where OpenGL runs), and with L2A_WRITE_SCREENSHOT=1 the window, with
    // `layer` selected, is saved as `file` in L2A_SCREENSHOT_DIR (default docs/images).
    void verifyGpuLanesAndScreenshot(int cpu_lanes, const QString& what, int layer,
                                     const QString& file) {
        TimelineView* timeline = window_->timelineView();
        timeline->update();
        QTest::qWait(300);
        if (gl_available(window_->routingMapView())) {
            QVERIFY2(timeline->laneCount() > cpu_lanes,
                     qPrintable(QString("lanes: cpu run %1, %2 %3")
                                    .arg(cpu_lanes)
                                    .arg(what)
                                    .arg(timeline->laneCount())));
        }
        if (qEnvironmentVariable("L2A_WRITE_SCREENSHOT") == "1") {
            const QString dir = qEnvironmentVariable("L2A_SCREENSHOT_DIR",
                                                     QString(L2A_SOURCE_DIR) + "/docs/images");
            QDir().mkpath(dir);
            window_->selection()->setLayer(layer);
            // Long enough for the docks to settle after the summary fits its height (a grab
            // mid-way caught a dock group's empty tab bar, shown for a moment by the relayout).
            QTest::qWait(1000);
            const QImage image = window_->grab().toImage();
            QVERIFY2(distinct_colours(image, image.rect()) > 50, "the window grabbed blank");
            QVERIFY(image.save(dir + "/" + file));
        }
    }

    std::unique_ptr<MainWindow> window_;
    QTemporaryDir documents_;
};

QTEST_MAIN(StudioTest)
#include "test_studio_main_window.moc"
