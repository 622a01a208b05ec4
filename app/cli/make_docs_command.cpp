// `l2a make-docs`: long documents with long-range dependencies (and their reference spans), and
// the byte-level tokenizer that trains on them.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "guards.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/synthetic_docs.h"

namespace l2a::cli {

int make_docs_command(std::span<const std::string_view> raw) {
    Arguments args("make-docs",
                   {{"--out", true},
                    {"--count", true},
                    {"--tokens", true},
                    {"--seed", true},
                    {"--min-distance", true},
                    {"--mix", true},
                    {"--dense", false},
                    {"--style", true},
                    {"--tokenizer-out", true},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("make-docs"), stdout);
        return 0;
    }
    const auto out = args.value("--out");
    if (!out && !args.value("--tokenizer-out")) {
        args.usage_error("give --out DIR (documents) and/or --tokenizer-out FILE");
    }
    const std::int64_t count = args.integer("--count", 1, 10000000).value_or(16);
    const std::int64_t tokens = args.integer("--tokens", 256, std::int64_t(1) << 26).value_or(8192);
    const std::uint64_t seed = args.unsigned_integer("--seed").value_or(1);
    const std::int64_t distance =
        args.integer("--min-distance", 1, std::int64_t(1) << 26).value_or(1536);
    if (distance * 2 >= tokens) {
        args.usage_error("--min-distance " + std::to_string(distance) +
                         " leaves no room for references in documents of --tokens " +
                         std::to_string(tokens) + " (make it less than half)");
    }

    SyntheticDocOptions options;
    options.target_bytes = static_cast<std::size_t>(tokens);
    options.min_distance = static_cast<std::size_t>(distance);
    options.dense = args.has("--dense");
    if (auto style = args.value("--style")) {
        const auto parsed = parse_synthetic_doc_style(*style);
        if (!parsed) {
            args.usage_error("--style: '" + *style + "' is not a style (handbook or synthetic)");
        }
        options.style = *parsed;
    }
    if (auto mix = args.value("--mix")) {
        std::size_t start = 0;
        while (start <= mix->size()) {
            const std::size_t comma = std::min(mix->find(',', start), mix->size());
            const std::string file = mix->substr(start, comma - start);
            if (file.empty()) args.usage_error("--mix: an empty file name in '" + *mix + "'");
            options.mix_texts.push_back(load_document(file).text);
            start = comma + 1;
        }
    }

    if (out) {
        std::error_code ec;
        std::filesystem::create_directories(*out, ec);
        if (ec) fail(*out, "cannot create the folder: " + ec.message());
    }
    if (auto tokenizer = args.value("--tokenizer-out")) {
        write_text_atomically(*tokenizer, byte_level_tokenizer_json());
        if (!args.has("--quiet")) std::fprintf(stderr, "l2a: wrote %s\n", tokenizer->c_str());
    }
    if (!out) return 0;

    std::size_t references = 0, bytes = 0;
    for (std::int64_t i = 0; i < count; ++i) {
        throw_if_cancelled();  // the documents written so far are complete; the rest are not begun
        options.seed = seed * 1000003ull + static_cast<std::uint64_t>(i);
        const SyntheticDoc doc = make_synthetic_doc(options);
        char name[32];
        std::snprintf(name, sizeof name, "doc_%06lld", static_cast<long long>(i));
        const std::filesystem::path base = std::filesystem::path(*out) / name;
        write_text_atomically(base.string() + ".txt", doc.text);
        write_text_atomically(base.string() + ".json",
                              synthetic_doc_sidecar_json(doc, options.seed));
        references += doc.references.size();
        bytes += doc.text.size();
    }
    if (!args.has("--quiet")) {
        std::fprintf(stderr,
                     "l2a: wrote %lld documents (%zu bytes, %zu long-range references) to %s\n",
                     static_cast<long long>(count), bytes, references, out->c_str());
    }
    return 0;
}

}  // namespace l2a::cli
