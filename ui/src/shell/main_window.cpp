// The studio's main window: wiring only. Views, the session and the run controller do the work;
// this file holds menus, the run-options toolbar, docks, the status bar, settings and exports.
#include "l2a/ui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QFrame>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QKeySequence>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QScreen>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QSpinBox>
#include <QStatusBar>
#include <QTableView>
#include <QTimer>
#include <QToolBar>
#include <QUrl>
#include <QVBoxLayout>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/oracle.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_choices.h"
#include "l2a/profiler/export.h"
#include "l2a/profiler/report_pdf.h"
#include "l2a/ui/document_view.h"
#include "l2a/ui/layers_view.h"
#include "l2a/ui/lens_view.h"
#include "l2a/ui/routing_map_view.h"
#include "l2a/ui/run_controller.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/summary_view.h"
#include "l2a/ui/timeline_view.h"
#include "l2a/ui/units.h"
#include "l2a/ui/whatif_view.h"

#ifndef L2A_VERSION
#define L2A_VERSION "0.1.0"
#endif

namespace l2a::ui {
namespace {

constexpr int kMaxRecent = 10;
constexpr int kWhatIfDebounceMs = 200;
// The run option "max tokens" is saved under this key. Earlier versions saved 4096 by default
// under "run/max_tokens", which cut every longer document; that key is dropped, not read.
const char* const kMaxTokensKey = "run/max_tokens_limit";
const char* const kOldMaxTokensKey = "run/max_tokens";

std::filesystem::path to_path(const QString& s) { return std::filesystem::path(s.toStdString()); }

QString bytes_text(std::int64_t bytes) { return byte_size_text(bytes, 1); }

// Resident memory of this process (Linux), for the status bar on CPU runs.
std::int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    long long pages = 0, resident = 0;
    if (!(statm >> pages >> resident)) return 0;
    return resident * 4096;
}

// The engine's and exporters' errors name the file already; this makes sure the dialog does.
QString naming_file(const QString& path, const std::exception& e) {
    const QString message = QString::fromStdString(e.what());
    return message.contains(QFileInfo(path).fileName()) ? message : path + ": " + message;
}

// What the title and messages call a profile's document and model.
QString document_name(const Profile& p) {
    if (p.document_path.empty() || p.document_path == "<demo document>") return "demo document";
    return QFileInfo(QString::fromStdString(p.document_path)).fileName();
}

QString model_name(const Profile& p) {
    std::error_code error;
    if (!p.model.path.empty() && std::filesystem::equivalent(p.model.path, demo_model_dir(), error))
        return "demo model";
    const QString name = QFileInfo(QString::fromStdString(p.model.path)).fileName();
    return name.isEmpty() ? QString("model") : name;
}

// "report" for the demo document, else the document's base name ("notes" for notes.md).
QString default_file_stem(const Session& session, const QString& document_path) {
    if (!session.baseFile().isEmpty()) return QFileInfo(session.baseFile()).completeBaseName();
    if (!document_path.isEmpty()) return QFileInfo(document_path).completeBaseName();
    return "report";
}

}  // namespace

struct MainWindow::State {
    StudioOptions options;
    Session* session = nullptr;
    Selection* selection = nullptr;
    RunController* controller = nullptr;
    DocumentView* document = nullptr;
    RoutingMapView* map = nullptr;
    LayersView* layers = nullptr;
    TimelineView* timeline = nullptr;
    WhatIfView* whatif = nullptr;
    LensView* lens = nullptr;
    std::vector<QDockWidget*> docks;
    QDockWidget* lens_dock = nullptr;
    QDockWidget* layers_dock = nullptr;
    QAction* explain = nullptr;
    QAction* oracle = nullptr;

    QString model_dir;      // empty: the demo model
    QString document_path;  // empty: the demo document

    QComboBox* device = nullptr;
    QComboBox* backend = nullptr;
    QSpinBox* max_tokens = nullptr;
    QComboBox* routing = nullptr;
    QDoubleSpinBox* fraction = nullptr;
    QDoubleSpinBox* threshold = nullptr;
    QSpinBox* threads = nullptr;
    SummaryView* summary = nullptr;

    // The notice over the routing map: a run that was cut, or that went past the model's
    // context.
    QFrame* notice = nullptr;
    QLabel* notice_text = nullptr;
    QPushButton* notice_whole = nullptr;

    QLabel* status_device = nullptr;
    QLabel* status_engine = nullptr;
    bool remote = false;        // runs happen on a remote engine
    QStringList engine_models;  // the folders it offers
    QLabel* status_tokens = nullptr;
    QLabel* status_time = nullptr;
    QLabel* status_memory = nullptr;
    QLabel* status_stage = nullptr;
    QProgressBar* progress = nullptr;
    QPushButton* cancel = nullptr;
    QMenu* recent = nullptr;
    QTimer* whatif_timer = nullptr;
    bool whatif_running = false;
    bool measuring = false;            // a TTFT measurement is running
    bool apply_default_sizes = false;  // on the first show
    int progress_value = 0;            // never lower within one job
    QByteArray default_state;
    std::function<void()> default_sizes;
};

MainWindow::MainWindow(const StudioOptions& options, QWidget* parent)
    : QMainWindow(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.options = options;
    s.model_dir = options.model_dir;
    s.document_path = options.document;
    setObjectName("MainWindow");
    setAcceptDrops(true);
    setDockNestingEnabled(true);
    // Not larger than the screen (a 1280x720 laptop): the layout is sized from the window.
    QSize size(1500, 950);
    if (const QScreen* screen = QGuiApplication::primaryScreen()) {
        size = size.boundedTo(screen->availableGeometry().size());
    }
    resize(size);

    s.session = new Session(this);
    s.selection = new Selection(this);
    s.controller = new RunController(this);

    createViews();
    createDocks();
    createRunOptionsBar();
    createMenus();
    createStatusBar();
    connectRunController();
    connectWhatIf();
    restoreSettings();

    if (!options.engine.isEmpty()) {
        connectEngine(options.engine, options.token_file, options.tls_ca_file);
    }
    if (!options.profile.isEmpty()) {
        QTimer::singleShot(0, this, [this] { openProfile(state_->options.profile); });
    } else if (options.run_on_start) {
        QTimer::singleShot(0, this, &MainWindow::runNow);
    }
}

// The views, and in the centre the routing map under its notice (a cut run).
void MainWindow::createViews() {
    State& s = *state_;
    s.map = new RoutingMapView(s.session, s.selection);
    s.document = new DocumentView(s.session, s.selection);
    s.layers = new LayersView(s.session, s.selection);
    s.timeline = new TimelineView(s.session, s.selection);
    s.whatif = new WhatIfView(s.session, s.selection);
    s.summary = new SummaryView(s.session);
    s.lens = new LensView(s.session, s.selection);
    auto* centre = new QWidget;
    auto* centre_layout = new QVBoxLayout(centre);
    centre_layout->setContentsMargins(0, 0, 0, 0);
    centre_layout->setSpacing(0);
    s.notice = new QFrame(centre);
    s.notice->setObjectName("runNotice");
    s.notice->setStyleSheet(
        "#runNotice { background: #fff4d6; border-bottom: 1px solid #e0c36b; }");
    auto* notice_layout = new QHBoxLayout(s.notice);
    notice_layout->setContentsMargins(8, 4, 8, 4);
    s.notice_text = new QLabel(s.notice);
    s.notice_text->setObjectName("runNoticeText");
    s.notice_text->setWordWrap(true);
    s.notice_whole = new QPushButton("Run the whole document", s.notice);
    s.notice_whole->setObjectName("runWholeDocument");
    s.notice_whole->setToolTip("Run every token of the document");
    auto* notice_close = new QPushButton("Dismiss", s.notice);
    notice_close->setFlat(true);
    notice_layout->addWidget(s.notice_text, 1);
    notice_layout->addWidget(s.notice_whole);
    notice_layout->addWidget(notice_close);
    s.notice->setVisible(false);
    connect(s.notice_whole, &QPushButton::clicked, this, &MainWindow::runWholeDocument);
    connect(notice_close, &QPushButton::clicked, s.notice, &QWidget::hide);
    centre_layout->addWidget(s.notice);
    centre_layout->addWidget(s.map, 1);
    setCentralWidget(centre);
}

// The docks of the default layout, and the sizes it takes once the window has its own.
void MainWindow::createDocks() {
    State& s = *state_;
    auto dock = [&](const QString& title, const QString& name, QWidget* widget,
                    Qt::DockWidgetArea area) {
        auto* d = new QDockWidget(title, this);
        d->setObjectName(name);
        d->setWidget(widget);
        addDockWidget(area, d);
        s.docks.push_back(d);
        return d;
    };
    // The default layout: the routing map in the centre, the what-if results at the right, and
    // along the bottom the document (the timeline in a tab behind it) beside the layer table.
    QDockWidget* doc_dock = dock("Document", "DocumentDock", s.document, Qt::BottomDockWidgetArea);
    QDockWidget* layers_dock = dock("Layers", "LayersDock", s.layers, Qt::BottomDockWidgetArea);
    splitDockWidget(doc_dock, layers_dock, Qt::Horizontal);
    QDockWidget* timeline_dock =
        dock("Timeline", "TimelineDock", s.timeline, Qt::BottomDockWidgetArea);
    tabifyDockWidget(doc_dock, timeline_dock);
    doc_dock->raise();
    QDockWidget* summary_dock =
        dock("Run summary", "SummaryDock", s.summary, Qt::RightDockWidgetArea);
    // The what-if results are taller than a small screen's column: they scroll.
    auto* whatif_scroll = new QScrollArea;
    whatif_scroll->setWidget(s.whatif);
    whatif_scroll->setWidgetResizable(true);
    whatif_scroll->setFrameShape(QFrame::NoFrame);
    whatif_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    QDockWidget* whatif_dock =
        dock("What-if", "WhatIfDock", whatif_scroll, Qt::RightDockWidgetArea);
    splitDockWidget(summary_dock, whatif_dock, Qt::Vertical);
    // The attention lens: a tab behind the what-if, in front once a token is explained.
    auto* lens_scroll = new QScrollArea;
    lens_scroll->setWidget(s.lens);
    lens_scroll->setWidgetResizable(true);
    lens_scroll->setFrameShape(QFrame::NoFrame);
    lens_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    QDockWidget* lens_dock =
        dock("Attention lens", "LensDock", lens_scroll, Qt::RightDockWidgetArea);
    tabifyDockWidget(whatif_dock, lens_dock);
    whatif_dock->raise();
    s.lens_dock = lens_dock;
    s.layers_dock = layers_dock;
    // In a column too short for both (see default_sizes) the summary and the what-if are tabs:
    // a what-if's results come to the front when it finishes, the summary with a new run.
    auto tabbed = [this, summary_dock, whatif_dock] {
        return tabifiedDockWidgets(summary_dock).contains(whatif_dock);
    };
    connect(s.session, &Session::variantChanged, this, [this, whatif_dock] {
        if (!tabifiedDockWidgets(whatif_dock).isEmpty() && state_->session->variant())
            whatif_dock->raise();
    });
    connect(s.session, &Session::baseChanged, this, [tabbed, summary_dock] {
        if (tabbed()) summary_dock->raise();
    });
    // The summary dock as tall as its rows need (they wrap in a narrow column); the what-if
    // below takes the rest and scrolls.
    connect(s.summary, &SummaryView::preferredHeightChanged, this,
            [this, summary_dock, whatif_dock, tabbed](int h) {
                if (!summary_dock->isVisible() || summary_dock->isFloating() || tabbed()) return;
                const int title_h = summary_dock->height() - state_->summary->height();
                resizeDocks({summary_dock, whatif_dock},
                            {h + std::max(0, title_h),
                             std::max(80, whatif_dock->height() + summary_dock->height() - h -
                                              std::max(0, title_h))},
                            Qt::Vertical);
            });
    // Sizes, applied once the window has its size: the bottom docks tall enough for every row
    // of a 6-layer table (more layers scroll) and a paragraph of the document; the layer table
    // wide enough for its columns and the document for a line of text; the right column as
    // wide as its numbers need; the summary as tall as its rows, and the what-if's results
    // below it, or (a column too short for both, as at 1280x720) the two as tabs.
    s.default_sizes = [this, doc_dock, layers_dock, summary_dock, whatif_dock, lens_dock] {
        QTableView* table = state_->layers->table();
        const int row_h = table->verticalHeader()->defaultSectionSize();
        const int header_h = table->horizontalHeader()->sizeHint().height();
        const int title_h = fontMetrics().height() + 10;
        const int six_rows = title_h + header_h + 6 * row_h + 2 * table->frameWidth() +
                             table->horizontalScrollBar()->sizeHint().height() + 6;
        const int bottom =
            std::clamp(height() * 3 / 10, six_rows, std::max(six_rows, height() / 2));
        resizeDocks({doc_dock}, {bottom}, Qt::Vertical);
        const int right = std::clamp(width() * 32 / 100, 400, 560);
        resizeDocks({whatif_dock}, {right}, Qt::Horizontal);
        const int centre_w = width() - right;
        // A little more than half: the routing oracle's columns (AUC, precision, recall) fit
        // at 1280 px too.
        const int layers_width = std::clamp(centre_w * 55 / 100, 300, 720);
        resizeDocks({doc_dock, layers_dock}, {centre_w - layers_width, layers_width},
                    Qt::Horizontal);
        // The summary as short as its rows allow (it keeps a minimum height for them), the
        // what-if the rest, when that shows its results; else tabs, the one with news in front.
        const int summary_h = std::max(state_->summary->preferredHeight(), 120) + title_h;
        const auto* bar = findChild<QToolBar*>("RunOptionsToolBar");
        const int column_h = height() - menuBar()->height() - (bar ? bar->height() : 0) -
                             statusBar()->height() - bottom - title_h;
        if (column_h < summary_h + title_h + state_->whatif->resultsHeightHint()) {
            tabifyDockWidget(summary_dock, whatif_dock);
            tabifyDockWidget(summary_dock, lens_dock);
            (state_->session->variant() ? whatif_dock : summary_dock)->raise();
            return;
        }
        resizeDocks({summary_dock, whatif_dock}, {summary_h, std::max(120, height() - summary_h)},
                    Qt::Vertical);
    };
}

// The run options toolbar: device, backend, max tokens, routing, threshold, threads.
void MainWindow::createRunOptionsBar() {
    State& s = *state_;
    auto* bar = addToolBar("Run options");
    bar->setObjectName("RunOptionsToolBar");
    bar->addWidget(new QLabel(" device "));
    s.device = new QComboBox;
    s.device->setObjectName("device");
    s.device->addItem("cpu");
    for (int i = 0; i < cuda_device_count(); ++i) {
        s.device->addItem(QString("cuda:%1").arg(i));
    }
    s.device->setToolTip(cuda_built() ? "Where the model runs" : "This build runs on the CPU only");
    bar->addWidget(s.device);
    bar->addWidget(new QLabel("  backend "));
    s.backend = new QComboBox;
    for (Backend backend : kBackends) s.backend->addItem(backend_name(backend));
    s.backend->setToolTip(
        "Attention implementation: reference (CPU and GPU), sdpa and kernels (GPU)");
    bar->addWidget(s.backend);
    bar->addWidget(new QLabel("  max tokens "));
    s.max_tokens = new QSpinBox;
    s.max_tokens->setObjectName("maxTokens");
    s.max_tokens->setRange(0, 1 << 24);
    s.max_tokens->setSpecialValueText("whole document");
    s.max_tokens->setSingleStep(1024);
    s.max_tokens->setValue(0);
    s.max_tokens->setToolTip(
        "Tokens of the document to run. \"whole document\": all of it, up to the model's "
        "context (max_position_embeddings); a cut run says so above the routing map");
    bar->addWidget(s.max_tokens);
    bar->addWidget(new QLabel("  routing "));
    s.routing = new QComboBox;
    s.routing->addItems({"learned", "global", "local", "random", "top"});
    bar->addWidget(s.routing);
    s.fraction = new QDoubleSpinBox;
    s.fraction->setRange(0, 1);
    s.fraction->setSingleStep(0.05);
    s.fraction->setValue(0.2);
    s.fraction->setToolTip("Fraction for random and top routing");
    bar->addWidget(s.fraction);
    bar->addWidget(new QLabel("  threshold "));
    s.threshold = new QDoubleSpinBox;
    s.threshold->setRange(0, 0.999);
    s.threshold->setDecimals(3);
    s.threshold->setSingleStep(0.05);
    s.threshold->setSpecialValueText("model");
    s.threshold->setValue(0);
    s.threshold->setToolTip("Router probability threshold (\"model\": the checkpoint's own)");
    bar->addWidget(s.threshold);
    bar->addWidget(new QLabel("  threads "));
    s.threads = new QSpinBox;
    s.threads->setObjectName("threads");
    s.threads->setRange(0, 1024);
    s.threads->setValue(0);
    s.threads->setSpecialValueText("default");
    s.threads->setToolTip(
        QString("CPU threads of the run. \"default\": the engine's default when the run starts "
                "(OMP_NUM_THREADS if set, else the cores not already busy; %1 now)")
            .arg(default_cpu_threads()));
    bar->addWidget(s.threads);
    connect(s.device, &QComboBox::currentIndexChanged, this, &MainWindow::updateRunOptionChoices);
    connect(s.routing, &QComboBox::currentIndexChanged, this, &MainWindow::updateRunOptionChoices);
    updateRunOptionChoices();
}

// The backends the device allows (only the reference one on the CPU) and the routing fraction
// for the routings that take one.
void MainWindow::updateRunOptionChoices() {
    State& st = *state_;
    const bool cpu = is_cpu_device(st.device->currentText().toStdString());
    if (cpu) st.backend->setCurrentText(backend_name(Backend::Reference));
    for (int i = 1; i < st.backend->count(); ++i) {
        st.backend->setItemData(i, cpu ? 0 : QVariant(), Qt::UserRole - 1);  // disable on CPU
    }
    st.fraction->setEnabled(st.routing->currentText() == "random" ||
                            st.routing->currentText() == "top");
}

// File: open a model, a document or profiles, recent files, save, export, quit.
void MainWindow::createFileMenu() {
    State& s = *state_;
    QMenu* file = menuBar()->addMenu("&File");
    QAction* open_model =
        file->addAction("Open &Model Folder…", this, [this] { openModelFolder({}); });
    open_model->setShortcut(QKeySequence("Ctrl+Shift+O"));
    QAction* engine =
        file->addAction("Connect to &Engine…", this, &MainWindow::connectEngineDialog);
    engine->setShortcut(QKeySequence("Ctrl+Shift+E"));
    file->addAction("Run on &This Computer", this, [this] { connectEngine({}, {}); });
    QAction* open_doc = file->addAction("&Open Document…", this, [this] { openDocument({}); });
    open_doc->setShortcut(QKeySequence::Open);
    QAction* open_profile = file->addAction("Open &Profile…", this, [this] { openProfile({}); });
    open_profile->setShortcut(QKeySequence("Ctrl+Shift+P"));
    QAction* compare = file->addAction("Open Profile to &Compare…", this, [this] {
        const QString path =
            QFileDialog::getOpenFileName(this, "Profile to compare", {}, "L2A profiles (*.l2a)");
        if (path.isEmpty()) return;
        try {
            auto other = std::make_shared<const Profile>(load_profile(to_path(path)));
            state_->session->setVariant(other, nullptr);
        } catch (const std::exception& e) {
            QMessageBox::critical(this, "Cannot open the profile", naming_file(path, e));
        }
    });
    compare->setToolTip("Show a second profile of the same document side by side");
    s.recent = file->addMenu("Recent Files");
    file->addSeparator();
    QAction* save = file->addAction("&Save Profile…", this, [this] { saveProfile({}); });
    save->setShortcut(QKeySequence::Save);
    QMenu* exports = file->addMenu("&Export");
    const std::pair<const char*, const char*> formats[] = {{"html", "HTML report…"},
                                                           {"pdf", "PDF report…"},
                                                           {"json", "JSON…"},
                                                           {"csv", "CSV tables…"},
                                                           {"chrome", "Chrome / Perfetto trace…"}};
    for (const auto& [format, label] : formats) {
        QAction* a =
            exports->addAction(label, this, [this, f = QString(format)] { exportTo(f, {}); });
        if (QString(format) == "pdf" && !pdf_export_available()) a->setEnabled(false);
        if (QString(format) == "html") a->setShortcut(QKeySequence("Ctrl+E"));
    }
    file->addSeparator();
    QAction* quit = file->addAction("&Quit", this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);
}

// File, Run, View and Help menus.
void MainWindow::createMenus() {
    State& s = *state_;
    createFileMenu();

    QMenu* run = menuBar()->addMenu("&Run");
    QAction* run_now = run->addAction("&Run", this, &MainWindow::runNow);
    run_now->setShortcut(QKeySequence(Qt::Key_F5));
    QAction* cancel = run->addAction("&Cancel", this, &MainWindow::cancelRun);
    cancel->setShortcut(QKeySequence(Qt::Key_Escape));
    run->addSeparator();
    QAction* reset = run->addAction("Reset &What-if", this, [this] {
        if (state_->session->base()) {
            state_->session->setWhatIfOptions(state_->session->base()->options);
            state_->session->clearVariant();
        }
    });
    reset->setShortcut(QKeySequence("Ctrl+R"));
    run->addSeparator();
    s.explain = run->addAction("E&xplain Token", this, &MainWindow::explainSelectedToken);
    s.explain->setObjectName("explainToken");
    s.explain->setShortcut(QKeySequence(Qt::Key_X));
    s.oracle = run->addAction("Routing &Oracle", this, &MainWindow::runRoutingOracle);
    s.oracle->setObjectName("routingOracle");
    // A disabled action says why in its tooltip.
    run->setToolTipsVisible(true);
    s.document->addContextAction(s.explain);
    updateLensActions();

    QMenu* view = menuBar()->addMenu("&View");
    for (QDockWidget* d : state_->docks) view->addAction(d->toggleViewAction());
    view->addSeparator();
    view->addAction("Reset &Layout", this, [this] {
        restoreState(state_->default_state);
        for (QDockWidget* d : state_->docks) d->show();
        state_->default_sizes();
    });

    QMenu* help = menuBar()->addMenu("&Help");
    help->addAction("&Keyboard Shortcuts", this, [this] {
        QMessageBox box(QMessageBox::Information, "Keyboard shortcuts", shortcutsText(),
                        QMessageBox::Ok, this);
        box.setObjectName("shortcutsDialog");
        box.setTextFormat(Qt::RichText);
        box.exec();
    });
    help->addAction("&About L2A Studio", this, [this] {
        QMessageBox::about(
            this, "About L2A Studio",
            QString("<b>L2A Studio %1</b><p>Runs Qwen and L2A models over long documents "
                    "and shows which tokens reach for global attention, what each layer "
                    "costs, and what pruning would change.</p>")
                .arg(L2A_VERSION));
    });
}

// The status bar: stage, progress, Cancel, device, tokens, time, memory.
void MainWindow::createStatusBar() {
    State& s = *state_;
    s.status_stage = new QLabel("Ready");
    s.status_device = new QLabel;
    s.status_tokens = new QLabel;
    s.status_time = new QLabel;
    s.status_memory = new QLabel;
    s.progress = new QProgressBar;
    s.progress->setRange(0, 1000);
    s.progress->setMaximumWidth(220);
    s.progress->setVisible(false);
    s.cancel = new QPushButton("Cancel");
    s.cancel->setVisible(false);
    s.cancel->setToolTip("Stop the run (Esc)");
    s.status_engine = new QLabel("Engine: this computer");
    s.status_engine->setToolTip("Where runs happen (File > Connect to Engine…, Ctrl+Shift+E)");
    statusBar()->addWidget(s.status_stage, 1);
    statusBar()->addPermanentWidget(s.status_engine);
    statusBar()->addPermanentWidget(s.progress);
    statusBar()->addPermanentWidget(s.cancel);
    for (QLabel* l : {s.status_device, s.status_tokens, s.status_time, s.status_memory}) {
        l->setMinimumWidth(90);
        statusBar()->addPermanentWidget(l);
    }
    connect(s.cancel, &QPushButton::clicked, this, &MainWindow::cancelRun);
}

// The run controller's jobs to the progress, the status bar and the session.
void MainWindow::connectRunController() {
    State& s = *state_;
    RunController* c = s.controller;
    connect(c, &RunController::started, this,
            [this](const QString& what) { state_->status_stage->setText(what + "…"); });
    connect(c, &RunController::jobStarted, this, [this] {
        state_->progress_value = 0;
        state_->progress->setValue(0);
    });
    connect(c, &RunController::progress, this, [this](double fraction, const QString& stage) {
        // One bar per job: a stage that starts over (a what-if's second pass) does not move
        // it back.
        State& st = *state_;
        st.progress_value = std::max(st.progress_value, static_cast<int>(fraction * 1000));
        st.progress->setValue(st.progress_value);
        st.status_stage->setText(stage);
        if (st.measuring) st.whatif->setMeasuring(true, fraction);
    });
    connect(c, &RunController::busyChanged, this, [this](bool busy) {
        state_->progress->setVisible(busy);
        state_->cancel->setVisible(busy);
        if (busy) {
            state_->progress_value = 0;
            state_->progress->setValue(0);
        }
        if (!busy && state_->whatif_running) {
            state_->whatif_running = false;
            state_->whatif->setRunning(false);
        }
        if (!busy && state_->measuring) {
            state_->measuring = false;
            state_->whatif->setMeasuring(false);
        }
        if (!busy) updateStatus();
    });
    connect(c, &RunController::runFinished, this, [this](ProfilePtr profile, RunInfo info) {
        state_->session->setBase(std::move(profile), {}, info);
        state_->status_stage->setText("Run finished");
    });
    connect(c, &RunController::explained, this, [this](ExplanationPtr explanation) {
        State& st = *state_;
        // Only for the base it was made from (a new run may have come in between).
        const ProfilePtr& base = st.session->base();
        if (!base || explanation->lens.token >= base->num_tokens()) return;
        st.session->setExplanation(std::move(explanation));
        st.lens_dock->show();
        st.lens_dock->raise();
        st.status_stage->setText("Explained");
    });
    connect(c, &RunController::oracleFinished, this, [this](ProfilePtr profile) {
        State& st = *state_;
        const ProfilePtr& base = st.session->base();
        if (!base || !profile || profile->token_ids != base->token_ids) return;
        st.session->updateBase(std::move(profile));
        st.layers_dock->show();
        st.layers_dock->raise();
        st.status_stage->setText("Routing oracle finished");
    });
    connect(c, &RunController::whatIfFinished, this,
            [this](ProfilePtr variant, ComparisonPtr comparison) {
                state_->session->setVariant(std::move(variant), std::move(comparison));
                state_->status_stage->setText("What-if finished");
            });
    connect(c, &RunController::ttftMeasured, this,
            [this](ProfilePtr variant, ComparisonPtr comparison) {
                State& st = *state_;
                st.measuring = false;
                st.whatif->setMeasuring(false);
                // Only for the variant still shown (a newer what-if replaces it).
                if (st.session->variant() == variant) {
                    st.session->setVariant(std::move(variant), std::move(comparison));
                    st.status_stage->setText("TTFT measured");
                }
            });
    connect(s.whatif, &WhatIfView::measureTtftRequested, this, [this](int repeats) {
        State& st = *state_;
        if (!st.session->variant() || !st.session->comparison() || st.measuring) return;
        st.measuring = true;
        st.whatif->setMeasuring(true, 0.0);
        st.controller->startMeasureTtft(st.session->variant(), st.session->comparison(), repeats);
    });
    connect(c, &RunController::engineChanged, this,
            [this](const QString& where, bool remote, const QStringList& models) {
                State& st = *state_;
                st.remote = remote;
                st.engine_models = models;
                st.status_engine->setText(remote ? "Engine: " + where
                                                 : "Engine: this computer (" + where + ")");
                if (remote && !where.endsWith("(connection lost)")) {
                    st.status_stage->setText("Connected to " + where);
                }
            });
    connect(c, &RunController::failed, this, [this](const QString& message) {
        state_->status_stage->setText("Failed");
        QMessageBox::critical(this, "L2A Studio", message);
    });
    connect(c, &RunController::cancelled, this, [this] {
        state_->status_stage->setText(
            state_->session->base() ? "Cancelled; the views show the previous run" : "Cancelled");
        updateTitle();
        updateStatus();
    });
}

// What-if options, debounced, start a what-if run; a new base run updates title and notice.
void MainWindow::connectWhatIf() {
    State& s = *state_;
    s.whatif_timer = new QTimer(this);
    s.whatif_timer->setSingleShot(true);
    s.whatif_timer->setInterval(kWhatIfDebounceMs);
    connect(s.session, &Session::whatIfOptionsChanged, s.whatif_timer, qOverload<>(&QTimer::start));
    connect(s.whatif_timer, &QTimer::timeout, this, [this] {
        State& st = *state_;
        if (!st.session->base()) return;
        if (st.session->whatIfOptions() == st.session->base()->options) {
            st.session->clearVariant();
            return;
        }
        st.whatif_running = true;
        st.whatif->setRunning(true);
        st.controller->startWhatIf(st.session->whatIfOptions());
    });
    connect(s.session, &Session::baseChanged, this, [this] {
        updateStatus();
        updateTitle();
        updateNotice();
        updateLensActions();
    });
    connect(s.selection, &Selection::tokenChanged, this, &MainWindow::updateLensActions);
}

// The saved window layout and run options, then the status of what is loaded.
void MainWindow::restoreSettings() {
    State& s = *state_;
    s.default_state = saveState();
    QSettings settings;
    restoreGeometry(settings.value("window/geometry").toByteArray());
    // The default layout's sizes wait for the window's size (see showEvent).
    s.apply_default_sizes = !restoreState(settings.value("window/state").toByteArray());
    // A limit saved by an earlier version under the old key was its 4096 default nearly always:
    // dropped, so that the whole document runs.
    settings.remove(kOldMaxTokensKey);
    s.max_tokens->setValue(settings.value(kMaxTokensKey, 0).toInt());
    s.threads->setValue(settings.value("run/threads", 0).toInt());
    // A saved device this machine no longer has (a GPU build moved to a laptop) stays "cpu".
    s.device->setCurrentText(settings.value("run/device", "cpu").toString());
    s.backend->setCurrentText(settings.value("run/backend", "reference").toString());
    s.routing->setCurrentText(settings.value("run/routing", "learned").toString());
    s.fraction->setValue(settings.value("run/fraction", 0.2).toDouble());
    s.threshold->setValue(settings.value("run/threshold", 0.0).toDouble());
    updateRunOptionChoices();
    updateRecent();
    updateStatus();
}

MainWindow::~MainWindow() = default;

Session* MainWindow::session() const { return state_->session; }
Selection* MainWindow::selection() const { return state_->selection; }
RunController* MainWindow::controller() const { return state_->controller; }
DocumentView* MainWindow::documentView() const { return state_->document; }
RoutingMapView* MainWindow::routingMapView() const { return state_->map; }
LayersView* MainWindow::layersView() const { return state_->layers; }
TimelineView* MainWindow::timelineView() const { return state_->timeline; }
WhatIfView* MainWindow::whatIfView() const { return state_->whatif; }
LensView* MainWindow::lensView() const { return state_->lens; }

void MainWindow::explainSelectedToken() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    const qint64 token = s.selection->token();
    if (!p || !p->model.is_l2a || token < 0 || token >= p->num_tokens()) return;
    const int layer = std::clamp(s.selection->layer(), 0, static_cast<int>(p->num_layers) - 1);
    s.status_stage->setText(QString("Explaining token %1 in layer %2…").arg(token).arg(layer));
    s.controller->explainToken(token, layer);
}

void MainWindow::runRoutingOracle() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    if (!p || !p->model.is_l2a) return;
    s.status_stage->setText("Starting the routing oracle…");
    s.controller->runOracle(kDefaultMinDistantMass);
}

// Explain Token and Routing Oracle need an L2A base (and a token); disabled, they say why.
void MainWindow::updateLensActions() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    const QString why = !p                 ? "Run a document first"
                        : !p->model.is_l2a ? "A plain model: every token runs global attention, "
                                             "there is no router to explain or score"
                                           : QString();
    s.oracle->setEnabled(why.isEmpty());
    s.oracle->setToolTip(why.isEmpty() ? "Compute every token's distant mass in every layer (one "
                                         "more run) and score each layer's router against it"
                                       : why);
    const bool token = s.selection->token() >= 0;
    s.explain->setEnabled(why.isEmpty() && token);
    s.explain->setToolTip(!why.isEmpty() ? why
                          : !token       ? "Select a token first (click it in the document or "
                                           "the routing map)"
                                         : "Show where the selected token's global attention goes "
                                           "in the selected layer");
}

void MainWindow::runNow() {
    State& s = *state_;
    RunRequest request;
    if (!s.model_dir.isEmpty()) request.model_dir = to_path(s.model_dir);
    if (!s.document_path.isEmpty()) request.document = to_path(s.document_path);
    request.options.device = s.device->currentText().toStdString();
    request.options.backend = s.backend->currentText().toStdString();
    request.options.max_tokens = s.max_tokens->value();
    const QString routing = s.routing->currentText();
    const double f = s.fraction->value();
    request.options.routing = routing == "learned"  ? RoutingPolicy{RoutingKind::Learned, 0.0}
                              : routing == "global" ? RoutingPolicy{RoutingKind::Global, 0.0}
                              : routing == "local"  ? RoutingPolicy{RoutingKind::Local, 0.0}
                              : routing == "random" ? RoutingPolicy{RoutingKind::Random, f}
                                                    : RoutingPolicy{RoutingKind::Top, f};
    if (s.threshold->value() > 0) request.options.threshold = s.threshold->value();
    request.threads = s.threads->value();
    s.whatif_timer->stop();
    s.controller->startRun(request);
    // The title keeps naming what the views show until the run finishes; the status bar says
    // what is running now.
    const QString document =
        s.document_path.isEmpty() ? "demo document" : QFileInfo(s.document_path).fileName();
    const QString model = s.model_dir.isEmpty() ? "demo model" : QFileInfo(s.model_dir).fileName();
    s.status_stage->setText(QString("Starting a run of %1 on %2…").arg(document, model));
    s.status_device->setText(s.device->currentText());
    s.status_tokens->setText(
        request.options.max_tokens > 0
            ? QString("≤ %1 tokens").arg(count_text(request.options.max_tokens))
            : QString("whole document"));
    s.status_time->setText("running");
}

void MainWindow::runWholeDocument() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    const RunInfo& info = s.session->baseInfo();
    // Past the model's context only when the whole document is longer than it; otherwise the
    // "whole document" setting (which stops at the context) is enough.
    if (p && info.max_positions > 0 && p->tokens_before_truncation > info.max_positions) {
        s.max_tokens->setValue(static_cast<int>(
            std::min<std::int64_t>(p->tokens_before_truncation, s.max_tokens->maximum())));
    } else {
        s.max_tokens->setValue(0);
    }
    s.notice->hide();
    runNow();
}

QString MainWindow::shortcutsText() {
    const std::pair<const char*, const char*> keys[] = {
        {"F5", "Run the document"},
        {"Esc", "Cancel the run"},
        {"Ctrl+O", "Open a document"},
        {"Ctrl+Shift+O", "Open a model folder"},
        {"Ctrl+Shift+E", "Connect to an engine (a GPU server)"},
        {"Ctrl+Shift+P", "Open a profile"},
        {"Ctrl+S", "Save the profile"},
        {"Ctrl+E", "Export an HTML report"},
        {"Ctrl+R", "Reset the what-if"},
        {"X", "Explain the selected token (its attention lens)"},
        {"Ctrl+Q", "Quit"},
    };
    QString html = "<table cellspacing='0' cellpadding='3'>";
    for (const auto& [key, action] : keys) {
        html +=
            QString("<tr><td><b>%1</b></td><td>&nbsp;&nbsp;</td><td>%2</td></tr>").arg(key, action);
    }
    html +=
        "</table><p>Routing map and timeline: the wheel zooms, dragging pans, a double-click "
        "shows everything, a click selects.</p>";
    return html;
}

void MainWindow::updateTitle() {
    const ProfilePtr& p = state_->session->base();
    if (!p) {
        setWindowTitle("L2A Studio");
    } else if (!state_->session->baseFile().isEmpty()) {
        setWindowTitle(QFileInfo(state_->session->baseFile()).fileName() + " — L2A Studio");
    } else {
        setWindowTitle(QString("%1 — %2 — L2A Studio").arg(document_name(*p), model_name(*p)));
    }
}

void MainWindow::updateNotice() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    const RunInfo& info = s.session->baseInfo();
    QStringList lines;
    bool cut = false;
    if (p && p->tokens_before_truncation > p->num_tokens()) {
        cut = true;
        const QString why =
            info.cut_by == "context"
                ? QString("the model's context is %1 tokens (max_position_embeddings)")
                      .arg(count_text(info.max_positions))
            : p->options.max_tokens > 0
                ? QString("max tokens is %1").arg(count_text(p->options.max_tokens))
                : QString("the run that made this profile was limited");
        lines << QString(
                     "This run covers only the first %1 of the %2 tokens of %3: %4. The "
                     "loss and the routing are of that part only.")
                     .arg(count_text(p->num_tokens()), count_text(p->tokens_before_truncation),
                          document_name(*p), why);
    }
    if (p && info.beyond_context) {
        lines << QString(
                     "%1 tokens are more than the model's max_position_embeddings (%2): "
                     "positions past it are outside what the model was trained for.")
                     .arg(count_text(p->num_tokens()), count_text(info.max_positions));
    }
    s.notice_text->setText(lines.join("\n"));
    s.notice_whole->setVisible(cut);
    s.notice->setVisible(!lines.isEmpty());
}

void MainWindow::cancelRun() { state_->controller->cancel(); }

void MainWindow::openModelFolder(const QString& dir) {
    QString path = dir;
    if (state_->remote) {
        // A folder on the engine, by its name under the engine's --models.
        if (path.isEmpty()) {
            bool ok = false;
            path = QInputDialog::getItem(this, "Model on the engine",
                                         "Model folder on the engine (under its --models):",
                                         state_->engine_models, 0, true, &ok);
            if (!ok || path.isEmpty()) return;
        }
        state_->model_dir = path;
        runNow();
        return;
    }
    if (path.isEmpty()) {
        path = QFileDialog::getExistingDirectory(
            this, "Model folder (config.json, *.safetensors, tokenizer.json)");
        if (path.isEmpty()) return;
    }
    if (!QFileInfo(path + "/config.json").exists()) {
        QMessageBox::critical(this, "Cannot open the model",
                              path + ": not a model folder (it has no config.json)");
        return;
    }
    state_->model_dir = path;
    addRecent(path);
    runNow();
}

void MainWindow::connectEngine(const QString& url, const QString& token_file_in,
                               const QString& tls_ca_file_in) {
    State& s = *state_;
    // Remembered and read as absolute paths: a relative one means nothing in a later session.
    const auto absolute = [](const QString& path) {
        return path.isEmpty() ? path : QFileInfo(path).absoluteFilePath();
    };
    const QString token_file = absolute(token_file_in);
    const QString tls_ca_file = absolute(tls_ca_file_in);
    if (!url.isEmpty()) {
        QSettings settings;
        QStringList recent = settings.value("engines/recent").toStringList();
        recent.removeAll(url);
        recent.prepend(url);
        while (recent.size() > 8) recent.removeLast();
        settings.setValue("engines/recent", recent);
        const QString key = QString(url).replace('/', '|');
        settings.setValue("engines/token_file/" + key, token_file);
        settings.setValue("engines/tls_ca_file/" + key, tls_ca_file);
    }
    s.status_engine->setText(url.isEmpty() ? "Engine: this computer"
                                           : "Engine: connecting to " + url + "…");
    s.controller->connectEngine({url, token_file, tls_ca_file});
}

void MainWindow::connectEngineDialog() {
    QDialog dialog(this);
    dialog.setWindowTitle("Connect to Engine");
    auto* form = new QFormLayout(&dialog);
    auto* url = new QComboBox;
    url->setObjectName("engineUrl");
    url->setEditable(true);
    url->addItems(QSettings().value("engines/recent").toStringList());
    url->setMinimumWidth(420);
    url->setToolTip(
        "tcp://HOST:PORT or tls://HOST:PORT: an `l2a serve` listening there\n"
        "ssh://[USER@]HOST[:PORT][/PATH/TO/l2a]: starts `l2a serve` on HOST through your ssh\n"
        "unix:PATH: a server on this machine's socket");
    // A file's path with a Browse… button beside it.
    struct FileRow {
        QLineEdit* path;
        QPushButton* browse;
        QHBoxLayout* layout;
    };
    const auto file_row = [&dialog](const char* name, const QString& placeholder,
                                    const QString& title, const QString& filter) {
        FileRow row{new QLineEdit, new QPushButton("Browse…"), new QHBoxLayout};
        row.path->setObjectName(name);
        row.path->setPlaceholderText(placeholder);
        row.layout->addWidget(row.path, 1);
        row.layout->addWidget(row.browse);
        QLineEdit* path = row.path;
        connect(row.browse, &QPushButton::clicked, &dialog, [&dialog, path, title, filter] {
            const QString file = QFileDialog::getOpenFileName(&dialog, title, {}, filter);
            if (!file.isEmpty()) path->setText(file);
        });
        return row;
    };
    const FileRow token = file_row(
        "engineTokenFile", "the server's --token-file (not needed for ssh://)", "Token file", {});
    // tls:// only: the certificate authority that signed the server's certificate (empty: the
    // system's authorities).
    const FileRow ca =
        file_row("engineTlsCa", "tls:// with a private authority: its PEM certificate",
                 "Certificate authority", "PEM certificates (*.pem *.crt);;All files (*)");
    const auto remembered = [&] {
        const QString key = url->currentText().trimmed().replace('/', '|');
        token.path->setText(QSettings().value("engines/token_file/" + key).toString());
        ca.path->setText(QSettings().value("engines/tls_ca_file/" + key).toString());
        const bool tls = url->currentText().trimmed().startsWith("tls://");
        ca.path->setEnabled(tls);
        ca.browse->setEnabled(tls);
    };
    remembered();
    connect(url, &QComboBox::currentTextChanged, &dialog, remembered);
    form->addRow("Engine:", url);
    form->addRow("Token file:", token.layout);
    form->addRow("Certificate authority:", ca.layout);
    auto* note = new QLabel(
        "Start one on the GPU server with <code>l2a serve --models DIR --token-file F "
        "--listen 0.0.0.0:7787</code>, or use <code>ssh://server</code> to start it through "
        "ssh. Runs, what-ifs and profiles then come from there.");
    note->setWordWrap(true);
    form->addRow(note);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    form->addRow(buttons);
    if (dialog.exec() != QDialog::Accepted || url->currentText().trimmed().isEmpty()) return;
    const QString chosen = url->currentText().trimmed();
    connectEngine(chosen, token.path->text().trimmed(),
                  chosen.startsWith("tls://") ? ca.path->text().trimmed() : QString());
}

QString MainWindow::engineStatus() const { return state_->status_engine->text(); }

void MainWindow::openDocument(const QString& path_in) {
    QString path = path_in;
    if (path.isEmpty()) {
        path = QFileDialog::getOpenFileName(
            this, "Document", {}, "Text and Markdown (*.txt *.md *.markdown);;All files (*)");
        if (path.isEmpty()) return;
    }
    if (!QFileInfo(path).isFile()) {
        QMessageBox::critical(this, "Cannot open the document", path + ": no such file");
        return;
    }
    state_->document_path = path;
    addRecent(path);
    runNow();
}

void MainWindow::openProfile(const QString& path_in) {
    QString path = path_in;
    if (path.isEmpty()) {
        path = QFileDialog::getOpenFileName(this, "Profile", {}, "L2A profiles (*.l2a)");
        if (path.isEmpty()) return;
    }
    try {
        auto profile = std::make_shared<const Profile>(load_profile(to_path(path)));
        state_->controller->cancel();
        state_->controller->adoptBase(profile);
        state_->session->setBase(profile, path);
        addRecent(path);
    } catch (const std::exception& e) {
        QMessageBox::critical(this, "Cannot open the profile", naming_file(path, e));
    }
}

void MainWindow::saveProfile(const QString& path_in) {
    if (!state_->session->base()) {
        QMessageBox::information(this, "Nothing to save", "Run a document first.");
        return;
    }
    QString path = path_in;
    if (path.isEmpty()) {
        const QString name =
            state_->session->baseFile().isEmpty()
                ? default_file_stem(*state_->session, state_->document_path) + ".l2a"
                : state_->session->baseFile();
        path = QFileDialog::getSaveFileName(this, "Save profile", name, "L2A profiles (*.l2a)");
        if (path.isEmpty()) return;
    }
    try {
        save_profile(*state_->session->base(), to_path(path));
        state_->session->setBaseFile(path);
        updateTitle();
        addRecent(path);
        state_->status_stage->setText("Saved " + path);
    } catch (const std::exception& e) {
        QMessageBox::critical(this, "Cannot save the profile", naming_file(path, e));
    }
}

bool MainWindow::exportTo(const QString& format, const QString& path_in) {
    const ProfilePtr& base = state_->session->base();
    if (!base) {
        QMessageBox::information(this, "Nothing to export", "Run a document first.");
        return false;
    }
    QString path = path_in;
    if (path.isEmpty()) {
        const QString filter = format == "html"     ? "HTML report (*.html)"
                               : format == "pdf"    ? "PDF report (*.pdf)"
                               : format == "csv"    ? "CSV tables (*.csv)"
                               : format == "chrome" ? "Chrome trace / Perfetto (*.json)"
                                                    : "JSON (*.json)";
        // Named after what was run, so exports of several documents do not overwrite each other.
        const QString stem = default_file_stem(*state_->session, state_->document_path);
        const QString name = format == "chrome" ? stem + ".trace.json" : stem + "." + format;
        path = QFileDialog::getSaveFileName(this, "Export " + format, name, filter);
        if (path.isEmpty()) return false;
    }
    // Reports compare with the variant when it is a run of the same tokens.
    const ProfilePtr& variant = state_->session->variant();
    const Profile* compare =
        variant && variant->token_ids == base->token_ids && variant->num_layers == base->num_layers
            ? variant.get()
            : nullptr;
    try {
        const std::filesystem::path out = to_path(path);
        if (format == "html") {
            export_html(*base, out, compare);
        } else if (format == "pdf") {
            export_pdf(*base, out, compare);
        } else if (format == "json") {
            write_text_atomically(out, profile_to_json(*base) + "\n");
        } else if (format == "csv") {
            export_csv(*base, out);
        } else if (format == "chrome") {
            export_chrome_trace(*base, out);
        } else {
            throw Error("export: unknown format " + format.toStdString());
        }
        state_->status_stage->setText("Exported " + path);
        return true;
    } catch (const std::exception& e) {
        QMessageBox::critical(this, "Export failed", naming_file(path, e));
        return false;
    }
}

void MainWindow::addRecent(const QString& path) {
    QSettings settings;
    QStringList files = settings.value("recent").toStringList();
    files.removeAll(path);
    files.prepend(path);
    while (files.size() > kMaxRecent) files.removeLast();
    settings.setValue("recent", files);
    updateRecent();
}

void MainWindow::updateRecent() {
    State& s = *state_;
    // Not QMenu::clear(): the list changes from inside a recent file's own action (opening it
    // moves it to the top), and that action must outlive its triggered() signal.
    for (QAction* action : s.recent->actions()) {
        s.recent->removeAction(action);
        action->deleteLater();
    }
    QSettings settings;
    const QStringList files = settings.value("recent").toStringList();
    for (const QString& path : files) {
        s.recent->addAction(path, this, [this, path] {
            const QFileInfo info(path);
            if (!info.exists()) {
                QMessageBox::warning(this, "Recent files",
                                     path + ": no longer exists; removed from the list");
                QSettings st;
                QStringList list = st.value("recent").toStringList();
                list.removeAll(path);
                st.setValue("recent", list);
                updateRecent();
            } else if (info.isDir()) {
                openModelFolder(path);
            } else if (path.endsWith(".l2a")) {
                openProfile(path);
            } else {
                openDocument(path);
            }
        });
    }
    s.recent->setEnabled(!files.isEmpty());
}

void MainWindow::updateStatus() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    if (!p) {
        s.status_device->setText("cpu");
        s.status_tokens->clear();
        s.status_time->clear();
        s.status_memory->setText(bytes_text(resident_bytes()) + " RSS");
        return;
    }
    s.status_device->setText(
        QString::fromStdString(p->device.empty() ? p->options.device : p->device));
    s.status_tokens->setText(QString("%1 tokens").arg(p->num_tokens()));
    s.status_time->setText(QString("%1 s").arg(p->wall_seconds, 0, 'f', 3));
    s.status_memory->setText(p->peak_device_bytes > 0
                                 ? bytes_text(p->peak_device_bytes) + " GPU peak"
                                 : bytes_text(resident_bytes()) + " RSS");
    s.status_memory->setToolTip(
        QString("KV cache of this run: %1").arg(bytes_text(p->metrics.kv_bytes_total)));
}

void MainWindow::closeEvent(QCloseEvent* event) {
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    settings.setValue(kMaxTokensKey, state_->max_tokens->value());
    settings.setValue("run/threads", state_->threads->value());
    settings.setValue("run/device", state_->device->currentText());
    settings.setValue("run/backend", state_->backend->currentText());
    settings.setValue("run/routing", state_->routing->currentText());
    settings.setValue("run/fraction", state_->fraction->value());
    settings.setValue("run/threshold", state_->threshold->value());
    state_->controller->cancel();
    event->accept();
}

void MainWindow::showEvent(QShowEvent* event) {
    QMainWindow::showEvent(event);
    if (state_->apply_default_sizes) {
        state_->apply_default_sizes = false;
        QTimer::singleShot(0, this, [this] { state_->default_sizes(); });
    }
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    const QList<QUrl> urls = event->mimeData()->urls();
    if (!urls.isEmpty() && urls.front().isLocalFile()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    for (const QUrl& url : event->mimeData()->urls()) {
        const QString path = url.toLocalFile();
        const QFileInfo info(path);
        if (info.isDir()) {
            openModelFolder(path);
        } else if (path.endsWith(".l2a")) {
            openProfile(path);
        } else if (info.isFile()) {
            openDocument(path);
        }
        break;  // one file at a time: each starts a run
    }
    event->acceptProposedAction();
}

}  // namespace l2a::ui
