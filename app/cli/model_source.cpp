#include "model_source.h"

#include "l2a/engine/demo.h"

namespace l2a::cli {

std::optional<std::filesystem::path> named_model(const Arguments& args) {
    const bool demo = args.has("--demo");
    auto model = args.value("--model");
    if (demo && model) args.usage_error("give either --model DIR or --demo, not both");
    if (!demo && !model) args.usage_error("give --model DIR or --demo");
    if (!model) return std::nullopt;
    return std::filesystem::path(*model);
}

std::filesystem::path model_folder(const Arguments& args) {
    const std::optional<std::filesystem::path> named = named_model(args);
    return named ? *named : require_demo_model();
}

std::string model_label(const Arguments& args, const std::filesystem::path& folder) {
    return args.has("--demo") ? "<demo model>" : folder.string();
}

}  // namespace l2a::cli
