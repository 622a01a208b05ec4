// The studio's main window: menus, toolbar with the run options, dockable views sharing one
// Selection, status bar (device, tokens, wall time, memory), settings and layout in QSettings.
#pragma once

#include <QMainWindow>
#include <QString>
#include <memory>

namespace l2a::ui {

class RunController;
class Selection;
class Session;
class DocumentView;
class RoutingMapView;
class LayersView;
class LensView;
class TimelineView;
class WhatIfView;

struct StudioOptions {
    QString model_dir;         // empty: the demo model
    QString document;          // empty: the demo document
    QString profile;           // open this .l2a instead of running
    bool run_on_start = true;  // the first start runs the default at once
    QString engine;            // a remote engine to run on (--engine URL); empty: this computer
    QString token_file;        // its token (--token-file)
    QString tls_ca_file;       // tls://: the certificate authority to trust (--tls-ca)
};

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(const StudioOptions& options = {}, QWidget* parent = nullptr);
    ~MainWindow() override;

    Session* session() const;
    Selection* selection() const;
    RunController* controller() const;
    DocumentView* documentView() const;
    RoutingMapView* routingMapView() const;
    LayersView* layersView() const;
    TimelineView* timelineView() const;
    WhatIfView* whatIfView() const;
    LensView* lensView() const;

public slots:
    void runNow();     // F5
    void cancelRun();  // Esc
    // Runs every token of the document (past the model's context when it is longer); the
    // notice over a cut run offers it.
    void runWholeDocument();
    void openModelFolder(const QString& dir);  // Ctrl+Shift+O (dialog when empty)
    void openDocument(const QString& path);    // Ctrl+O
    void openProfile(const QString& path);     // Ctrl+Shift+P ... (dialog when empty)
    void saveProfile(const QString& path);     // Ctrl+S
    // format: "html", "pdf", "json", "csv", "chrome". Errors show a dialog naming the file.
    bool exportTo(const QString& format, const QString& path);
    // Runs happen on the engine at `url` from now on (empty: this computer); Ctrl+Shift+E opens
    // a dialog (recent engines, token file, certificate authority for tls://). The status bar
    // says where runs happen.
    void connectEngine(const QString& url, const QString& token_file,
                       const QString& tls_ca_file = {});
    void connectEngineDialog();
    // The status bar's engine text ("Engine: this computer (cpu)").
    QString engineStatus() const;
    // Run > Explain Token (X): the attention lens of the selected token in the selected layer
    // (layer 0 when none is selected), shown in the document and the lens panel.
    void explainSelectedToken();
    // Run > Routing Oracle: every token's distant mass in every layer; the layer table gains
    // the oracle's columns.
    void runRoutingOracle();

public:
    // The Help > Keyboard Shortcuts text (rich text).
    static QString shortcutsText();

protected:
    void closeEvent(QCloseEvent* event) override;
    void showEvent(QShowEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    // The constructor's parts, in the order it calls them.
    void createViews();
    void createDocks();
    void createRunOptionsBar();
    void createMenus();
    void createFileMenu();
    void createStatusBar();
    void connectRunController();
    void connectWhatIf();
    void restoreSettings();
    void updateLensActions();

    void updateRunOptionChoices();
    void updateTitle();
    void updateNotice();
    void addRecent(const QString& path);
    void updateRecent();
    void updateStatus();

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
