// A QOpenGLWidget that hosts one Dear ImGui context: Qt input events become ImGui input, and
// ImGui's draw lists are rendered with the widget's own OpenGL functions (no second GL loader).
// Subclasses draw one full-widget ImGui window per frame in drawFrame().
#pragma once

#include <QElapsedTimer>
#include <QOpenGLExtraFunctions>
#include <QOpenGLWidget>
#include <deque>

struct ImGuiContext;

namespace l2a::ui {

class ImGuiWidget : public QOpenGLWidget, protected QOpenGLExtraFunctions {
    Q_OBJECT
public:
    explicit ImGuiWidget(QWidget* parent = nullptr);
    ~ImGuiWidget() override;

    // CPU time of the last frame (ImGui build + GL submission + glFinish when measuring), ms.
    double lastFrameMs() const { return last_frame_ms_; }
    // Renders `frames` frames back to back (context current, no event loop) and returns the
    // mean frame time in ms; each frame waits for the GL to finish. For benchmarks.
    double measureFrames(int frames);

protected:
    // The subclass's ImGui content, with this widget's context current, inside NewFrame/Render.
    virtual void drawFrame() = 0;
    // GL resources of the subclass; called once the context exists (and again after it is lost).
    virtual void initializeResources() {}
    virtual void releaseResources() {}

    void initializeGL() override;
    void resizeGL(int w, int h) override;
    void paintGL() override;

    void mousePressEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void keyReleaseEvent(QKeyEvent* event) override;
    void leaveEvent(QEvent* event) override;

    ImGuiContext* imguiContext() const { return context_; }

private:
    void renderDrawData();

    struct Renderer;
    ImGuiContext* context_ = nullptr;
    Renderer* renderer_ = nullptr;
    QElapsedTimer clock_;
    double last_frame_ms_ = 0.0;
    double last_time_ = 0.0;
    struct ButtonEdge {
        int button;
        bool down;
    };
    std::deque<ButtonEdge> button_edges_;  // mouse button changes not yet seen by a frame
};

}  // namespace l2a::ui
