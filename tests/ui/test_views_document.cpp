// The document view on synthetic profiles: token geometry and hit testing agree, UTF-8 byte
// spans land on the right characters (multi-byte, and tokens that split a character), the
// shared selection scrolls (to the middle of the pane) and marks, clicks select, tooltips, tints,
// and a 128K-token text.
#include <QElapsedTimer>
#include <QFontMetricsF>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QSignalSpy>
#include <QtTest>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "l2a/ui/document_view.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"

using namespace l2a;
using namespace l2a::ui;

namespace {

// A profile whose tokens are the given UTF-8 pieces, one after the other.
std::shared_ptr<Profile> make_profile(const std::vector<std::string>& pieces, int layers) {
    auto p = std::make_shared<Profile>();
    p->model.is_l2a = true;
    p->model.num_layers = layers;
    p->model.sigmoid_temp = 1.0;
    p->num_layers = layers;
    for (std::size_t t = 0; t < pieces.size(); ++t) {
        p->token_begin.push_back(static_cast<std::uint32_t>(p->document_text.size()));
        p->document_text += pieces[t];
        p->token_end.push_back(static_cast<std::uint32_t>(p->document_text.size()));
        p->token_ids.push_back(static_cast<std::int32_t>(100 + t));
    }
    const std::size_t T = pieces.size();
    p->decisions.assign(static_cast<std::size_t>(layers) * T, 0);
    p->router_logits.assign(static_cast<std::size_t>(layers) * T, -4.0f);
    p->token_nll.assign(T, 1.0f);
    p->token_nll[0] = std::nanf("");
    return p;
}

const std::vector<std::string> kPieces = {"h",
                                          "\xC3\xA9",
                                          "llo",
                                          " w",
                                          "\xC3\xB6",
                                          "rld",
                                          " ",
                                          "\xF0\x9F",
                                          "\x98\x80",  // one emoji (U+1F600) split over two tokens
                                          " ok\n",
                                          "\xE6\x97\xA5\xE6\x9C\xAC",
                                          "\xE8\xAA\x9E",
                                          " end"};
constexpr qint64 kSpace = 6;
constexpr qint64 kEmojiA = 7, kEmojiB = 8;

class TestDocumentView : public QObject {
    Q_OBJECT

    std::unique_ptr<Session> session_;
    std::unique_ptr<Selection> selection_;
    std::unique_ptr<DocumentView> view_;

    QPlainTextEdit* text() const { return view_->findChild<QPlainTextEdit*>(); }

    QRect rectOf(qint64 token) {
        selection_->setToken(token);
        return view_->selectedTokenRect();
    }

    void show(std::shared_ptr<Profile> profile) {
        session_->setBase(std::move(profile));
        QCoreApplication::processEvents();
    }

private slots:
    void init() {
        session_ = std::make_unique<Session>();
        selection_ = std::make_unique<Selection>();
        view_ = std::make_unique<DocumentView>(session_.get(), selection_.get());
        view_->resize(640, 320);
        view_->show();
        QVERIFY(QTest::qWaitForWindowExposed(view_.get()));
    }
    void cleanup() {
        view_.reset();
        selection_.reset();
        session_.reset();
    }

    void multiByteTextMapsToTheRightCharacters() {
        auto p = make_profile(kPieces, 3);
        show(p);
        QCOMPARE(text()->toPlainText(), QString::fromUtf8(p->document_text.c_str()));
        const QFontMetricsF fm(text()->font());
        const QRect h = rectOf(0);
        const QRect o = rectOf(4);  // "ö"
        QVERIFY(!h.isEmpty());
        QVERIFY(!o.isEmpty());
        // "ö" starts after the 7 characters "héllo w" (8 bytes: counting bytes is off by one).
        QVERIFY2(std::abs(o.left() - h.left() -
                          fm.horizontalAdvance(QString::fromUtf8("héllo w"))) < 2.0,
                 qPrintable(QString("h at %1, ö at %2").arg(h.left()).arg(o.left())));
        QVERIFY(std::abs(o.width() - fm.horizontalAdvance(QString::fromUtf8("ö"))) < 2.0);
        // The second line: "日本" then "語" then " end".
        const QRect nihon = rectOf(10);
        const QRect go = rectOf(11);
        QVERIFY(nihon.top() > h.bottom());
        QCOMPARE(go.top(), nihon.top());
        QVERIFY(go.left() >= nihon.right());
        QCOMPARE(view_->tokenAt(go.center()), qint64(11));
        QCOMPARE(view_->tokenAt(nihon.center()), qint64(10));
    }

    void tokenAtAgreesWithSelectedTokenRect() {
        show(make_profile(kPieces, 3));
        for (qint64 t = 0; t < static_cast<qint64>(kPieces.size()); ++t) {
            const QRect r = rectOf(t);
            QVERIFY2(!r.isEmpty(), qPrintable(QString("token %1 has no rect").arg(t)));
            const qint64 hit = view_->tokenAt(r.center());
            if (t == kEmojiA || t == kEmojiB) {
                // Both halves of the split emoji cover the whole character.
                QVERIFY(hit == kEmojiA || hit == kEmojiB);
            } else {
                QCOMPARE(hit, t);
            }
        }
        QCOMPARE(rectOf(kEmojiA), rectOf(kEmojiB));
        selection_->setToken(-1);
        QVERIFY(view_->selectedTokenRect().isEmpty());
        // Far right of the first line, past its end: no token.
        QCOMPARE(view_->tokenAt(QPoint(text()->viewport()->width() - 3, rectOf(0).center().y())),
                 qint64(-1));
    }

    void splitCharacterTooltipShowsBytes() {
        show(make_profile(kPieces, 3));
        const QString tip = view_->tokenToolTip(kEmojiA);
        QVERIFY2(tip.contains("\\xf0\\x9f"), qPrintable(tip));
        QVERIFY(view_->tokenToolTip(-1).isEmpty());
        QVERIFY(view_->tokenToolTip(99).isEmpty());
    }

    void tooltipNamesTokenAndRoutedLayers() {
        auto p = make_profile(kPieces, 4);
        const std::size_t T = kPieces.size();
        p->decisions[0 * T + 5] = 1;  // "rld" routed in layers 0 and 2
        p->decisions[2 * T + 5] = 1;
        p->token_nll[5] = 2.5f;
        show(p);
        const QString tip = view_->tokenToolTip(5);
        QVERIFY2(tip.contains("\"rld\""), qPrintable(tip));
        QVERIFY2(tip.contains("2 of 4 layers"), qPrintable(tip));
        QVERIFY(tip.contains("id 105"));
        QVERIFY(tip.contains("NLL 2.5000"));
        QVERIFY(!tip.contains("what-if"));
        auto v = std::make_shared<Profile>(*p);
        v->token_nll[5] = 3.0f;
        session_->setVariant(v);
        QVERIFY2(view_->tokenToolTip(5).contains("+0.5000"), qPrintable(view_->tokenToolTip(5)));
        // Another token: not routed anywhere.
        QVERIFY(view_->tokenToolTip(2).contains("0 of 4 layers"));
    }

    void selectionElsewhereScrollsAndMarks() {
        std::vector<std::string> pieces;
        for (int i = 0; i < 600; ++i) pieces.push_back("line " + std::to_string(i) + "\n");
        show(make_profile(pieces, 2));
        QScrollBar* bar = text()->verticalScrollBar();
        QCOMPARE(bar->value(), 0);
        selection_->setToken(599);
        QCoreApplication::processEvents();
        QVERIFY(bar->value() > 0);
        const QRect r = view_->selectedTokenRect();
        QVERIFY(!r.isEmpty());
        QVERIFY(text()->viewport()->rect().contains(r.center()));
        QCOMPARE(view_->tokenAt(r.center()), qint64(599));
        selection_->setToken(0);
        QCOMPARE(bar->value(), 0);
        QCOMPARE(view_->tokenAt(view_->selectedTokenRect().center()), qint64(0));
    }

    // A token selected elsewhere lands in the middle of the pane, not at its edge; a click in
    // the document selects without moving the text.
    void selectedTokenIsCentred() {
        std::vector<std::string> pieces;
        for (int i = 0; i < 600; ++i) pieces.push_back("line " + std::to_string(i) + "\n");
        show(make_profile(pieces, 2));
        const int middle = text()->viewport()->height() / 2;
        const int line = text()->fontMetrics().lineSpacing();
        for (qint64 token : {300, 120, 450}) {
            selection_->setToken(token);
            QCoreApplication::processEvents();
            const QRect r = view_->selectedTokenRect();
            QVERIFY(!r.isEmpty());
            QVERIFY2(std::abs(r.center().y() - middle) <= line,
                     qPrintable(QString("token %1 at y %2, middle %3")
                                    .arg(token)
                                    .arg(r.center().y())
                                    .arg(middle)));
        }
        QScrollBar* bar = text()->verticalScrollBar();
        const int before = bar->value();
        const QPoint near_top(10, line / 2 + 2);
        const qint64 clicked = view_->tokenAt(near_top);
        QVERIFY(clicked >= 0);
        QTest::mouseClick(text()->viewport(), Qt::LeftButton, {}, near_top);
        QCOMPARE(selection_->token(), clicked);
        QCOMPARE(bar->value(), before);
    }

    void clickSelectsToken() {
        show(make_profile(kPieces, 3));
        const QRect r = rectOf(5);
        selection_->setToken(-1);
        QSignalSpy spy(selection_.get(), &Selection::tokenChanged);
        QTest::mouseClick(text()->viewport(), Qt::LeftButton, {}, r.center());
        QCOMPARE(selection_->token(), qint64(5));
        QCOMPARE(spy.count(), 1);
        QTest::mouseClick(text()->viewport(), Qt::LeftButton, {}, rectOf(10).center());
        QCOMPARE(selection_->token(), qint64(10));
    }

    void routerProbabilityTintFollowsSelectedLayer() {
        auto p = make_profile(kPieces, 2);
        const std::size_t T = kPieces.size();
        p->router_logits[0 * T + kSpace] = -12.0f;  // layer 0: probability ~0
        p->router_logits[1 * T + kSpace] = 12.0f;   // layer 1: ~1
        show(p);
        const QRect r = rectOf(kSpace);
        selection_->setToken(-1);
        view_->setTint(DocumentView::Tint::RouterProbability);
        QCOMPARE(view_->tint(), DocumentView::Tint::RouterProbability);
        auto pixel = [&] {
            QCoreApplication::processEvents();
            return text()->viewport()->grab().toImage().pixelColor(r.center());
        };
        selection_->setLayer(0);
        const QColor low = pixel();
        selection_->setLayer(1);
        const QColor high = pixel();
        QVERIFY2(high.red() - high.green() > 60,
                 qPrintable(QString("layer 1 tint %1").arg(high.name())));
        QVERIFY2(std::abs(low.red() - low.green()) < 20,
                 qPrintable(QString("layer 0 tint %1").arg(low.name())));
        // A plain model's NaN logits: no tint at all.
        for (float& z : p->router_logits) z = std::nanf("");
        p->model.is_l2a = false;
        show(p);
        QVERIFY(std::abs(pixel().red() - pixel().green()) < 20);
    }

    void lossChangeTintNeedsVariant() {
        auto p = make_profile(kPieces, 2);
        show(p);
        const QRect r = rectOf(kSpace);
        selection_->setToken(-1);
        view_->setTint(DocumentView::Tint::LossChange);
        auto pixel = [&] {
            QCoreApplication::processEvents();
            return text()->viewport()->grab().toImage().pixelColor(r.center());
        };
        const QColor none = pixel();
        auto v = std::make_shared<Profile>(*p);
        v->token_nll[kSpace] = 0.2f;  // better: green
        v->token_nll[2] = 1.5f;
        session_->setVariant(v);
        const QColor better = pixel();
        QVERIFY2(better.green() - better.red() > 40, qPrintable(better.name()));
        QVERIFY(none.green() - none.red() < 10);
        session_->clearVariant();
        QCOMPARE(pixel(), none);
    }

    void viewMadeAfterTheRunShowsIt() {
        auto p = make_profile(kPieces, 3);
        session_->setBase(p);
        selection_->setToken(4);
        DocumentView late(session_.get(), selection_.get());
        late.resize(640, 320);
        late.show();
        QVERIFY(QTest::qWaitForWindowExposed(&late));
        QCOMPARE(late.findChild<QPlainTextEdit*>()->toPlainText(),
                 QString::fromUtf8(p->document_text.c_str()));
        QCOMPARE(late.tokenAt(late.selectedTokenRect().center()), qint64(4));
    }

    void badSpansDoNotCrash() {
        auto p = make_profile({"ab", "cd", "ef"}, 2);
        p->token_begin[1] = 50;  // past the end
        p->token_end[1] = 60;
        p->token_end[2] = 1;   // before its begin
        p->decisions.clear();  // a plain model may store none
        p->router_logits.clear();
        show(p);
        for (qint64 t = 0; t < 3; ++t) {
            selection_->setToken(t);
            (void)view_->selectedTokenRect();
            QVERIFY(!view_->tokenToolTip(t).isEmpty());
        }
        view_->setTint(DocumentView::Tint::RouterProbability);
        text()->viewport()->grab();
        QCOMPARE(view_->tokenAt(rectOf(0).center()), qint64(0));
    }

    void manyTokensStayResponsive() {
        // 128K tokens, 16 a line.
        std::vector<std::string> pieces;
        pieces.reserve(131072);
        for (int i = 0; i < 131072; ++i) pieces.push_back(i % 16 == 15 ? " w\n" : " w");
        auto p = make_profile(pieces, 36);
        for (std::size_t i = 0; i < p->decisions.size(); i += 3) p->decisions[i] = 1;
        QElapsedTimer timer;
        timer.start();
        show(p);
        text()->viewport()->grab();
        const qint64 load_ms = timer.elapsed();
        timer.restart();
        for (int i = 0; i < 5; ++i) {
            selection_->setToken(20000 * i + 7);
            text()->viewport()->grab();
        }
        const qint64 jumps_ms = timer.elapsed();
        qInfo("128K tokens: shown in %lld ms, 5 jumps with repaint in %lld ms", load_ms, jumps_ms);
        QVERIFY2(load_ms < 15000, qPrintable(QString::number(load_ms)));
        QVERIFY2(jumps_ms < 5000, qPrintable(QString::number(jumps_ms)));
        QCOMPARE(view_->tokenAt(view_->selectedTokenRect().center()), qint64(80007));
    }
};

}  // namespace

QTEST_MAIN(TestDocumentView)
#include "test_views_document.moc"
