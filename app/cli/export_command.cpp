// `l2a export`: a saved profile in another format.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/profile.h"
#include "l2a/profiler/export.h"
#include "l2a/profiler/report_pdf.h"

namespace l2a::cli {
namespace {

void write_output(const std::string& out, const std::string& text) {
    if (out == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    } else {
        write_text_atomically(out, text);
    }
}

}  // namespace

int export_command(std::span<const std::string_view> raw) {
    Arguments args("export",
                   {{"--profile", true},
                    {"--format", true},
                    {"--out", true},
                    {"--compare", true},
                    {"--detail", true}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("export"), stdout);
        return 0;
    }
    const auto profile_path = args.value("--profile");
    if (!profile_path) args.usage_error("give the profile to export: --profile FILE");
    const std::string format = args.value("--format").value_or("json");
    const std::string out = args.value("--out").value_or("-");
    const auto compare_path = args.value("--compare");
    if (format != "json" && format != "chrome" && format != "csv" && format != "html" &&
        format != "pdf") {
        args.usage_error("--format: unknown format '" + format +
                         "' (supported: json, chrome, csv, html, pdf)");
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

    const Profile profile = load_profile(*profile_path);
    if (format == "json") {
        const JsonDetail level =
            detail.value_or("full") == "summary" ? JsonDetail::Summary : JsonDetail::Full;
        write_output(out, profile_to_json(profile, 2, level) + "\n");
    } else if (format == "chrome") {
        write_output(out, profile_to_chrome_trace(profile) + "\n");
    } else if (format == "csv") {
        const CsvPaths paths = export_csv(profile, out);
        std::fprintf(stderr, "l2a: wrote %s, %s and %s\n", paths.layers.string().c_str(),
                     paths.tokens.string().c_str(), paths.routing.string().c_str());
    } else {
        std::optional<Profile> compare;
        if (compare_path) compare = load_profile(*compare_path);
        const Profile* other = compare ? &*compare : nullptr;
        if (format == "pdf") {
            export_pdf(profile, out, other);
            std::fprintf(stderr, "l2a: wrote %s\n", out.c_str());
        } else {
            write_output(out, profile_to_html(profile, other));
        }
    }
    return 0;
}

}  // namespace l2a::cli
