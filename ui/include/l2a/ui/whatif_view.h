// What-if controls and results. Controls: routing policy, threshold, "reset to base"; pruning
// is edited in the Layers view. Every edit changes the session's what-if options (the main
// window re-runs from the first changed layer). Results: Δ mean NLL and perplexity, KL(base ||
// variant) mean and max, top-1 agreement, KV memory (absolute, saved, relative to no L2A), TTFT
// predicted (live, from the base's timing model) and measured (on request: repeated full runs of
// both, median and spread); a per-layer comparison; for two opened profiles (no comparison) the
// side-by-side numbers they both hold.
#pragma once

#include <QWidget>
#include <memory>

class QHBoxLayout;
class QTableWidget;

namespace l2a::ui {

class Selection;
class Session;

class WhatIfView : public QWidget {
    Q_OBJECT
public:
    WhatIfView(Session* session, Selection* selection, QWidget* parent = nullptr);
    ~WhatIfView() override;

    // The value shown for a metric ("delta_nll", "perplexity", "kl_mean", "kl_max", "top1",
    // "kv_saved", "ttft_measured", "ttft_predicted"), as displayed; "" when none. For tests.
    QString shownValue(const QString& metric) const;
    // The height that shows the options, the status line and every metric of a comparison
    // without scrolling (the per-layer table under them may scroll), with or without a
    // comparison shown now. The main window lays out its right column with it.
    int resultsHeightHint() const;
    // Shows "running..." over the results while a what-if is on its way.
    void setRunning(bool running);
    // While the TTFT of base and variant is being measured: a progress bar (fraction of the
    // runs done) and the button disabled.
    void setMeasuring(bool measuring, double fraction = 0.0);

signals:
    // "Measure TTFT" was pressed: time `repeats` full runs of the base and of the variant.
    void measureTtftRequested(int repeats);

private:
    // The constructor's parts, in the order it calls them.
    QWidget* createOptions();
    QHBoxLayout* createStatusRow();
    QWidget* createComparisonPage();
    QTableWidget* createSideBySidePage();
    void nameWidgets();
    void connectControls();
    void connectSession();

    void applyEdits();
    void syncControls();
    void showResults();

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
