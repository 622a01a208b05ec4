// `l2a export`: a saved profile in another format.
#include <cstdio>
#include <iostream>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/profile.h"

namespace l2a::cli {

int export_command(std::span<const std::string_view> raw) {
    Arguments args("export", {{"--profile", true}, {"--format", true}, {"--out", true}}, raw);
    if (args.help()) {
        std::fputs(help_text("export"), stdout);
        return 0;
    }
    const auto profile_path = args.value("--profile");
    if (!profile_path) args.usage_error("give the profile to export: --profile FILE");
    const std::string format = args.value("--format").value_or("json");
    const std::string out = args.value("--out").value_or("-");
    if (format == "chrome" || format == "csv" || format == "html" || format == "pdf") {
        fail("--format " + format, "not supported yet (supported: json)");
    }
    if (format != "json")
        args.usage_error("--format: unknown format '" + format + "' (supported: json)");

    const Profile profile = load_profile(*profile_path);
    const std::string text = profile_to_json(profile) + "\n";
    if (out == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    } else {
        write_text_atomically(out, text);
    }
    return 0;
}

}  // namespace l2a::cli
