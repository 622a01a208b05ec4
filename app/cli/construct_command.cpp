// `l2a construct`: a Qwen2/Qwen3 checkpoint as an L2A one, ready for `l2a train`; `l2a convert`:
// a model folder with its weights stored in another floating-point type.
#include <cstdio>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "guards.h"
#include "l2a/engine/construct.h"
#include "l2a/engine/safetensors.h"
#include "progress_bar.h"
#include "text_format.h"

namespace l2a::cli {

int construct_command(std::span<const std::string_view> raw) {
    Arguments args("construct",
                   {{"--base", true},
                    {"--out", true},
                    {"--window", true},
                    {"--temp", true},
                    {"--threshold", true},
                    {"--force", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("construct"), stdout);
        return 0;
    }
    const auto base = args.value("--base");
    const auto out = args.value("--out");
    if (!base) args.usage_error("give the base model: --base DIR");
    if (!out) args.usage_error("give the output folder: --out DIR");
    ConstructOptions options;
    if (auto w = args.integer("--window", 1, std::int64_t(1) << 30)) options.window = *w;
    if (auto t = args.number("--temp")) {
        if (!(*t > 0.0)) args.usage_error("--temp: must be a positive number");
        options.temperature = *t;
    }
    if (auto t = args.number("--threshold")) {
        if (!(*t > 0.0 && *t < 1.0))
            args.usage_error("--threshold: must be strictly between 0 and 1");
        options.threshold = *t;
    }
    options.overwrite = args.has("--force");
    const bool quiet = args.has("--quiet");
    ProgressBar bar("construct " + *out, !quiet);
    const ConstructSummary s =
        construct_l2a(*base, *out, options, [&](std::int64_t done, std::int64_t all) {
            bar.update(all > 0 ? static_cast<double>(done) / static_cast<double>(all) : 1.0,
                       "weights");
            throw_if_cancelled();  // the half-written folder is removed as this unwinds
        });
    bar.finish();
    if (!quiet) {
        std::printf(
            "%s -> %s: %s (%lld layers), %lld tensors, %s; window %lld, temperature %g, "
            "threshold %g, router zero (every token global until trained)\n",
            base->c_str(), out->c_str(), s.l2a_type.c_str(), static_cast<long long>(s.layers),
            static_cast<long long>(s.tensors_written), format_bytes_short(s.bytes_written).c_str(),
            static_cast<long long>(options.window), options.temperature, options.threshold);
    }
    return 0;
}

int convert_command(std::span<const std::string_view> raw) {
    Arguments args("convert",
                   {{"--model", true},
                    {"--out", true},
                    {"--dtype", true},
                    {"--force", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("convert"), stdout);
        return 0;
    }
    const auto model = args.value("--model");
    const auto out = args.value("--out");
    const auto dtype_name = args.value("--dtype");
    if (!model) args.usage_error("give the model: --model DIR");
    if (!out) args.usage_error("give the output folder: --out DIR");
    if (!dtype_name) args.usage_error("give the type: --dtype bf16, f16 or f32");
    DType dtype;
    if (*dtype_name == "bf16") {
        dtype = DType::BF16;
    } else if (*dtype_name == "f16" || *dtype_name == "fp16") {
        dtype = DType::F16;
    } else if (*dtype_name == "f32" || *dtype_name == "fp32") {
        dtype = DType::F32;
    } else {
        args.usage_error("--dtype " + *dtype_name + ": expected bf16, f16 or f32");
    }
    const bool quiet = args.has("--quiet");
    ProgressBar bar("convert " + *out, !quiet);
    const ConvertSummary s = convert_checkpoint(
        *model, *out, dtype, args.has("--force"), [&](std::int64_t done, std::int64_t all) {
            bar.update(all > 0 ? static_cast<double>(done) / static_cast<double>(all) : 1.0,
                       "weights");
            throw_if_cancelled();
        });
    bar.finish();
    if (!quiet) {
        std::printf("%s -> %s: %lld tensors (%lld converted to %s), %s -> %s\n", model->c_str(),
                    out->c_str(), static_cast<long long>(s.tensors),
                    static_cast<long long>(s.tensors_converted), dtype_name->c_str(),
                    format_bytes_short(s.bytes_before).c_str(),
                    format_bytes_short(s.bytes_after).c_str());
    }
    return 0;
}

}  // namespace l2a::cli
