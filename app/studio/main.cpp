// `l2a-studio`: the desktop app. Argument parsing and wiring only.
#include <QApplication>
#include <QCommandLineParser>
#include <QSurfaceFormat>
#include <cstdio>
#include <cstring>

#include "l2a/ui/main_window.h"
#include "l2a/ui/view_benchmark.h"

int main(int argc, char** argv) {
    // The benchmark of the OpenGL views runs its own windows and prints frame times.
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--bench-views") == 0) {
            QSurfaceFormat format;
            format.setSwapInterval(0);  // frame times, not the display's refresh rate
            QSurfaceFormat::setDefaultFormat(format);
            QApplication app(argc, argv);
            return l2a::ui::run_view_benchmark(argc, argv);
        }
    }
    QApplication app(argc, argv);
    QApplication::setOrganizationName("L2A Studio");
    QApplication::setApplicationName("l2a-studio");
    QApplication::setApplicationVersion(L2A_VERSION);

    QCommandLineParser parser;
    parser.setApplicationDescription(
        "L2A Studio: run Qwen and L2A models over long documents and see which tokens reach for "
        "global attention. With no arguments it runs the embedded demo model on a demo document.");
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addOption({"model", "Model folder (HuggingFace layout).", "DIR"});
    parser.addOption({"doc", "Document to run (text or Markdown).", "FILE"});
    parser.addOption({"profile", "Open a saved profile instead of running.", "FILE.l2a"});
    parser.addOption({"no-run", "Do not run anything at start."});
    parser.addOption({"bench-views", "Time the routing map and timeline views and exit (see docs)."});
    if (!parser.parse(QApplication::arguments())) {
        std::fprintf(stderr, "l2a-studio: %s (see l2a-studio --help)\n",
                     qPrintable(parser.errorText()));
        return 2;
    }
    if (parser.isSet("help")) parser.showHelp(0);
    if (parser.isSet("version")) parser.showVersion();
    if (!parser.positionalArguments().isEmpty()) {
        std::fprintf(stderr, "l2a-studio: unexpected argument '%s' (see l2a-studio --help)\n",
                     qPrintable(parser.positionalArguments().front()));
        return 2;
    }

    l2a::ui::StudioOptions options;
    options.model_dir = parser.value("model");
    options.document = parser.value("doc");
    options.profile = parser.value("profile");
    options.run_on_start = !parser.isSet("no-run");
    l2a::ui::MainWindow window(options);
    window.show();
    return QApplication::exec();
}
