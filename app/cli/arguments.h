// A small command-line parser for `l2a <command> [--option value]...`: options are declared per
// command, and anything else is a usage error that names the command.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace l2a::cli {

// A mistake in how the command was called (exit status 2). The message is printed as
// "l2a <command>: <message> (see l2a <command> --help)".
class UsageError : public std::runtime_error {
public:
    UsageError(std::string command, const std::string& message)
        : std::runtime_error(message), command_(std::move(command)) {}
    const std::string& command() const { return command_; }

private:
    std::string command_;
};

struct OptionSpec {
    std::string name;  // with the dashes: "--max-tokens"
    bool takes_value = false;
    // An empty value is a usage error unless the option gives it a meaning (whatif --prune "":
    // no layer pruned).
    bool empty_allowed = false;
};

// Comma-separated items of an option's value ("" items included, so that "8K,,32K" is an error).
std::vector<std::string> split_list(const std::string& text);

class Arguments {
public:
    // Accepts "--name value" and "--name=value". Throws UsageError for unknown options, missing
    // values, repeated options and stray positional arguments. "--help" and "-h" are always
    // accepted.
    Arguments(std::string command, const std::vector<OptionSpec>& specs,
              std::span<const std::string_view> args);

    const std::string& command() const { return command_; }
    bool help() const { return help_; }
    bool has(std::string_view name) const;
    std::optional<std::string> value(std::string_view name) const;

    // Typed values; a malformed one is a UsageError naming the option.
    std::optional<std::int64_t> integer(std::string_view name, std::int64_t min,
                                        std::int64_t max) const;
    std::optional<std::uint64_t> unsigned_integer(std::string_view name) const;
    std::optional<double> number(std::string_view name) const;
    // Comma-separated finite numbers ("1,1,0.5"); an empty item or a malformed one is an error.
    std::optional<std::vector<double>> numbers(std::string_view name) const;

    [[noreturn]] void usage_error(const std::string& message) const;

private:
    std::string command_;
    bool help_ = false;
    std::map<std::string, std::string, std::less<>> values_;  // flags map to ""
};

}  // namespace l2a::cli
