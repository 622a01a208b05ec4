// Which model a command works on: --model DIR, or --demo (the shipped demo model).
#pragma once

#include <filesystem>
#include <optional>

#include "arguments.h"

namespace l2a::cli {

inline const OptionSpec kModelOption{"--model", true};
inline const OptionSpec kDemoOption{"--demo", false};

// --model DIR as given, or nothing for --demo; usage error when neither or both are given.
std::optional<std::filesystem::path> named_model(const Arguments& args);
// The model folder named by the arguments (the shipped demo model's for --demo); usage error
// when neither or both are given.
std::filesystem::path model_folder(const Arguments& args);
// What a report calls the model: the folder, or "<demo model>".
std::string model_label(const Arguments& args, const std::filesystem::path& folder);

}  // namespace l2a::cli
