#include "model_source.h"

#include <cstdio>

#include "l2a/engine/demo.h"

namespace l2a::cli {

std::filesystem::path model_folder(const Arguments& args) {
    const bool demo = args.has("--demo");
    auto model = args.value("--model");
    if (demo && model) args.usage_error("give either --model DIR or --demo, not both");
    if (!demo && !model) args.usage_error("give --model DIR or --demo");
    if (model) {
        if (model->empty()) args.usage_error("--model: the folder name is empty");
        return *model;
    }
    const std::filesystem::path dir = demo_model_dir();
    std::error_code ec;
    if (!std::filesystem::exists(dir / "model.safetensors", ec)) {
        std::fprintf(stderr, "l2a: creating the demo model (random weights) in %s\n",
                     dir.string().c_str());
    }
    return ensure_demo_model(dir);
}

std::string model_label(const Arguments& args, const std::filesystem::path& folder) {
    return args.has("--demo") ? "<demo model>" : folder.string();
}

}  // namespace l2a::cli
