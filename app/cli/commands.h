// The `l2a` commands. Each takes the arguments after its name and returns the exit status;
// usage mistakes throw UsageError, failures throw l2a::Error (main turns both into one line).
#pragma once

#include <span>
#include <string_view>

namespace l2a::cli {

int info_command(std::span<const std::string_view> args);
int run_command(std::span<const std::string_view> args);
int export_command(std::span<const std::string_view> args);
int bench_command(std::span<const std::string_view> args);
int whatif_command(std::span<const std::string_view> args);
int suggest_prune_command(std::span<const std::string_view> args);
int make_docs_command(std::span<const std::string_view> args);
int construct_command(std::span<const std::string_view> args);
int train_command(std::span<const std::string_view> args);
int convert_command(std::span<const std::string_view> args);
int evaluate_command(std::span<const std::string_view> args);
int serve_command(std::span<const std::string_view> args);
int explain_command(std::span<const std::string_view> args);
int oracle_command(std::span<const std::string_view> args);

// Help of one command ("info", "run", "export"), or of l2a itself for "".
const char* help_text(std::string_view command);

const char* tool_version();

}  // namespace l2a::cli
