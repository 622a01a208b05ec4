// The run summary: what was run and what it measured, shown after every run whether or not a
// what-if was made. Document (tokens run of tokens in it, and why it was cut), model, where it
// ran (device, backend, dtype, threads), mean NLL and perplexity, the share of token-layers
// that ran global attention, KV memory with and without L2A (with a line on why L2A's is not
// smaller), and the run's wall time.
#pragma once

#include <QString>
#include <QWidget>
#include <memory>

namespace l2a::ui {

class Session;

class SummaryView : public QWidget {
    Q_OBJECT
public:
    explicit SummaryView(Session* session, QWidget* parent = nullptr);
    ~SummaryView() override;

    // The value shown for a row ("document", "model", "placement", "loss", "perplexity",
    // "global", "kv", "time"), as displayed; "" when there is no run. For tests.
    QString shownValue(const QString& row) const;
    // The height that shows every row without clipping at the current width.
    int preferredHeight() const;

signals:
    void preferredHeightChanged(int height);

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void refresh();
    void fitHeight();

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
