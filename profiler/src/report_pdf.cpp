// The report as PDF through Qt: one flowing QTextDocument (headings, tables, the document text
// with its highlighted passages) whose charts are inline objects painted as vectors, laid out
// on A4 pages by the document's own pagination, with a footer on every page. The content comes
// from report_model.h, as the HTML report's does.
#include "l2a/profiler/report_pdf.h"

#include <QAbstractTextDocumentLayout>
#include <QBuffer>
#include <QByteArray>
#include <QColor>
#include <QFont>
#include <QFontDatabase>
#include <QFontMetricsF>
#include <QGuiApplication>
#include <QImage>
#include <QPageLayout>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QTextBlock>
#include <QTextBlockFormat>
#include <QTextCharFormat>
#include <QTextCursor>
#include <QTextDocument>
#include <QTextFrame>
#include <QTextLength>
#include <QTextObjectInterface>
#include <QTextTable>
#include <QTextTableFormat>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/profiler/report_painter.h"
#include "report_model.h"

namespace l2a {
namespace {

// Page geometry in points (1/72 inch): A4 with 15 mm margins and a footer line.
constexpr double kPageWidthPt = 595.28;
constexpr double kPageHeightPt = 841.89;
constexpr double kMarginPt = 42.5;
constexpr double kFooterPt = 18.0;
constexpr int kLayoutDpi = 1200;  // the document's layout resolution, for every device

constexpr std::size_t kDocumentBudgetBytes = 20000;  // a PDF page holds less than a screen
constexpr std::int64_t kContextTokens = 40;
constexpr std::int64_t kMapColumns = 600;
constexpr std::int64_t kMapRows = 64;
constexpr std::size_t kMissedTokens = 8;  // the routing oracle's missed tokens shown

const QColor kInk(0x1d, 0x23, 0x30);
const QColor kMuted(0x5a, 0x63, 0x72);
const QColor kGrid(0xe3, 0xe7, 0xee);
const QColor kPanel(0xf1, 0xf3, 0xf7);
const QColor kBar(0x3b, 0x6f, 0xb6);
const QColor kRouted(0xc0, 0x39, 0x2b);
const QColor kBetter(0x2e, 0x8b, 0x57);
const QColor kWarn(0x8a, 0x4b, 0x00);
const QColor kPhaseColors[kNumPhases] = {QColor(0x7a, 0xa6, 0xd8), QColor(0xf2, 0xb8, 0x4b),
                                         QColor(0xd9, 0x53, 0x4f), QColor(0x8b, 0xbf, 0x72)};
const QColor kMarkColors[4] = {QColor(0xfd, 0xe9, 0xc4), QColor(0xfb, 0xd3, 0x8d),
                               QColor(0xf6, 0xad, 0x55), QColor(0xed, 0x89, 0x36)};

QString q(const std::string& text) {
    return QString::fromUtf8(text.data(), qsizetype(text.size()));
}

// ---- charts as inline text objects -----------------------------------------------------------

constexpr int kChartObjectType = QTextFormat::UserObject + 1;
constexpr int kChartIndexProperty = QTextFormat::UserProperty + 1;

// A chart paints into a rectangle whose unit is the point; `height_pt` tall, the text width wide.
struct Chart {
    double height_pt = 0.0;
    std::function<void(QPainter&, const QRectF&)> paint;
};

class ChartObjects : public QObject, public QTextObjectInterface {
    Q_OBJECT
    Q_INTERFACES(QTextObjectInterface)
public:
    explicit ChartObjects(std::vector<Chart> charts) : charts_(std::move(charts)) {}
    std::vector<Chart>& charts() { return charts_; }

    QSizeF intrinsicSize(QTextDocument* doc, int, const QTextFormat& format) override {
        const Chart& chart =
            charts_.at(static_cast<std::size_t>(format.intProperty(kChartIndexProperty)));
        const double scale = points_to_pixels(doc);
        return {doc->pageSize().width() - 2 * doc->documentMargin() - 1, chart.height_pt * scale};
    }

    void drawObject(QPainter* painter, const QRectF& rect, QTextDocument* doc, int,
                    const QTextFormat& format) override {
        const Chart& chart =
            charts_.at(static_cast<std::size_t>(format.intProperty(kChartIndexProperty)));
        const double scale = points_to_pixels(doc);
        painter->save();
        painter->translate(rect.topLeft());
        painter->scale(scale, scale);
        painter->setRenderHint(QPainter::Antialiasing, false);
        chart.paint(*painter, QRectF(0, 0, rect.width() / scale, rect.height() / scale));
        painter->restore();
    }

private:
    static double points_to_pixels(QTextDocument* doc) {
        const QPaintDevice* device = doc->documentLayout()->paintDevice();
        return device ? device->logicalDpiY() / 72.0 : 1.0;
    }
    std::vector<Chart> charts_;
};

// Chart text. The charts paint in points through a scaled painter, but a font's point size is
// turned into pixels with the device's resolution before the painter's scale applies: a 7 pt
// font drawn that way came out 7 x (dpi / 72) points tall (29 pt at 300 dpi). So the text is
// drawn unscaled, into the box mapped to device pixels, with the font at its true point size.
constexpr double kChartTextPt = 7.5;

QFont chart_font(double size_pt) {
    QFont font("DejaVu Sans");
    font.setStyleHint(QFont::SansSerif);
    font.setPointSizeF(size_pt);
    return font;
}

// The width of `text` in points at `size_pt`, on the painter's device.
double text_width_pt(QPainter& p, const QString& text, double size_pt = kChartTextPt) {
    const double dpi = p.device()->logicalDpiX();
    return QFontMetricsF(chart_font(size_pt), p.device()).horizontalAdvance(text) * 72.0 / dpi;
}

void chart_text(QPainter& p, const QRectF& box, Qt::Alignment align, const QString& text,
                double size_pt = kChartTextPt, const QColor& color = kMuted) {
    const QRectF device_box = p.transform().mapRect(box);
    p.save();
    p.resetTransform();
    p.setFont(chart_font(size_pt));
    p.setPen(color);
    p.drawText(device_box, align | Qt::TextDontClip, text);
    p.restore();
}

Chart sparsity_chart(const Profile& profile) {
    auto bars = std::make_shared<std::vector<report::LayerBar>>(report::layer_bars(profile));
    return {150.0, [bars](QPainter& p, const QRectF& r) {
                const double left = 34, top = 6, height = r.height() - 30;
                const double plot_w = r.width() - left - 4;
                const double bar = plot_w / static_cast<double>(bars->size());
                const double axis = report::bar_axis_max(*bars);
                for (int tick = 0; tick <= 4; ++tick) {
                    const double y = top + height * (1.0 - tick / 4.0);
                    p.setPen(QPen(kGrid, 0.5));
                    p.drawLine(QPointF(left, y), QPointF(r.width(), y));
                    chart_text(p, QRectF(0, y - 5, left - 4, 10), Qt::AlignRight | Qt::AlignVCenter,
                               QString::fromStdString(report::axis_label(axis, tick)));
                }
                const std::size_t label_every = std::max<std::size_t>(1, bars->size() / 16);
                for (const report::LayerBar& b : *bars) {
                    const double f =
                        std::isfinite(b.fraction) ? std::clamp(b.fraction / axis, 0.0, 1.0) : 0.0;
                    const double x = left + bar * static_cast<double>(b.layer);
                    if (b.pruned) {
                        p.fillRect(QRectF(x + bar * 0.1, top, bar * 0.8, height),
                                   QColor(0xec, 0xef, 0xf4));
                    }
                    p.fillRect(
                        QRectF(x + bar * 0.1, top + height * (1.0 - f), bar * 0.8, height * f),
                        kBar);
                    if (static_cast<std::size_t>(b.layer) % label_every == 0) {
                        chart_text(p, QRectF(x, top + height + 2, bar, 10), Qt::AlignHCenter,
                                   QString::number(b.layer) + (b.pruned ? "P" : ""));
                    }
                }
                chart_text(p, QRectF(left, r.height() - 11, plot_w, 10), Qt::AlignHCenter,
                           "layer (P: pruned)");
            }};
}

Chart routing_chart(const Profile& profile) {
    auto grid =
        std::make_shared<report::RoutingGrid>(report::routing_grid(profile, kMapColumns, kMapRows));
    const double cell_h = std::clamp(300.0 / static_cast<double>(grid->rows), 3.0, 10.0);
    const std::int64_t last_token = profile.num_tokens() - 1;
    return {cell_h * static_cast<double>(grid->rows) + 16,
            [grid, cell_h, last_token](QPainter& p, const QRectF& r) {
                const double left = 28, plot_w = r.width() - left;
                const double map_h = cell_h * static_cast<double>(grid->rows);
                const double cell_w = plot_w / static_cast<double>(grid->columns);
                p.fillRect(QRectF(left, 0, plot_w, map_h), kPanel);
                for (std::int64_t row = 0; row < grid->rows; ++row) {
                    const std::uint8_t* level = grid->level.data() + row * grid->columns;
                    const double y = cell_h * static_cast<double>(row);
                    for (std::int64_t col = 0; col < grid->columns;) {
                        const int v = level[col];
                        std::int64_t end = col + 1;
                        while (end < grid->columns && level[end] == v) ++end;
                        if (v > 0) {
                            QColor c = kRouted;
                            c.setAlphaF(static_cast<float>(report::level_opacity(v)));
                            p.fillRect(QRectF(left + cell_w * static_cast<double>(col), y,
                                              cell_w * static_cast<double>(end - col), cell_h),
                                       c);
                        }
                        col = end;
                    }
                    if (grid->rows <= 32 || row % 4 == 0) {
                        chart_text(
                            p, QRectF(0, y, left - 4, cell_h), Qt::AlignRight | Qt::AlignVCenter,
                            QString::number(grid->first_layer[static_cast<std::size_t>(row)]));
                    }
                }
                chart_text(p, QRectF(left, map_h + 3, plot_w, 10), Qt::AlignLeft, "token 0");
                chart_text(p, QRectF(left, map_h + 3, plot_w, 10), Qt::AlignRight,
                           "token " + QString::number(last_token));
            }};
}

Chart timing_chart(const TimelineSummary& summary) {
    auto s = std::make_shared<TimelineSummary>(summary);
    const double most = report::timing_scale(summary);
    return {160.0, [s, most](QPainter& p, const QRectF& r) {
                // Rows under the plot: layer numbers, the axis title, the legend.
                const double top = 6, height = r.height() - 44;
                double left = 0;
                for (int tick = 0; tick <= 4; ++tick) {
                    left = std::max(left, text_width_pt(p, q(report::timing_tick(most, tick))));
                }
                left += 8;
                const double plot_w = r.width() - left - 4;
                const double bar = plot_w / static_cast<double>(s->layers.size());
                for (int tick = 0; tick <= 4; ++tick) {
                    const double y = top + height * (1.0 - tick / 4.0);
                    p.setPen(QPen(kGrid, 0.5));
                    p.drawLine(QPointF(left, y), QPointF(r.width(), y));
                    chart_text(p, QRectF(0, y - 5, left - 4, 10), Qt::AlignRight | Qt::AlignVCenter,
                               q(report::timing_tick(most, tick)));
                }
                const std::size_t label_every = std::max<std::size_t>(1, s->layers.size() / 16);
                for (std::size_t i = 0; i < s->layers.size(); ++i) {
                    const LayerTiming& layer = s->layers[i];
                    const double x = left + bar * static_cast<double>(i) + bar * 0.1;
                    double y = top + height;
                    for (int phase = 0; phase < kNumPhases; ++phase) {
                        const double seconds = layer.phases[phase].seconds;
                        if (seconds <= 0) continue;
                        const double bar_h = height * seconds / most;
                        y -= bar_h;
                        p.fillRect(QRectF(x, y, bar * 0.8, bar_h), kPhaseColors[phase]);
                    }
                    if (i % label_every == 0) {
                        chart_text(p, QRectF(x - bar * 0.1, top + height + 2, bar, 10),
                                   Qt::AlignHCenter, QString::number(layer.layer));
                    }
                }
                chart_text(p, QRectF(left, top + height + 13, plot_w, 10), Qt::AlignHCenter,
                           "layer");
                // The legend on its own row, each entry as wide as its name.
                double lx = left;
                for (int phase = 0; phase < kNumPhases; ++phase) {
                    p.fillRect(QRectF(lx, r.height() - 8.5, 7, 7), kPhaseColors[phase]);
                    const QString name = phase_name(kLayerPhases[phase]);
                    const double w = text_width_pt(p, name);
                    chart_text(p, QRectF(lx + 10, r.height() - 10, w + 2, 10),
                               Qt::AlignLeft | Qt::AlignVCenter, name);
                    lx += 10 + w + 16;
                }
            }};
}

Chart nll_chart(std::shared_ptr<const report::Comparison> c) {
    return {110.0, [c](QPainter& p, const QRectF& r) {
                // Marks for bins with tokens beyond the scale sit just outside the plot.
                const double top = 7, bottom = r.height() - 21;
                const double mid = (top + bottom) / 2, half = (bottom - top) / 2;
                const QString plus = "+" + q(format_fixed(c->nll_scale, 3));
                const QString minus = "-" + q(format_fixed(c->nll_scale, 3));
                const double left = std::max(text_width_pt(p, plus), text_width_pt(p, minus)) + 8;
                const double plot_w = r.width() - left;
                p.setPen(QPen(QColor(0x8a, 0x93, 0xa3), 0.5));
                p.drawLine(QPointF(left, mid), QPointF(r.width(), mid));
                const double cell_w = plot_w / static_cast<double>(c->nll_bins.size());
                for (std::size_t col = 0; col < c->nll_bins.size() && c->nll_scale > 0; ++col) {
                    const double x = left + cell_w * static_cast<double>(col);
                    const double w = std::max(cell_w, 0.3);
                    if (c->nll_beyond[col] & report::kBeyondAbove) {
                        p.fillRect(QRectF(x, 1, std::max(w, 1.2), 4), QColor(0x7b, 0x24, 0x1c));
                    }
                    if (c->nll_beyond[col] & report::kBeyondBelow) {
                        p.fillRect(QRectF(x, bottom + 2, std::max(w, 1.2), 4),
                                   QColor(0x1e, 0x5c, 0x3a));
                    }
                    const double d = c->nll_bins[col];
                    if (d == 0.0) continue;
                    const double bar_h = half * std::abs(d) / c->nll_scale;
                    p.fillRect(QRectF(x, d > 0 ? mid - bar_h : mid, w, bar_h),
                               d > 0 ? kRouted : kBetter);
                }
                chart_text(p, QRectF(0, top - 5, left - 4, 10), Qt::AlignRight | Qt::AlignVCenter,
                           plus);
                chart_text(p, QRectF(0, mid - 5, left - 4, 10), Qt::AlignRight | Qt::AlignVCenter,
                           "0");
                chart_text(p, QRectF(0, bottom - 5, left - 4, 10),
                           Qt::AlignRight | Qt::AlignVCenter, minus);
                QString axis = q(c->nll_axis);
                if (c->nll_beyond_bins > 0) {
                    axis += " (clipped at ±" + q(format_fixed(c->nll_scale, 3)) + ")";
                }
                chart_text(p, QRectF(left, r.height() - 11, plot_w, 10), Qt::AlignHCenter, axis);
            }};
}

// ---- the document ----------------------------------------------------------------------------

class ReportBuilder {
public:
    ReportBuilder(QTextDocument& doc, std::vector<Chart>& charts)
        : doc_(doc), charts_(charts), cursor_(&doc) {
        QFont base("DejaVu Sans");
        base.setStyleHint(QFont::SansSerif);
        base.setPointSizeF(9.0);
        doc_.setDefaultFont(base);
        body_.setForeground(kInk);
        body_.setFontPointSize(9.0);
        note_ = body_;
        note_.setForeground(kMuted);
        note_.setFontPointSize(8.0);
        mono_ = body_;
        mono_.setFontFamilies({"DejaVu Sans Mono", "monospace"});
        mono_.setFontFixedPitch(true);
        mono_.setFontPointSize(8.0);
    }

    void title(const std::string& text, const std::string& sub) {
        QTextCharFormat f = body_;
        f.setFontPointSize(18.0);
        f.setFontWeight(QFont::Bold);
        cursor_.setBlockFormat(spaced(0, 2));
        cursor_.insertText(q(text), f);
        paragraph(sub, note_);
    }

    void heading(const std::string& text) {
        cursor_.insertBlock(spaced(14, 4));
        keep_with_next_.push_back({cursor_.block().blockNumber(), kKeepLines});
        QTextCharFormat f = body_;
        f.setFontPointSize(13.0);
        f.setFontWeight(QFont::DemiBold);
        cursor_.insertText(q(text), f);
    }

    void subheading(const std::string& text) {
        cursor_.insertBlock(spaced(8, 3));
        keep_with_next_.push_back({cursor_.block().blockNumber(), kKeepLines});
        QTextCharFormat f = body_;
        f.setFontPointSize(10.5);
        f.setFontWeight(QFont::DemiBold);
        cursor_.insertText(q(text), f);
    }

    void paragraph(const std::string& text, const QTextCharFormat& format) {
        cursor_.insertBlock(spaced(2, 4));
        cursor_.insertText(q(text), format);
    }
    void note(const std::string& text) { paragraph(text, note_); }
    void warning(const std::string& text) {
        QTextCharFormat f = note_;
        f.setForeground(kWarn);
        paragraph(text, f);
    }

    void chart(Chart chart) {
        // A heading right above a chart stays with all of it.
        if (!keep_with_next_.empty() &&
            keep_with_next_.back().block == cursor_.block().blockNumber()) {
            keep_with_next_.back().points = chart.height_pt + 12;
        }
        charts_.push_back(std::move(chart));
        cursor_.insertBlock(spaced(4, 6));
        QTextCharFormat f;
        f.setObjectType(kChartObjectType);
        f.setProperty(kChartIndexProperty, static_cast<int>(charts_.size() - 1));
        cursor_.insertText(QString(QChar::ObjectReplacementCharacter), f);
    }

    // A grid table: header row, then rows; first column left-aligned, the rest right-aligned
    // but for `text_column`, left-aligned in the document's monospace font.
    void table(const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows, bool first_is_label = true,
               int text_column = -1) {
        cursor_.insertBlock(spaced(6, 2));
        QTextTableFormat format;
        format.setBorderStyle(QTextFrameFormat::BorderStyle_Solid);
        format.setBorder(0.5);
        format.setBorderBrush(QColor(0xd8, 0xdd, 0xe6));
        format.setCellPadding(3.5);
        format.setCellSpacing(0);
        format.setBorderCollapse(true);
        format.setTopMargin(6);  // clear of a chart's legend right above
        format.setHeaderRowCount(header.empty() ? 0 : 1);
        const int columns = static_cast<int>(header.empty() ? rows.front().size() : header.size());
        const int total = static_cast<int>(rows.size()) + (header.empty() ? 0 : 1);
        QTextTable* table = cursor_.insertTable(total, columns, format);
        int r = 0;
        auto fill = [&](const std::vector<std::string>& cells, bool is_header) {
            for (int c = 0; c < columns && c < static_cast<int>(cells.size()); ++c) {
                QTextTableCell cell = table->cellAt(r, c);
                if (is_header) {
                    QTextCharFormat background;
                    background.setBackground(kPanel);
                    cell.setFormat(background);
                }
                QTextCursor at = cell.firstCursorPosition();
                QTextBlockFormat block;
                block.setAlignment((c == 0 && first_is_label) || c == text_column ? Qt::AlignLeft
                                                                                  : Qt::AlignRight);
                at.setBlockFormat(block);
                QTextCharFormat f = c == text_column && !is_header ? mono_ : note_;
                f.setForeground(kInk);
                if (is_header || (c == 0 && first_is_label)) f.setFontWeight(QFont::DemiBold);
                at.insertText(q(cells[static_cast<std::size_t>(c)]), f);
            }
            ++r;
        };
        if (!header.empty()) fill(header, true);
        for (const auto& row : rows) fill(row, false);
        cursor_.movePosition(QTextCursor::End);
    }

    // Label/value rows without borders.
    void facts(const report::Rows& rows) {
        cursor_.insertBlock(spaced(2, 2));
        QTextTableFormat format;
        format.setBorder(0);
        format.setCellPadding(1.2);
        format.setCellSpacing(0);
        format.setColumnWidthConstraints({QTextLength(QTextLength::PercentageLength, 24),
                                          QTextLength(QTextLength::PercentageLength, 76)});
        QTextTable* table = cursor_.insertTable(static_cast<int>(rows.size()), 2, format);
        for (int r = 0; r < static_cast<int>(rows.size()); ++r) {
            QTextCharFormat label = note_;
            label.setFontWeight(QFont::DemiBold);
            label.setForeground(QColor(0x39, 0x41, 0x4f));
            table->cellAt(r, 0).firstCursorPosition().insertText(
                q(rows[static_cast<std::size_t>(r)].first), label);
            QTextCharFormat value = note_;
            value.setForeground(kInk);
            table->cellAt(r, 1).firstCursorPosition().insertText(
                q(rows[static_cast<std::size_t>(r)].second), value);
        }
        cursor_.movePosition(QTextCursor::End);
    }

    void legend(const std::vector<std::pair<QColor, std::string>>& entries) {
        cursor_.insertBlock(spaced(0, 4));
        for (const auto& [color, label] : entries) {
            QTextCharFormat swatch = note_;
            swatch.setForeground(color);
            cursor_.insertText(QString(QChar(0x25A0)) + " ", swatch);
            cursor_.insertText(q(label) + "    ", note_);
        }
    }

    void document(const report::DocumentExcerpt& excerpt) {
        QTextBlockFormat block = spaced(0, 0);
        block.setLeftMargin(4);
        block.setRightMargin(4);
        block.setBackground(QColor(0xfa, 0xfb, 0xfc));
        cursor_.insertBlock(block);
        for (const report::DocumentPiece& piece : excerpt.pieces) {
            QTextCharFormat f = mono_;
            if (piece.kind == report::DocumentPiece::Kind::Mark) {
                f.setBackground(kMarkColors[std::clamp(piece.level, 1, 4) - 1]);
                f.setToolTip(q(piece.title));
            } else if (piece.kind == report::DocumentPiece::Kind::Gap) {
                f = note_;
                f.setFontItalic(true);
            }
            // Line breaks of the text (LF, CRLF or CR) become paragraph breaks of the same style.
            QString text = q(piece.text);
            text.replace("\r\n", "\n");
            text.replace('\r', '\n');
            const QStringList lines = text.split('\n');
            for (qsizetype i = 0; i < lines.size(); ++i) {
                if (i > 0) cursor_.insertBlock(block);
                if (piece.kind == report::DocumentPiece::Kind::Gap) {
                    cursor_.insertBlock(block);
                    cursor_.insertText(lines[i], f);
                    cursor_.insertBlock(block);
                } else {
                    cursor_.insertText(lines[i], f);
                }
            }
        }
    }

    const QTextCharFormat& body() const { return body_; }

    // Headings, and how much of what follows must fit on their page (points).
    struct Keep {
        int block = 0;
        double points = 0.0;
    };
    const std::vector<Keep>& keepWithNext() const { return keep_with_next_; }

private:
    static constexpr double kKeepLines = 48.0;

    static QTextBlockFormat spaced(double top, double bottom) {
        QTextBlockFormat block;
        block.setTopMargin(top);
        block.setBottomMargin(bottom);
        return block;
    }

    QTextDocument& doc_;
    std::vector<Chart>& charts_;
    QTextCursor cursor_;
    QTextCharFormat body_, note_, mono_;
    std::vector<Keep> keep_with_next_;
};

// One run's oracle scores: the per-layer table and the missed tokens.
void oracle_tables(ReportBuilder& b, const report::Oracle& o, const std::string& missed_title) {
    std::vector<std::vector<std::string>> rows;
    for (const report::OracleLayer& layer : o.layers) rows.push_back(report::oracle_cells(layer));
    b.table(report::oracle_header(), rows);
    b.subheading(missed_title);
    b.note(o.missed_note);
    if (o.missed.empty()) return;
    rows.clear();
    for (const report::MissedToken& token : o.missed) rows.push_back(report::missed_cells(token));
    b.table(report::missed_header(), rows, true, 3);
}

void build_report(ReportBuilder& b, const Profile& p, const Profile* compare) {
    const TimelineSummary summary = summarize_timeline(p);
    b.title("L2A Studio report", report::subtitle(p));

    b.heading("Run");
    for (const report::Rows& rows : report::run_tables(p, summary)) b.facts(rows);

    b.heading("Global attention per layer");
    if (p.num_layers == 0) {
        b.note("The model has no layers.");
    } else {
        b.chart(sparsity_chart(p));
        b.note("Share of tokens that ran global attention in each layer; grey: a pruned layer.");
    }

    b.heading("Routing map");
    if (p.num_tokens() == 0 || p.num_layers == 0) {
        b.note("No tokens or layers to show.");
    } else {
        b.chart(routing_chart(p));
        b.note(report::routing_grid(p, kMapColumns, kMapRows).note);
    }

    const report::Oracle oracle = report::oracle(p, kMissedTokens);
    if (oracle.present) {
        b.heading("Routing oracle");
        b.note(oracle.explanation);
        const report::Oracle variant =
            compare ? report::oracle(*compare, kMissedTokens) : report::Oracle{};
        if (compare) b.note(report::oracle_scope(oracle, compare, variant));
        oracle_tables(b, oracle, "Missed tokens");
        if (variant.present) {
            b.subheading("Variant: routing oracle");
            oracle_tables(b, variant, "Variant: missed tokens");
        }
    }

    b.heading("Time per layer and phase");
    if (p.ranges.empty() || report::timing_scale(summary) <= 0.0 || summary.layers.empty()) {
        b.note("This run recorded no layer timings.");
    } else {
        b.chart(timing_chart(summary));
        std::vector<std::vector<std::string>> rows;
        for (const report::StageRow& row : report::stage_rows(summary)) {
            rows.push_back({row.name, format_duration(row.seconds), format_percent(row.share),
                            std::to_string(row.kernels)});
        }
        b.table({"stage", "time", "share of run", "kernels"}, rows);
    }

    b.heading("What-if comparison");
    if (!compare) {
        b.note(
            "No comparison in this report. Give a second profile of the same document (for "
            "example a pruned run) with --compare FILE to see the change in NLL per token "
            "and in routing per layer.");
    } else {
        auto c = std::make_shared<const report::Comparison>(report::comparison(p, *compare, 600));
        b.paragraph("Base: this report's run. Variant: " + c->variant_description, b.body());
        if (!c->not_comparable.empty()) {
            std::string why;
            for (const std::string& d : c->not_comparable) why += (why.empty() ? "" : "; ") + d;
            b.warning("⚠ The two runs ran differently (" + why +
                      "): their times are shown side by side, not as a change.");
        }
        std::vector<std::vector<std::string>> rows;
        for (const report::MetricRow& m : c->metrics) {
            rows.push_back({m.name, format_fixed(m.base, m.digits),
                            format_fixed(m.variant, m.digits),
                            m.not_comparable.empty() ? format_fixed(m.variant - m.base, m.digits)
                                                     : "⚠ " + m.not_comparable});
        }
        b.table({"metric", "base", "variant", "change"}, rows);
        b.subheading("NLL change per token (variant - base)");
        b.chart(nll_chart(c));
        if (!c->nll_clip_note.empty()) b.warning(c->nll_clip_note);
        b.note(c->nll_note);
        b.subheading("Routing per layer");
        rows.clear();
        for (const report::LayerChange& row : c->layers) {
            rows.push_back({std::to_string(row.layer), format_percent(row.base),
                            format_percent(row.variant), format_points(row.variant - row.base),
                            std::to_string(row.changed), row.pruned});
        }
        b.table({"layer", "base global", "variant global", "change", "tokens decided differently",
                 "pruned"},
                rows);
    }

    b.heading("Document");
    const report::DocumentExcerpt excerpt =
        report::document_excerpt(p, kDocumentBudgetBytes, kContextTokens);
    if (!excerpt.has_text) {
        b.note("The profile holds token ids only (no text).");
    } else {
        b.note(excerpt.note);
        b.document(excerpt);
    }
}

// The laid-out report for one paint device: pages of the text document plus footers.
class ReportPages {
public:
    // The layout is made once, at kLayoutDpi, whatever the device: laid out for the device
    // itself, font metrics rounded to its pixels moved lines and page breaks from one
    // resolution to the next. Painting scales it to the device.
    ReportPages(const Profile& profile, const Profile* compare)
        : probe_(1, 1, QImage::Format_RGB32), objects_(std::vector<Chart>{}) {
        report::check_reportable(profile, compare);
        const int dpm = static_cast<int>(std::lround(kLayoutDpi / 0.0254));
        probe_.setDotsPerMeterX(dpm);
        probe_.setDotsPerMeterY(dpm);
        dpi_ = probe_.logicalDpiY();
        doc_.documentLayout()->setPaintDevice(&probe_);
        doc_.setDocumentMargin(0);
        doc_.setUseDesignMetrics(true);
        doc_.documentLayout()->registerHandler(kChartObjectType, &objects_);
        ReportBuilder builder(doc_, objects_.charts());
        build_report(builder, profile, compare);
        const double px = dpi_ / 72.0;
        text_rect_ = QRectF(kMarginPt * px, kMarginPt * px, (kPageWidthPt - 2 * kMarginPt) * px,
                            (kPageHeightPt - 2 * kMarginPt - kFooterPt) * px);
        doc_.setPageSize(text_rect_.size());
        // QTextDocument has no "keep with next": a heading that would end a page without what
        // follows it starts the next page instead. In order, since each break moves the rest.
        // A changed block format makes Qt (6.4) re-lay the document out lazily from there, and
        // that partial layout left later blocks unplaced (zero height: the NLL chart, the
        // second table's heading and the whole document section vanished from the PDF). So
        // after each break the whole document is laid out again before the next measurement,
        // and once more at the end.
        for (const ReportBuilder::Keep& keep : builder.keepWithNext()) {
            const QTextBlock block = doc_.findBlockByNumber(keep.block);
            const QRectF box = doc_.documentLayout()->blockBoundingRect(block);
            const double page_h = text_rect_.height();
            const double offset = std::fmod(box.top(), page_h);
            if (offset > 0 && offset + box.height() + keep.points * px > page_h) {
                QTextBlockFormat format = block.blockFormat();
                format.setPageBreakPolicy(QTextFormat::PageBreak_AlwaysBefore);
                QTextCursor(block).setBlockFormat(format);
                relayout();
            }
        }
        relayout();
        footer_ = "L2A Studio report · " + q(profile.document_path);
    }

    int pageCount() { return doc_.pageCount(); }

    // Every block of the laid-out document, with its box in points relative to its page.
    void relayout() {
        doc_.markContentsDirty(0, doc_.characterCount());
        (void)doc_.documentLayout()->documentSize();
    }

    void paint(QPainter& painter, int page) {
        const int pages = pageCount();
        if (page < 0 || page >= pages) {
            fail("report", "page " + std::to_string(page) + " does not exist (the report has " +
                               std::to_string(pages) + ")");
        }
        const double device_dpi = painter.device()->logicalDpiY();
        const double px = device_dpi / 72.0;
        painter.save();
        painter.scale(device_dpi / dpi_, device_dpi / dpi_);
        painter.translate(text_rect_.left(), text_rect_.top() - page * text_rect_.height());
        const QRectF clip(0, page * text_rect_.height(), text_rect_.width(), text_rect_.height());
        QAbstractTextDocumentLayout::PaintContext context;
        context.clip = clip;
        context.palette.setColor(QPalette::Text, kInk);
        painter.setClipRect(clip);
        doc_.documentLayout()->draw(&painter, context);
        painter.restore();

        painter.save();
        QFont font("DejaVu Sans");
        font.setPointSizeF(7.5);
        painter.setFont(font);
        painter.setPen(kMuted);
        const QRectF footer(kMarginPt * px, (kPageHeightPt - kMarginPt - kFooterPt + 6) * px,
                            (kPageWidthPt - 2 * kMarginPt) * px, (kFooterPt - 6) * px);
        painter.setPen(QPen(kGrid, px * 0.5));
        painter.drawLine(footer.topLeft(), footer.topRight());
        painter.setPen(kMuted);
        painter.drawText(footer, Qt::AlignLeft | Qt::AlignBottom,
                         painter.fontMetrics().elidedText(footer_, Qt::ElideMiddle,
                                                          static_cast<int>(footer.width() * 0.75)));
        painter.drawText(footer, Qt::AlignRight | Qt::AlignBottom,
                         QString("page %1 of %2").arg(page + 1).arg(pages));
        painter.restore();
    }

private:
    QImage probe_;  // the layout's paint device: fonts and sizes at kLayoutDpi
    QTextDocument doc_;
    ChartObjects objects_;
    QRectF text_rect_;
    QString footer_;
    int dpi_ = 72;
};

// Qt needs a QGuiApplication for fonts. A command-line run has none: start a headless one and
// keep it for the rest of the process (destroying and recreating it is not supported well).
void ensure_gui_application() {
    if (auto* app = QCoreApplication::instance()) {
        if (!qobject_cast<QGuiApplication*>(app)) {
            fail("PDF export", "needs a QGuiApplication (fonts), but a QCoreApplication runs");
        }
        return;
    }
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    // A command-line tool should not print Qt's notes about its own session set-up (no
    // XDG_RUNTIME_DIR and the like); real problems still reach stderr.
    qInstallMessageHandler([](QtMsgType type, const QMessageLogContext&, const QString& text) {
        if (type == QtDebugMsg || type == QtInfoMsg) return;
        if (type == QtWarningMsg && text.startsWith("QStandardPaths:")) return;
        std::fprintf(stderr, "l2a: Qt: %s\n", text.toLocal8Bit().constData());
    });
    static int argc = 1;
    static char name[] = "l2a";
    static char* argv[] = {name, nullptr};
    static QGuiApplication* app = new QGuiApplication(argc, argv);
    (void)app;
}

}  // namespace

bool pdf_export_available() { return true; }

void export_pdf(const Profile& profile, const std::filesystem::path& path, const Profile* compare) {
    ensure_gui_application();
    QByteArray bytes;
    {
        QBuffer buffer(&bytes);
        buffer.open(QIODevice::WriteOnly);
        QPdfWriter writer(&buffer);
        writer.setResolution(300);
        writer.setPageLayout(
            QPageLayout(QPageSize(QPageSize::A4), QPageLayout::Portrait, QMarginsF(0, 0, 0, 0)));
        writer.setTitle("L2A Studio report: " + q(profile.document_path));
        writer.setCreator("L2A Studio");
        ReportPages pages(profile, compare);
        QPainter painter;
        if (!painter.begin(&writer)) fail(path.string(), "cannot start the PDF writer");
        const int count = pages.pageCount();
        for (int page = 0; page < count; ++page) {
            if (page > 0) writer.newPage();
            pages.paint(painter, page);
        }
        painter.end();
    }
    if (bytes.isEmpty()) fail(path.string(), "the PDF writer produced no output");
    write_file_atomically(path, [&](std::FILE* f) {
        if (std::fwrite(bytes.constData(), 1, static_cast<std::size_t>(bytes.size()), f) !=
            static_cast<std::size_t>(bytes.size())) {
            fail(path.string(), "short write");
        }
    });
}

int report_page_count(const Profile& profile, const Profile* compare) {
    ensure_gui_application();
    ReportPages pages(profile, compare);
    return pages.pageCount();
}

QImage render_report_page(const Profile& profile, const Profile* compare, int page, double dpi) {
    ensure_gui_application();
    if (!(dpi >= 20 && dpi <= 1200)) fail("report", "resolution outside 20..1200 dpi");
    const int w = static_cast<int>(std::lround(kPageWidthPt / 72.0 * dpi));
    const int h = static_cast<int>(std::lround(kPageHeightPt / 72.0 * dpi));
    QImage image(w, h, QImage::Format_RGB32);
    const int dpm = static_cast<int>(std::lround(dpi / 0.0254));
    image.setDotsPerMeterX(dpm);
    image.setDotsPerMeterY(dpm);
    image.fill(Qt::white);
    ReportPages pages(profile, compare);
    QPainter painter(&image);
    painter.setRenderHint(QPainter::TextAntialiasing);
    pages.paint(painter, page);
    return image;
}

}  // namespace l2a

#include "report_pdf.moc"
