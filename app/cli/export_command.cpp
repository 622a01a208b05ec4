// `l2a export`: a saved profile in another format.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "guards.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/profile.h"
#include "l2a/profiler/export.h"
#include "l2a/profiler/report_pdf.h"

namespace l2a::cli {
namespace {

bool quiet = false;  // --quiet: no line naming each file written

void say_wrote(const std::string& path) {
    if (!quiet) std::fprintf(stderr, "l2a: wrote %s\n", path.c_str());
}

// To standard output for "-"; else to the file, then one line on stderr naming it.
void write_output(const std::string& out, const std::string& text) {
    throw_if_cancelled();  // a signal while the text was made: nothing is written
    if (out == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    } else {
        write_text_atomically(out, text);
        say_wrote(out);
    }
}

}  // namespace

int export_command(std::span<const std::string_view> raw) {
    Arguments args("export",
                   {{"--profile", true},
                    {"--format", true},
                    {"--out", true},
                    {"--compare", true},
                    {"--detail", true},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("export"), stdout);
        return 0;
    }
    quiet = args.has("--quiet");
    const auto profile_path = args.value("--profile");
    if (!profile_path) args.usage_error("give the profile to export: --profile FILE");
    // "perfetto" is the Chrome trace, which Perfetto opens (users look for it by that name).
    std::string format = args.value("--format").value_or("json");
    if (format == "perfetto") format = "chrome";
    const std::string out = args.value("--out").value_or("-");
    const auto compare_path = args.value("--compare");
    if (format != "json" && format != "chrome" && format != "csv" && format != "html" &&
        format != "pdf") {
        args.usage_error("--format: unknown format '" + format +
                         "' (supported: json, chrome or perfetto, csv, html, pdf)");
    }
    const auto detail = args.value("--detail");
    if (detail && *detail != "full" && *detail != "summary") {
        args.usage_error("--detail: unknown level '" + *detail + "' (supported: full, summary)");
    }
    if (detail && format != "json") {
        args.usage_error("--detail: only --format json has a summary form");
    }
    if (compare_path && format != "html" && format != "pdf") {
        args.usage_error("--compare: only the reports (--format html or pdf) show a comparison");
    }
    if (format == "pdf" && out == "-") args.usage_error("--format pdf: give --out FILE.pdf");
    if (format == "pdf" && !pdf_export_available()) {
        fail("--format pdf",
             "PDF export needs a build with Qt 6 (this one was configured without it); "
             "export --format html and print that, or rebuild with Qt");
    }
    if (format == "csv" && out == "-") {
        args.usage_error(
            "--format csv writes three tables: give --out FILE (FILE.layers.csv, "
            "FILE.tokens.csv and FILE.routing.csv)");
    }

    check_output_file(args, {"--out", out},
                      {{"--profile", *profile_path}, {"--compare", compare_path.value_or("")}});

    const Profile profile = load_profile(*profile_path);
    throw_if_cancelled();
    if (format == "json") {
        const JsonDetail level =
            detail.value_or("full") == "summary" ? JsonDetail::Summary : JsonDetail::Full;
        write_output(out, profile_to_json(profile, 2, level) + "\n");
    } else if (format == "chrome") {
        write_output(out, profile_to_chrome_trace(profile) + "\n");
    } else if (format == "csv") {
        const CsvPaths paths = export_csv(profile, out);
        say_wrote(paths.layers.string());
        say_wrote(paths.tokens.string());
        say_wrote(paths.routing.string());
    } else {
        std::optional<Profile> compare;
        if (compare_path) compare = load_profile(*compare_path);
        const Profile* other = compare ? &*compare : nullptr;
        throw_if_cancelled();
        if (format == "pdf") {
            export_pdf(profile, out, other);
            say_wrote(out);
        } else {
            write_output(out, profile_to_html(profile, other));
        }
    }
    return 0;
}

}  // namespace l2a::cli
