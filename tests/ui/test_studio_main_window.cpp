// The studio as a user meets it: it starts with the default and completes a run, the views share
// one selection, a prune box triggers a live what-if, every export format is written, a run can
// be cancelled, and a corrupt model folder is an error dialog after which the app still works.
#include <QAbstractItemModel>
#include <QApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QMenu>
#include <QMessageBox>
#include <QSet>
#include <QSettings>
#include <QSignalSpy>
#include <QTableView>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>
#include <filesystem>
#include <fstream>

#include "l2a/engine/demo.h"
#include "l2a/profiler/report_pdf.h"
#include "l2a/ui/document_view.h"
#include "l2a/ui/layers_view.h"
#include "l2a/ui/main_window.h"
#include "l2a/ui/routing_map_view.h"
#include "l2a/ui/run_controller.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/timeline_view.h"
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

}  // namespace

class StudioTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        QApplication::setOrganizationName("L2A Studio tests");
        QApplication::setApplicationName("l2a-studio-test");
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
        window_->openDocument(doc);  // starts a run
        QTRY_VERIFY_WITH_TIMEOUT(progress.size() > 0, kRunTimeoutMs);
        window_->cancelRun();  // what Esc and the status bar's Cancel button do
        QVERIFY(cancelled.wait(5000));
        QTRY_VERIFY(!window_->controller()->busy());
        QVERIFY(window_->session()->base() == before);  // the shown run is untouched
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

    void screenshot() {
        if (qEnvironmentVariable("L2A_WRITE_SCREENSHOT") != "1") {
            QSKIP("set L2A_WRITE_SCREENSHOT=1 to write docs/images/studio-main.png");
        }
        // A fresh window (the tests above opened other documents and models) with the default
        // run, a selected token and a pruned layer: what a newcomer sees first.
        window_ = std::make_unique<MainWindow>(StudioOptions{});
        window_->resize(1400, 900);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
        QTRY_VERIFY_WITH_TIMEOUT(window_->session()->base() != nullptr, kRunTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(!window_->controller()->busy(), kRunTimeoutMs);
        window_->selection()->setLayer(2);
        window_->selection()->setToken(window_->session()->base()->num_tokens() / 3);
        QAbstractItemModel* model = window_->layersView()->model();
        QSignalSpy whatif(window_->controller(), &RunController::whatIfFinished);
        model->setData(model->index(model->rowCount() - 2, LayersView::Prune), Qt::Checked,
                       Qt::CheckStateRole);
        QVERIFY(whatif.wait(kRunTimeoutMs));
        QTest::qWait(300);
        const QImage image = window_->grab().toImage();
        QVERIFY(!image.isNull());
        QVERIFY2(distinct_colours(image, image.rect()) > 50, "the window grabbed blank");
        // The routing map (a GL view) must be in the picture, not a black or empty rectangle.
        RoutingMapView* map = window_->routingMapView();
        const qreal dpr = image.devicePixelRatio();
        const QRect map_area(map->mapTo(window_.get(), QPoint(0, 0)) * dpr, map->size() * dpr);
        const int map_colours = distinct_colours(image, map_area);
        QVERIFY2(map_colours > 8, qPrintable(QString("routing map: %1 colours").arg(map_colours)));
        const QString path = QString(L2A_SOURCE_DIR) + "/docs/images/studio-main.png";
        QDir().mkpath(QString(L2A_SOURCE_DIR) + "/docs/images");
        QVERIFY(image.save(path));
    }

    void cleanupTestCase() { window_.reset(); }

private:
    std::unique_ptr<MainWindow> window_;
    QTemporaryDir documents_;
};

QTEST_MAIN(StudioTest)
#include "test_studio_main_window.moc"
