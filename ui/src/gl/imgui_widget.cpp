// Dear ImGui in a QOpenGLWidget: one context per widget, Qt events as ImGui input, and a small
// renderer on the widget's own GL functions (one program, one vertex/index buffer, the font atlas
// texture), so no second GL loader is involved.
#include "l2a/ui/imgui_widget.h"

#include <imgui.h>

#include <QKeyEvent>
#include <QMetaObject>
#include <QMouseEvent>
#include <QOpenGLBuffer>
#include <QOpenGLShaderProgram>
#include <QOpenGLVertexArrayObject>
#include <QWheelEvent>
#include <algorithm>
#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace l2a::ui {
namespace {

// ImGui 1.86 keeps key state in io.KeysDown[512]; Qt's special keys map to these slots.
constexpr int kKeyBase = 300;
struct KeySlot {
    int qt_key;
    ImGuiKey imgui_key;
};
constexpr KeySlot kKeys[] = {
    {Qt::Key_Tab, ImGuiKey_Tab},
    {Qt::Key_Left, ImGuiKey_LeftArrow},
    {Qt::Key_Right, ImGuiKey_RightArrow},
    {Qt::Key_Up, ImGuiKey_UpArrow},
    {Qt::Key_Down, ImGuiKey_DownArrow},
    {Qt::Key_PageUp, ImGuiKey_PageUp},
    {Qt::Key_PageDown, ImGuiKey_PageDown},
    {Qt::Key_Home, ImGuiKey_Home},
    {Qt::Key_End, ImGuiKey_End},
    {Qt::Key_Insert, ImGuiKey_Insert},
    {Qt::Key_Delete, ImGuiKey_Delete},
    {Qt::Key_Backspace, ImGuiKey_Backspace},
    {Qt::Key_Space, ImGuiKey_Space},
    {Qt::Key_Return, ImGuiKey_Enter},
    {Qt::Key_Escape, ImGuiKey_Escape},
    {Qt::Key_A, ImGuiKey_A},
    {Qt::Key_C, ImGuiKey_C},
    {Qt::Key_V, ImGuiKey_V},
    {Qt::Key_X, ImGuiKey_X},
    {Qt::Key_Y, ImGuiKey_Y},
    {Qt::Key_Z, ImGuiKey_Z},
};

int key_slot(int qt_key) {
    for (std::size_t i = 0; i < std::size(kKeys); ++i) {
        if (kKeys[i].qt_key == qt_key) return kKeyBase + static_cast<int>(i);
    }
    return -1;
}

const char* const kVertexShader = R"(#version 130
uniform mat4 projection;
in vec2 position;
in vec2 uv;
in vec4 colour;
out vec2 frag_uv;
out vec4 frag_colour;
void main() {
    frag_uv = uv;
    frag_colour = colour;
    gl_Position = projection * vec4(position, 0.0, 1.0);
})";

const char* const kFragmentShader = R"(#version 130
uniform sampler2D image;
in vec2 frag_uv;
in vec4 frag_colour;
out vec4 out_colour;
void main() {
    out_colour = frag_colour * texture(image, frag_uv);
})";

// Guards the current ImGui context around calls into one widget's context.
class ContextScope {
public:
    explicit ContextScope(ImGuiContext* context) : previous_(ImGui::GetCurrentContext()) {
        ImGui::SetCurrentContext(context);
    }
    ~ContextScope() { ImGui::SetCurrentContext(previous_); }

private:
    ImGuiContext* previous_;
};

}  // namespace

struct ImGuiWidget::Renderer {
    QOpenGLShaderProgram program;
    QOpenGLBuffer vertices{QOpenGLBuffer::VertexBuffer};
    QOpenGLBuffer indices{QOpenGLBuffer::IndexBuffer};
    QOpenGLVertexArrayObject vao;
    GLuint font_texture = 0;
    int projection_location = -1;
};

ImGuiWidget::ImGuiWidget(QWidget* parent) : QOpenGLWidget(parent) {
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setMinimumSize(120, 80);
    context_ = ImGui::CreateContext();
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // layout lives in QSettings, not in imgui.ini
    io.LogFilename = nullptr;
    io.BackendRendererName = "l2a-qt-opengl";
    io.BackendPlatformName = "l2a-qt";
    io.BackendFlags |= ImGuiBackendFlags_RendererHasVtxOffset;
    for (std::size_t i = 0; i < std::size(kKeys); ++i) {
        io.KeyMap[kKeys[i].imgui_key] = kKeyBase + static_cast<int>(i);
    }
    ImGui::StyleColorsLight();
    ImGuiStyle& style = ImGui::GetStyle();
    style.WindowRounding = 0.0f;
    style.WindowBorderSize = 0.0f;
    style.WindowPadding = ImVec2(6, 4);
    style.Colors[ImGuiCol_WindowBg] = ImVec4(1, 1, 1, 1);
    // Frames (radio buttons, check boxes) outlined and tinted, so that an unselected one is
    // visible on the white background.
    style.FrameBorderSize = 1.0f;
    style.Colors[ImGuiCol_Border] = ImVec4(0.55f, 0.58f, 0.64f, 1.0f);
    style.Colors[ImGuiCol_FrameBg] = ImVec4(0.93f, 0.94f, 0.96f, 1.0f);
    clock_.start();
}

ImGuiWidget::~ImGuiWidget() {
    if (renderer_) {
        makeCurrent();
        releaseResources();
        if (renderer_->font_texture) glDeleteTextures(1, &renderer_->font_texture);
        renderer_->vao.destroy();
        renderer_->vertices.destroy();
        renderer_->indices.destroy();
        doneCurrent();
        delete renderer_;
    }
    ImGui::DestroyContext(context_);
}

void ImGuiWidget::initializeGL() {
    initializeOpenGLFunctions();
    if (renderer_) {  // the context was re-created (e.g. the widget moved to another window)
        releaseResources();
        delete renderer_;
    }
    renderer_ = new Renderer;
    Renderer& r = *renderer_;
    r.program.addShaderFromSourceCode(QOpenGLShader::Vertex, kVertexShader);
    r.program.addShaderFromSourceCode(QOpenGLShader::Fragment, kFragmentShader);
    r.program.bindAttributeLocation("position", 0);
    r.program.bindAttributeLocation("uv", 1);
    r.program.bindAttributeLocation("colour", 2);
    if (!r.program.link())
        qWarning("ImGuiWidget: shader link failed: %s", qPrintable(r.program.log()));
    r.projection_location = r.program.uniformLocation("projection");
    r.vao.create();
    r.vertices.create();
    r.indices.create();
    r.vertices.setUsagePattern(QOpenGLBuffer::StreamDraw);
    r.indices.setUsagePattern(QOpenGLBuffer::StreamDraw);

    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    unsigned char* pixels = nullptr;
    int width = 0, height = 0;
    io.Fonts->GetTexDataAsRGBA32(&pixels, &width, &height);
    glGenTextures(1, &r.font_texture);
    glBindTexture(GL_TEXTURE_2D, r.font_texture);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    io.Fonts->SetTexID(reinterpret_cast<ImTextureID>(static_cast<std::intptr_t>(r.font_texture)));
    initializeResources();
}

void ImGuiWidget::resizeGL(int, int) {}

void ImGuiWidget::paintGL() {
    QElapsedTimer frame;
    frame.start();
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    const double now = static_cast<double>(clock_.nsecsElapsed()) * 1e-9;
    io.DeltaTime = std::max(1e-4f, static_cast<float>(now - last_time_));
    last_time_ = now;
    // ImGui sees button edges only from one frame to the next: a press and a release that reach
    // the same frame would cancel out, so each frame takes one edge and asks for another frame.
    if (!button_edges_.empty()) {
        io.MouseDown[button_edges_.front().button] = button_edges_.front().down;
        button_edges_.pop_front();
        if (!button_edges_.empty())
            QMetaObject::invokeMethod(
                this, [this] { update(); }, Qt::QueuedConnection);
    }
    io.DisplaySize = ImVec2(static_cast<float>(width()), static_cast<float>(height()));
    const auto ratio = static_cast<float>(devicePixelRatioF());
    io.DisplayFramebufferScale = ImVec2(ratio, ratio);

    ImGui::NewFrame();
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(io.DisplaySize);
    ImGui::Begin("##view", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                     ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus |
                     ImGuiWindowFlags_NoScrollWithMouse);
    drawFrame();
    ImGui::End();
    ImGui::Render();
    renderDrawData();
    io.MouseWheel = 0.0f;
    io.MouseWheelH = 0.0f;
    last_frame_ms_ = static_cast<double>(frame.nsecsElapsed()) * 1e-6;
}

void ImGuiWidget::renderDrawData() {
    ImDrawData* data = ImGui::GetDrawData();
    const int fb_width = static_cast<int>(data->DisplaySize.x * data->FramebufferScale.x);
    const int fb_height = static_cast<int>(data->DisplaySize.y * data->FramebufferScale.y);
    glViewport(0, 0, fb_width, fb_height);
    glClearColor(1, 1, 1, 1);
    glClear(GL_COLOR_BUFFER_BIT);
    if (fb_width <= 0 || fb_height <= 0 || !renderer_) return;
    Renderer& r = *renderer_;

    glEnable(GL_BLEND);
    glBlendEquation(GL_FUNC_ADD);
    glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ONE, GL_ONE_MINUS_SRC_ALPHA);
    glDisable(GL_CULL_FACE);
    glDisable(GL_DEPTH_TEST);
    glDisable(GL_STENCIL_TEST);
    glEnable(GL_SCISSOR_TEST);

    const float l = data->DisplayPos.x, rgt = data->DisplayPos.x + data->DisplaySize.x;
    const float t = data->DisplayPos.y, b = data->DisplayPos.y + data->DisplaySize.y;
    const float projection[16] = {
        2.0f / (rgt - l),  0, 0, 0, 0, 2.0f / (t - b), 0, 0, 0, 0, -1, 0, (rgt + l) / (l - rgt),
        (t + b) / (b - t), 0, 1};
    r.program.bind();
    glUniformMatrix4fv(r.projection_location, 1, GL_FALSE, projection);
    r.program.setUniformValue("image", 0);
    r.vao.bind();
    r.vertices.bind();
    r.indices.bind();
    glEnableVertexAttribArray(0);
    glEnableVertexAttribArray(1);
    glEnableVertexAttribArray(2);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, sizeof(ImDrawVert),
                          reinterpret_cast<void*>(offsetof(ImDrawVert, pos)));
    glVertexAttribPointer(1, 2, GL_FLOAT, GL_FALSE, sizeof(ImDrawVert),
                          reinterpret_cast<void*>(offsetof(ImDrawVert, uv)));
    glVertexAttribPointer(2, 4, GL_UNSIGNED_BYTE, GL_TRUE, sizeof(ImDrawVert),
                          reinterpret_cast<void*>(offsetof(ImDrawVert, col)));
    glActiveTexture(GL_TEXTURE0);

    const ImVec2 clip_off = data->DisplayPos;
    const ImVec2 clip_scale = data->FramebufferScale;
    for (int n = 0; n < data->CmdListsCount; ++n) {
        const ImDrawList* list = data->CmdLists[n];
        r.vertices.allocate(list->VtxBuffer.Data,
                            static_cast<int>(list->VtxBuffer.Size * sizeof(ImDrawVert)));
        r.indices.allocate(list->IdxBuffer.Data,
                           static_cast<int>(list->IdxBuffer.Size * sizeof(ImDrawIdx)));
        for (int i = 0; i < list->CmdBuffer.Size; ++i) {
            const ImDrawCmd& cmd = list->CmdBuffer[i];
            if (cmd.UserCallback) {
                cmd.UserCallback(list, &cmd);
                continue;
            }
            const float x0 = (cmd.ClipRect.x - clip_off.x) * clip_scale.x;
            const float y0 = (cmd.ClipRect.y - clip_off.y) * clip_scale.y;
            const float x1 = (cmd.ClipRect.z - clip_off.x) * clip_scale.x;
            const float y1 = (cmd.ClipRect.w - clip_off.y) * clip_scale.y;
            if (x1 <= x0 || y1 <= y0) continue;
            glScissor(static_cast<int>(x0), static_cast<int>(fb_height - y1),
                      static_cast<int>(x1 - x0), static_cast<int>(y1 - y0));
            glBindTexture(GL_TEXTURE_2D,
                          static_cast<GLuint>(reinterpret_cast<std::intptr_t>(cmd.GetTexID())));
            glDrawElementsBaseVertex(GL_TRIANGLES, static_cast<GLsizei>(cmd.ElemCount),
                                     sizeof(ImDrawIdx) == 2 ? GL_UNSIGNED_SHORT : GL_UNSIGNED_INT,
                                     reinterpret_cast<void*>(static_cast<std::intptr_t>(
                                         cmd.IdxOffset * sizeof(ImDrawIdx))),
                                     static_cast<GLint>(cmd.VtxOffset));
        }
    }
    r.vao.release();
    r.program.release();
    glDisable(GL_SCISSOR_TEST);
}

double ImGuiWidget::measureFrames(int frames) {
    makeCurrent();
    QElapsedTimer clock;
    clock.start();
    for (int i = 0; i < frames; ++i) {
        paintGL();
        glFinish();
    }
    const double ms = static_cast<double>(clock.nsecsElapsed()) * 1e-6 / std::max(1, frames);
    doneCurrent();
    return ms;
}

// ---- input
// ---------------------------------------------------------------------------------------

namespace {

int mouse_index(Qt::MouseButton button) {
    switch (button) {
        case Qt::LeftButton:
            return 0;
        case Qt::RightButton:
            return 1;
        case Qt::MiddleButton:
            return 2;
        default:
            return -1;
    }
}

void set_modifiers(ImGuiIO& io, Qt::KeyboardModifiers modifiers) {
    io.KeyCtrl = modifiers & Qt::ControlModifier;
    io.KeyShift = modifiers & Qt::ShiftModifier;
    io.KeyAlt = modifiers & Qt::AltModifier;
    io.KeySuper = modifiers & Qt::MetaModifier;
}

}  // namespace

void ImGuiWidget::mousePressEvent(QMouseEvent* event) {
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = ImVec2(static_cast<float>(event->position().x()),
                         static_cast<float>(event->position().y()));
    if (const int i = mouse_index(event->button()); i >= 0) button_edges_.push_back({i, true});
    set_modifiers(io, event->modifiers());
    update();
}

void ImGuiWidget::mouseReleaseEvent(QMouseEvent* event) {
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = ImVec2(static_cast<float>(event->position().x()),
                         static_cast<float>(event->position().y()));
    if (const int i = mouse_index(event->button()); i >= 0) button_edges_.push_back({i, false});
    update();
}

void ImGuiWidget::mouseMoveEvent(QMouseEvent* event) {
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = ImVec2(static_cast<float>(event->position().x()),
                         static_cast<float>(event->position().y()));
    update();
}

void ImGuiWidget::wheelEvent(QWheelEvent* event) {
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = ImVec2(static_cast<float>(event->position().x()),
                         static_cast<float>(event->position().y()));
    io.MouseWheel += static_cast<float>(event->angleDelta().y()) / 120.0f;
    io.MouseWheelH += static_cast<float>(event->angleDelta().x()) / 120.0f;
    set_modifiers(io, event->modifiers());
    event->accept();
    update();
}

void ImGuiWidget::keyPressEvent(QKeyEvent* event) {
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    set_modifiers(io, event->modifiers());
    if (const int slot = key_slot(event->key()); slot >= 0) io.KeysDown[slot] = true;
    for (const QChar c : event->text()) {
        if (c.isPrint()) io.AddInputCharacter(c.unicode());
    }
    update();
}

void ImGuiWidget::keyReleaseEvent(QKeyEvent* event) {
    ContextScope scope(context_);
    ImGuiIO& io = ImGui::GetIO();
    set_modifiers(io, event->modifiers());
    if (const int slot = key_slot(event->key()); slot >= 0) io.KeysDown[slot] = false;
    update();
}

void ImGuiWidget::leaveEvent(QEvent*) {
    ContextScope scope(context_);
    ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
    update();
}

}  // namespace l2a::ui
