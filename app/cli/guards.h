// What every command shares to end well: cancellation by signal, and output paths checked
// before any work is done.
#pragma once

#include <atomic>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "arguments.h"

namespace l2a::cli {

// SIGINT (Ctrl-C), SIGTERM and SIGHUP ask the running command to stop at its next safe point:
// it throws l2a::Cancelled, temporary files are removed as the stack unwinds, nothing is left
// half-written, and main() exits with 130 ("l2a: cancelled"). Each handler then resets itself,
// so a second signal of the same kind ends the process at once. Installed once, by main().
void install_cancel_handlers();
// The flag the handlers set, for PrefillHooks::cancel and the engine's other long loops.
std::atomic<bool>* cancel_flag();
bool cancel_requested();
// Throws l2a::Cancelled when a signal has arrived.
void throw_if_cancelled();

// An option and the file it names, as the user gave it.
using NamedPath = std::pair<std::string, std::string>;

// Checks, before any work, that `output` (the value of option `name`) can be written: it is
// not one of `inputs` (the same file by another name or link included: a usage error), it is
// not a folder, and its folder exists and is writable (l2a::Error naming the option). "-"
// (standard output) and empty inputs are skipped.
void check_output_file(const Arguments& args, const NamedPath& output,
                       std::initializer_list<NamedPath> inputs = {});

// The same for an output folder that the command creates (with its parents) or fills: it is
// not a file, and the nearest folder that exists above it is writable.
void check_output_folder(const NamedPath& output);

// The model's load warnings (Model::warnings()) on stderr, one "l2a: warning: ..." line each.
void print_load_warnings(const std::vector<std::string>& warnings);

}  // namespace l2a::cli
