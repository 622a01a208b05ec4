// `l2a-studio`: the desktop app. Argument parsing and wiring only.
#include <QApplication>
#include <QCommandLineParser>
#include <QSet>
#include <QStringList>
#include <QSurfaceFormat>
#include <cstdio>
#include <cstring>

#include "l2a/ui/main_window.h"
#include "l2a/ui/view_benchmark.h"

namespace {

constexpr const char* kUsage =
    "Usage: l2a-studio [--model DIR] [--doc FILE] [--profile FILE.l2a] [--no-run]\n"
    "       l2a-studio --bench-views [--tokens N] [--layers L] [--frames F] [--size WxH]\n"
    "\n"
    "L2A Studio: run Qwen and L2A models over long documents and see which tokens reach for\n"
    "global attention. With no arguments it runs the embedded demo model on a demo document.\n"
    "\n"
    "  --model DIR         model folder (HuggingFace layout: config.json, *.safetensors,\n"
    "                      tokenizer.json); default: the embedded demo model\n"
    "  --doc FILE          document to run (UTF-8 text or Markdown); default: the demo document\n"
    "  --profile FILE.l2a  open a saved profile instead of running\n"
    "  --no-run            start without running anything\n"
    "  --engine URL        run on a remote engine: tcp://HOST:PORT or tls://HOST:PORT (an\n"
    "                      `l2a serve` there), ssh://[USER@]HOST[:PORT][/PATH/TO/l2a] (started\n"
    "                      through your ssh); --model then names a folder on the engine\n"
    "  --token-file FILE   the remote engine's token\n"
    "  --tls-ca FILE       tls:// engines: the certificate authority to trust (PEM); default:\n"
    "                      the system's\n"
    "  --bench-views       time the routing map and timeline views on a synthetic profile\n"
    "  --version           print the version\n"
    "  --help              print this help\n"
    "\n"
    "Qt's own options (-platform, -display, -style, ...) are passed on to Qt.\n";

// The arguments that are ours: Qt's own GUI options (QApplication takes them out of argv) are
// left out, so that `l2a-studio -platform offscreen` is not an unknown flag.
QStringList own_arguments(int argc, char** argv) {
    static const QSet<QString> qt_with_value = {"platform",
                                                "platformpluginpath",
                                                "platformtheme",
                                                "plugin",
                                                "qwindowgeometry",
                                                "qwindowicon",
                                                "qwindowtitle",
                                                "display",
                                                "geometry",
                                                "style",
                                                "stylesheet",
                                                "session",
                                                "name",
                                                "title",
                                                "visual",
                                                "qmljsdebugger"};
    static const QSet<QString> qt_flags = {"reverse", "nograb", "dograb", "sync", "widgetcount"};
    QStringList out{QString::fromLocal8Bit(argv[0])};
    for (int i = 1; i < argc; ++i) {
        const QString arg = QString::fromLocal8Bit(argv[i]);
        QString name = arg;
        while (name.startsWith('-')) name.remove(0, 1);
        if (arg.startsWith('-') && qt_with_value.contains(name)) {
            ++i;  // and its value
        } else if (arg.startsWith('-') && !arg.startsWith("--") && qt_flags.contains(name)) {
            continue;
        } else {
            out << arg;
        }
    }
    return out;
}

// Qt's default request gives the newest compatibility context (4.5 on Mesa's llvmpipe under
// Xvfb), which has what the ImGui renderer uses: GLSL 1.30 shaders and vertex array objects.
// Asking for 3.3 explicitly gets a core context from Mesa instead, whose frames measured slower
// there. Set before the QApplication exists so that every QOpenGLWidget gets it.
void set_default_gl_format(bool benchmark) {
    QSurfaceFormat format;
    format.setRenderableType(QSurfaceFormat::OpenGL);
    format.setDepthBufferSize(0);
    format.setStencilBufferSize(0);
    if (benchmark) format.setSwapInterval(0);  // frame times, not the display's refresh rate
    QSurfaceFormat::setDefaultFormat(format);
    // A dock pulled out into its own window re-parents its GL view; shared contexts keep the
    // view's textures alive across that.
    QApplication::setAttribute(Qt::AA_ShareOpenGLContexts);
}

}  // namespace

int main(int argc, char** argv) {
    // The benchmark of the OpenGL views runs its own windows and prints frame times.
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--bench-views") == 0) {
            set_default_gl_format(true);
            QApplication app(argc, argv);
            return l2a::ui::run_view_benchmark(argc, argv);
        }
    }
    // Parsed before the QApplication exists, so that --help, --version and a mistyped flag
    // answer on a machine without a display.
    QCommandLineParser parser;
    parser.addOption({{"h", "help"}, "Print the help."});
    parser.addOption({"version", "Print the version."});
    parser.addOption({"model", "Model folder.", "DIR"});
    parser.addOption({"doc", "Document to run.", "FILE"});
    parser.addOption({"profile", "Saved profile to open.", "FILE.l2a"});
    parser.addOption({"no-run", "Start without running."});
    parser.addOption({"engine",
                      "Run on a remote engine (tcp://HOST:PORT, tls://HOST:PORT, "
                      "ssh://[USER@]HOST[:PORT][/PATH/TO/l2a]).",
                      "URL"});
    parser.addOption({"token-file", "The remote engine's token.", "FILE"});
    parser.addOption({"tls-ca", "tls:// engines: the certificate authority to trust.", "FILE"});
    if (!parser.parse(own_arguments(argc, argv))) {
        QString error = parser.errorText();
        if (error.endsWith('.')) error.chop(1);
        std::fprintf(stderr, "l2a-studio: %s (see l2a-studio --help)\n", qPrintable(error));
        return 2;
    }
    if (parser.isSet("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (parser.isSet("version")) {
        std::printf("l2a-studio %s\n", L2A_VERSION);
        return 0;
    }
    if (!parser.positionalArguments().isEmpty()) {
        std::fprintf(stderr, "l2a-studio: unexpected argument '%s' (see l2a-studio --help)\n",
                     qPrintable(parser.positionalArguments().front()));
        return 2;
    }

    // The engine's token and certificate authority go with an engine (and the latter with a
    // tls:// one): given alone they would be ignored without a word.
    const auto usage_error = [](const char* message) {
        std::fprintf(stderr, "l2a-studio: %s (see l2a-studio --help)\n", message);
        return 2;
    };
    if (parser.isSet("token-file") && !parser.isSet("engine")) {
        return usage_error("--token-file goes with --engine URL");
    }
    if (parser.isSet("tls-ca") && !parser.value("engine").startsWith("tls://")) {
        return usage_error("--tls-ca goes with --engine tls://HOST:PORT");
    }

    set_default_gl_format(false);
    QApplication app(argc, argv);
    QApplication::setOrganizationName("L2A Studio");
    QApplication::setApplicationName("l2a-studio");
    QApplication::setApplicationVersion(L2A_VERSION);

    l2a::ui::StudioOptions options;
    options.model_dir = parser.value("model");
    options.document = parser.value("doc");
    options.profile = parser.value("profile");
    options.run_on_start = !parser.isSet("no-run");
    options.engine = parser.value("engine");
    options.token_file = parser.value("token-file");
    options.tls_ca_file = parser.value("tls-ca");
    l2a::ui::MainWindow window(options);
    window.show();
    return QApplication::exec();
}
