// End-to-end tests of the `l2a` command line: they run the built binary as a user would and
// check exit status, output and the one-line error messages.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../engine/scoped_env.h"
#include "../engine/test_support.h"
#include "l2a/engine/bench.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/safetensors.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using l2a::test::read_file;
using l2a::test::shell_quote;
using l2a::test::write_file;

const fs::path kBinary = fs::path(L2A_BIN_DIR) / "l2a";

// One demo model for all tests of this binary (created by the first run that needs it;
// creation is atomic, so parallel test processes may race for it safely).
fs::path demo_dir() { return fs::path(L2A_TEST_WORK_DIR) / "cli" / "demo-model"; }

// Creating the demo model prints a note on first use; tests that count stderr lines should not
// depend on which test happens to run first.
class DemoModelEnvironment : public ::testing::Environment {
public:
    void SetUp() override { l2a::ensure_untrained_model(demo_dir()); }
};
const auto* const kDemoEnvironment = ::testing::AddGlobalTestEnvironment(new DemoModelEnvironment);

// Each test works in its own folder, removed again when the test passes (failures keep theirs
// for inspection).
class Cli : public l2a::test::ScratchDirTest {
protected:
    Cli() : ScratchDirTest("cli") {}
};

struct Result {
    int status = -1;
    std::string out;
    std::string err;

    int err_lines() const {
        int lines = 0;
        for (char c : err) lines += c == '\n';
        return lines;
    }
};

// Runs `l2a <args>` (args already shell-quoted where needed) in `dir`.
// `demo` is the folder that --demo reads (L2A_DEMO_DIR): the untrained model by default, which
// keeps these tests' numbers independent of the shipped model; empty: the shipped demo model.
Result l2a(const std::string& args, const fs::path& dir, const fs::path& demo = demo_dir()) {
    const fs::path out = dir / "stdout.txt";
    const fs::path err = dir / "stderr.txt";
    const std::string demo_env = demo.empty() ? std::string("env -u L2A_DEMO_DIR ")
                                              : "L2A_DEMO_DIR=" + shell_quote(demo.string()) + " ";
    const std::string command = "cd " + shell_quote(dir.string()) + " && " + demo_env +
                                shell_quote(kBinary.string()) + " " + args + " >" +
                                shell_quote(out.string()) + " 2>" + shell_quote(err.string()) +
                                " </dev/null";
    const int raw = std::system(command.c_str());
    Result result;
    result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    result.out = read_file(out);
    result.err = read_file(err);
    return result;
}

// Whether this build and machine run the demo model on a CUDA GPU (the GPU cases skip without).
bool cuda_here(const fs::path& dir) {
    return l2a("run --demo --device cuda --max-tokens 2 --quiet", dir).status == 0;
}

bool contains(const std::string& text, const std::string& piece) {
    return text.find(piece) != std::string::npos;
}

// A copy of the demo model that a test may damage.
fs::path copy_of_demo(const fs::path& dir) {
    const fs::path scratch = dir / "model-copy";
    fs::copy(demo_dir(), scratch, fs::copy_options::recursive);
    return scratch;
}

#define EXPECT_ONE_LINE_ERROR(result, status_code, piece)                        \
    do {                                                                         \
        EXPECT_EQ((result).status, status_code) << (result).out << (result).err; \
        EXPECT_EQ((result).err_lines(), 1) << (result).err;                      \
        EXPECT_TRUE(contains((result).err, piece))                               \
            << "expected '" << (piece) << "' in: " << (result).err;              \
    } while (false)

TEST_F(Cli, HelpOfEveryCommandExitsZero) {
    const fs::path& dir = dir_;
    for (const char* args : {"--help", "help", "help run", "info --help", "run --help",
                             "export --help", "run -h", "help --help", "help -h", "help help"}) {
        const Result r = l2a(args, dir);
        EXPECT_EQ(r.status, 0) << args << ": " << r.err;
        EXPECT_TRUE(contains(r.out, "Usage: l2a")) << args << ": " << r.out;
        EXPECT_TRUE(r.err.empty()) << args << ": " << r.err;
    }
    EXPECT_TRUE(contains(l2a("run --help", dir).out, "--max-tokens"));
    const Result version = l2a("--version", dir);
    EXPECT_EQ(version.status, 0);
    EXPECT_TRUE(contains(version.out, "l2a 0.")) << version.out;
}

// Option descriptions start in one column within each block of a help text, and the lines that
// continue a description start there too. Returns the misaligned lines.
std::vector<std::string> misaligned_help_lines(const std::string& help) {
    std::vector<std::string> bad;
    std::istringstream lines(help);
    std::string line;
    int column = -1;  // of the current block of option lines; -1 outside one
    const auto indent = [](const std::string& l) {
        return static_cast<int>(l.find_first_not_of(' '));
    };
    while (std::getline(lines, line)) {
        const int lead = line.empty() ? -1 : indent(line);
        // "  --name VALUE   text" or "  name   text" (a command or a format): a term of at most
        // two words after an indent of 1-4, then two or more spaces, then the description.
        const std::size_t gap = line.find("  ", lead > 0 ? static_cast<std::size_t>(lead) : 0);
        const bool term_line = lead >= 1 && lead <= 4 && gap != std::string::npos &&
                               gap + 2 < line.size() &&
                               line.find_first_not_of(' ', gap) != std::string::npos;
        if (term_line) {
            const int description = static_cast<int>(line.find_first_not_of(' ', gap));
            const bool option = line[static_cast<std::size_t>(lead)] == '-';
            if (column < 0 && !option && lead != 2) {
                column = -1;
                continue;
            }
            if (column < 0) {
                column = description;
            } else if (description != column) {
                bad.push_back(line);
            }
            continue;
        }
        if (column >= 0 && lead > 4) {  // a description going on
            if (lead != column) bad.push_back(line);
            continue;
        }
        column = -1;
    }
    return bad;
}

TEST_F(Cli, HelpColumnsAlign) {
    // The check itself catches a shifted description.
    EXPECT_EQ(misaligned_help_lines("Options:\n  --a X     one\n  --bb      two\n").size(), 0u);
    EXPECT_EQ(misaligned_help_lines("Options:\n  --a X     one\n  --bb       two\n").size(), 1u);
    EXPECT_EQ(misaligned_help_lines("Options:\n  --a X     one\n             more\n").size(), 1u);
    for (const char* command :
         {"", "info", "run", "export", "bench", "whatif", "suggest-prune", "make-docs", "construct",
          "train", "convert", "evaluate", "serve"}) {
        SCOPED_TRACE(command);
        const Result r = l2a(std::string("help ") + command, dir_);
        ASSERT_EQ(r.status, 0) << r.err;
        for (const std::string& line : misaligned_help_lines(r.out)) ADD_FAILURE() << line;
        std::istringstream lines(r.out);
        std::string line;
        while (std::getline(lines, line)) EXPECT_LE(line.size(), 100u) << line;
    }
    // The export usage line names every format.
    const std::string usage = l2a("export --help", dir_).out;
    EXPECT_TRUE(contains(usage.substr(0, usage.find("\n\n")), "json|chrome|csv|html|pdf")) << usage;
}

TEST_F(Cli, UsageMistakesExitTwoWithOneLine) {
    const struct {
        const char* args;
        const char* error;  // part of the one line on stderr
    } mistakes[] = {
        {"run --foo", "l2a run: unknown option '--foo' (see l2a run --help)"},
        {"run --demo --max-tokens", "'--max-tokens' needs a value"},
        {"run --demo --doc ''", "'--doc' needs a value (it is empty)"},
        {"run --demo --doc=", "'--doc' needs a value (it is empty)"},
        {"export --profile '' --format csv", "'--profile' needs a value (it is empty)"},
        {"run --demo --max-tokens abc", "--max-tokens: 'abc' is not a whole number"},
        {"run --demo --threshold 1.5", "--threshold"},
        {"run --demo --routing sometimes", "--routing"},
        {"run --doc x.txt", "--model DIR or --demo"},
        {"info --demo extra", "unexpected argument 'extra'"},
        {"run --demo --backend kernels", "--backend kernels: runs on CUDA devices only"},
        {"run --demo --backend flash", "--backend flash: expected reference, sdpa or kernels"},
        {"frobnicate", "unknown command 'frobnicate'"},
        {"export --profile p.l2a --format xml", "unknown format 'xml'"},
    };
    for (const auto& mistake : mistakes) {
        SCOPED_TRACE(mistake.args);
        const Result r = l2a(mistake.args, dir_);
        EXPECT_ONE_LINE_ERROR(r, 2, mistake.error);
    }
}

TEST_F(Cli, DevicesThatCannotRunAreOneLineErrors) {
    Result r = l2a("run --demo --device gpu", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "--device gpu: expected cpu, cuda or cuda:N");
    r = l2a("run --demo --device cuda:99", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "--device cuda:99");
    EXPECT_ONE_LINE_ERROR(r, 1, "available: cpu");
    r = l2a("run --demo --dtype bf16", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "--dtype bf16: the CPU engine runs fp32 only");
}

TEST_F(Cli, InfoDescribesTheDemoModel) {
    const fs::path& dir = dir_;
    Result r = l2a("info --demo", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "l2a_qwen3")) << r.out;
    EXPECT_TRUE(contains(r.out, "UNTRAINED")) << r.out;
    EXPECT_TRUE(contains(r.out, "sliding window 256")) << r.out;
    EXPECT_TRUE(contains(r.out, "KV cache")) << r.out;

    r = l2a("info --demo --json", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["num_layers"], 6);
    EXPECT_EQ(j["untrained"], true);
    // 2 (K and V) x 2 kv heads x 64 x 2 bytes (bf16)
    EXPECT_EQ(j["kv_cache"]["bytes_per_token_per_layer_per_cache"], 512);
    EXPECT_EQ(j["kv_cache"]["examples"][0]["tokens"], 8192);
    EXPECT_EQ(j["kv_cache"]["examples"][0]["without_l2a_bytes"], 6 * 8192 * 512);
    EXPECT_EQ(j["kv_cache"]["examples"][0]["with_l2a_bytes"], 6 * (8192 + 256) * 512);
    EXPECT_GT(j["parameter_count"].get<std::int64_t>(), 5'000'000);
}

// Without L2A_DEMO_DIR, --demo is the trained model shipped with the tool.
TEST_F(Cli, DemoIsTheShippedTrainedModel) {
    const fs::path& dir = dir_;
    Result r = l2a("info --demo --json", dir, fs::path());
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    const json j = json::parse(r.out);
    EXPECT_EQ(j["untrained"], false);
    EXPECT_EQ(j["model_type"], "l2a_qwen3");
    r = l2a("run --demo --max-tokens 2048", dir, fs::path());
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains(r.out, "UNTRAINED")) << r.out;
    EXPECT_TRUE(contains(r.out, "<demo document>: 2,048 tokens")) << r.out;
}

TEST_F(Cli, MissingDemoModelIsAOneLineError) {
    const fs::path& dir = dir_;
    const Result r = l2a("run --demo", dir, dir / "no-such-folder");
    EXPECT_ONE_LINE_ERROR(r, 1, "demo model is missing");
    EXPECT_TRUE(contains(r.err, (dir / "no-such-folder").string())) << r.err;
}

TEST_F(Cli, RunDemoPrintsTheReportWithTheUntrainedLabel) {
    const fs::path& dir = dir_;
    const Result r = l2a("run --demo --max-tokens 256", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "UNTRAINED")) << r.out;
    EXPECT_TRUE(contains(r.out, "<demo document>: 256 tokens")) << r.out;
    EXPECT_TRUE(contains(r.out, "perplexity")) << r.out;
    EXPECT_TRUE(contains(r.out, "KV cache")) << r.out;
    EXPECT_TRUE(contains(r.out, "tokens/s")) << r.out;
    EXPECT_TRUE(contains(r.err, "truncated to 256 (--max-tokens)")) << r.err;
}

TEST_F(Cli, RunOutThenExportJson) {
    const fs::path& dir = dir_;
    Result r =
        l2a("run --demo --max-tokens 200 --routing random:0.25 --seed 7 --prune 1,3 "
            "--out p.l2a --quiet",
            dir);
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_TRUE(fs::exists(dir / "p.l2a"));

    r = l2a("export --profile p.l2a --format json --out e.json", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(read_file(dir / "e.json"));
    for (const char* key : {"model", "document", "run", "layers", "metrics", "timing"}) {
        EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["model"]["model_type"], "l2a_qwen3");
    EXPECT_EQ(j["model"]["num_layers"], 6);
    EXPECT_EQ(j["model"]["hidden_size"], 256);
    EXPECT_EQ(j["model"]["untrained"], true);
    EXPECT_EQ(j["document"]["path"], "<demo document>");
    EXPECT_EQ(j["document"]["num_tokens"], 200);
    EXPECT_EQ(j["document"]["truncated"], true);
    EXPECT_EQ(j["run"]["routing"], "random:0.25");
    EXPECT_EQ(j["run"]["seed"], 7);
    EXPECT_EQ(j["run"]["prune"], json::array({1, 3}));
    ASSERT_EQ(j["layers"].size(), 6u);
    EXPECT_EQ(j["layers"][1]["pruned"], true);
    EXPECT_EQ(j["layers"][1]["global_fraction"], 0.0);
    EXPECT_EQ(j["layers"][1]["kv_global_bytes"], 0);
    EXPECT_GT(j["layers"][0]["kv_global_bytes"].get<std::int64_t>(), 0);
    EXPECT_GT(j["metrics"]["mean_nll"].get<double>(), 0.0);
    EXPECT_GT(j["timing"]["wall_seconds"].get<double>(), 0.0);

    // --out - (the default) writes the same document to stdout; --json on run prints it too.
    r = l2a("export --profile p.l2a", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), j);
    r = l2a("run --demo --max-tokens 64 --json", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["document"]["num_tokens"], 64);

#if L2A_TEST_PDF
    r = l2a("export --profile p.l2a --format pdf", dir);
    EXPECT_ONE_LINE_ERROR(r, 2, "give --out FILE.pdf");
    r = l2a("export --profile p.l2a --format pdf --out report.pdf --compare p.l2a", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_file(dir / "report.pdf").rfind("%PDF-", 0), 0u);
#else
    r = l2a("export --profile p.l2a --format pdf --out report.pdf", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "needs a build with Qt 6");
    EXPECT_FALSE(fs::exists(dir / "report.pdf"));
#endif
    r = l2a("export --profile missing.l2a", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "missing.l2a");
    write_file(dir / "garbage.l2a", "not a safetensors file at all");
    r = l2a("export --profile garbage.l2a", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "garbage.l2a");
}

TEST_F(Cli, ExportPerTokenAndPerLayerData) {
    const fs::path& dir = dir_;
    Result r = l2a("run --demo --max-tokens 120 --prune 2 --out p.l2a --quiet", dir);
    ASSERT_EQ(r.status, 0) << r.err;

    // csv: three tables, each named on stderr; the routing table has a row per token and layer.
    r = l2a("export --profile p.l2a --format csv --out t.csv", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "t.layers.csv")) << r.err;
    EXPECT_TRUE(contains(r.err, "t.tokens.csv")) << r.err;
    EXPECT_TRUE(contains(r.err, "t.routing.csv")) << r.err;
    const std::string routing = read_file(dir / "t.routing.csv");
    EXPECT_EQ(routing.rfind("token,layer,router_logit,probability,decision,distant_mass\r\n", 0),
              0u);
    std::size_t rows = 0, pruned_routed = 0;
    for (std::size_t at = routing.find("\r\n"); at != std::string::npos;
         at = routing.find("\r\n", at + 2)) {
        ++rows;
        const std::size_t next = routing.find("\r\n", at + 2);
        if (next == std::string::npos) break;
        const std::string row = routing.substr(at + 2, next - at - 2);
        std::vector<std::string> fields;
        std::stringstream cells(row);
        for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
        if (row.back() == ',') fields.emplace_back();  // the empty distant_mass (no oracle)
        ASSERT_EQ(fields.size(), 6u) << row;
        EXPECT_EQ(fields[5], "") << row;
        if (fields[1] == "2" && fields[4] == "1") ++pruned_routed;
    }
    EXPECT_EQ(rows, 1u + 120u * 6u);
    EXPECT_EQ(pruned_routed, 0u);  // layer 2 is pruned: decision 0 for every token

    // json: the tokens and each layer's arrays by default, left out with --detail summary.
    r = l2a("export --profile p.l2a --format json --out full.json", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json full = json::parse(read_file(dir / "full.json"));
    ASSERT_EQ(full["tokens"].size(), 120u);
    EXPECT_EQ(full["tokens"][0]["byte_begin"], 0);
    EXPECT_TRUE(full["tokens"][0]["nll"].is_null());  // nothing predicts the first token
    EXPECT_EQ(full["layers"][3]["decisions"].size(), 120u);
    EXPECT_EQ(full["layers"][3]["router_logits"].size(), 120u);
    r = l2a("export --profile p.l2a --detail summary", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const json summary = json::parse(r.out);
    EXPECT_FALSE(summary.contains("tokens"));
    EXPECT_FALSE(summary["layers"][3].contains("decisions"));

    r = l2a("export --profile p.l2a --detail brief", dir);
    EXPECT_ONE_LINE_ERROR(r, 2, "--detail: unknown level 'brief'");
    r = l2a("export --profile p.l2a --format csv --out u.csv --detail summary", dir);
    EXPECT_ONE_LINE_ERROR(r, 2, "--detail: only --format json");
    EXPECT_FALSE(fs::exists(dir / "u.layers.csv"));
}

// Every file an export writes gets one line on stderr (none with --quiet); what goes to standard
// output gets none.
TEST_F(Cli, ExportSaysWhatItWrote) {
    ASSERT_EQ(l2a("run --demo --max-tokens 32 --quiet --out p.l2a", dir_).status, 0);
    const struct {
        const char* args;
        std::vector<std::string> files;
    } exports[] = {
        {"--format json --out e.json", {"e.json"}},
        {"--format chrome --out t.json", {"t.json"}},
        {"--format html --out r.html", {"r.html"}},
        {"--format csv --out run.csv", {"run.layers.csv", "run.tokens.csv", "run.routing.csv"}},
    };
    for (const auto& e : exports) {
        SCOPED_TRACE(e.args);
        const Result r = l2a(std::string("export --profile p.l2a ") + e.args, dir_);
        ASSERT_EQ(r.status, 0) << r.err;
        for (const std::string& file : e.files) {
            EXPECT_TRUE(fs::exists(dir_ / file)) << file;
            EXPECT_TRUE(contains(r.err, "l2a: wrote " + file + "\n")) << r.err;
        }
        EXPECT_EQ(r.err_lines(), static_cast<int>(e.files.size())) << r.err;
    }
    // "perfetto" names the same Chrome trace (which Perfetto opens).
    Result r = l2a("export --profile p.l2a --format perfetto --out p.json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_file(dir_ / "p.json"), read_file(dir_ / "t.json"));
    r = l2a("export --profile p.l2a --format json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    // --quiet: the same files, no lines naming them.
    fs::remove(dir_ / "run.tokens.csv");
    r = l2a("export --profile p.l2a --format csv --out run.csv --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(fs::exists(dir_ / "run.tokens.csv"));
    // run names the files it saved too (--quiet leaves them out).
    r = l2a("run --demo --max-tokens 16 --out q.l2a --logits-out q.safetensors", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: wrote q.l2a\n")) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: wrote q.safetensors\n")) << r.err;
}

using l2a::test::ScopedEnv;

int count_of(const std::string& text, const std::string& piece) {
    int n = 0;
    for (std::size_t at = text.find(piece); at != std::string::npos; at = text.find(piece, at + 1))
        ++n;
    return n;
}

// Without a terminal, long commands print one line per stage on stderr (not a redrawn bar).
// L2A_PROGRESS_SECONDS=0 makes every run "long" and lets every stage through.
TEST_F(Cli, ProgressWithoutATerminalIsOneLinePerStage) {
    const ScopedEnv every_stage("L2A_PROGRESS_SECONDS", "0");
    Result r = l2a("run --demo --max-tokens 64", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains(r.err, "\r")) << r.err;
    EXPECT_FALSE(contains(r.err, "\x1b[")) << r.err;
    for (int layer = 0; layer < 6; ++layer) {
        const std::string at = "l2a: prefill of 64 tokens: layer " + std::to_string(layer);
        EXPECT_EQ(count_of(r.err, at + " of 0-5 ("), 1) << layer << ": " << r.err;
        EXPECT_EQ(count_of(r.err, at + " of 0-5: mlp ("), 1) << layer << ": " << r.err;
    }
    EXPECT_EQ(count_of(r.err, "l2a: prefill of 64 tokens: LM head and per-token loss ("), 1)
        << r.err;
    EXPECT_EQ(count_of(r.err, "l2a: prefill of 64 tokens done in "), 1) << r.err;
    r = l2a("run --demo --max-tokens 64 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains(r.err, "prefill of")) << r.err;

    ASSERT_EQ(l2a("run --demo --max-tokens 48 --quiet --out base.l2a", dir_).status, 0);
    r = l2a("whatif --profile base.l2a --prune 3", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: re-run of the base, 48 tokens: layer 0 of 0-5 (")) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: re-run of the base, 48 tokens done in ")) << r.err;
    // The variant re-runs from the pruned layer: the layers below it are the base's.
    EXPECT_TRUE(contains(r.err, "l2a: variant: layer 3 of 0-5 (")) << r.err;
    EXPECT_FALSE(contains(r.err, "l2a: variant: layer 2 of 0-5")) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: variant done in ")) << r.err;

    // A run shorter than the quiet period prints nothing (a long period: the machine may be busy).
    const ScopedEnv quiet_period("L2A_PROGRESS_SECONDS", "60");
    r = l2a("run --demo --max-tokens 8", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, "truncated to 8 (--max-tokens)\n")) << r.err;
}

// whatif --prune "": the variant prunes no layer (the one option whose empty value means
// something; every other empty value is a usage error).
TEST_F(Cli, WhatIfPruneEmptyUnprunesThePrunedBase) {
    ASSERT_EQ(l2a("run --demo --max-tokens 48 --quiet --prune 1 --out pruned.l2a", dir_).status, 0);
    const Result r = l2a("whatif --profile pruned.l2a --prune '' --ttft-repeats 0 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "pruned: 1")) << r.out;
    EXPECT_TRUE(contains(r.out, "pruned: none (re-run from layer 1)")) << r.out;
}

TEST_F(Cli, LogitsOutMatchesTheProfile) {
    const fs::path& dir = dir_;
    const Result r =
        l2a("run --demo --max-tokens 48 --out p.l2a --logits-out logits.safetensors", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const l2a::Profile profile = l2a::load_profile(dir / "p.l2a");
    const l2a::SafetensorsFile file = l2a::SafetensorsFile::open(dir / "logits.safetensors");
    const l2a::TensorView logits = file.view("logits");
    ASSERT_EQ(logits.info->dtype, l2a::DType::F32);
    ASSERT_EQ(logits.info->shape, (std::vector<std::int64_t>{48, 264}));
    const std::vector<float> values = l2a::test::elements_of<float>(logits);
    // The NLL of token t is -log_softmax(logits[t - 1])[token t].
    for (std::size_t t = 1; t < 48; ++t) {
        const float* row = values.data() + (t - 1) * 264;
        double max = row[0];
        for (int v = 0; v < 264; ++v) max = std::max(max, static_cast<double>(row[v]));
        double sum = 0;
        for (int v = 0; v < 264; ++v) sum += std::exp(row[v] - max);
        const double nll = max + std::log(sum) - row[profile.token_ids[t]];
        EXPECT_NEAR(nll, profile.token_nll[t], 1e-3) << "token " << t;
    }
}

TEST_F(Cli, MissingModelFolder) {
    const fs::path& dir = dir_;
    write_file(dir / "doc.txt", "hello");
    const Result r = l2a("run --model no-such-model --doc doc.txt", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "no-such-model");
    EXPECT_TRUE(contains(r.err, "l2a: error: ")) << r.err;
}

TEST_F(Cli, CorruptWeights) {
    const fs::path& dir = dir_;
    const fs::path model = copy_of_demo(dir);
    fs::resize_file(model / "model.safetensors", fs::file_size(model / "model.safetensors") / 2);
    write_file(dir / "doc.txt", "hello");
    const Result r = l2a("run --model model-copy --doc doc.txt", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "model.safetensors");
}

TEST_F(Cli, MalformedConfig) {
    const fs::path& dir = dir_;
    const fs::path model = copy_of_demo(dir);
    write_file(model / "config.json", "{ \"model_type\": \"l2a_qwen3\", ");
    write_file(dir / "doc.txt", "hello");
    Result r = l2a("run --model model-copy --doc doc.txt", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "config.json: malformed JSON at line 1, column 30: ");
    EXPECT_FALSE(contains(r.err, "json.exception")) << r.err;
    r = l2a("info --model model-copy", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "config.json");

    // The JSON of a profile's metadata and of a --tokens file too: where, then why.
    l2a::SafetensorsWriter broken((dir / "broken.l2a").string());
    broken.set_metadata("l2a.profile", "{\"format_version\": 2,");
    broken.finish();
    r = l2a("export --profile broken.l2a", dir);
    EXPECT_ONE_LINE_ERROR(r, 1,
                          "broken.l2a: profile metadata: malformed JSON at line 1, column 22: ");
    EXPECT_FALSE(contains(r.err, "json.exception")) << r.err;
    write_file(dir / "ids.json", "[1, 2,\n 3 4]");
    r = l2a("run --demo --tokens ids.json", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "ids.json: malformed JSON at line 2, column 4: ");
    EXPECT_FALSE(contains(r.err, "json.exception")) << r.err;
}

TEST_F(Cli, MissingTokenizer) {
    const fs::path& dir = dir_;
    const fs::path model = copy_of_demo(dir);
    fs::remove(model / "tokenizer.json");
    write_file(dir / "doc.txt", "hello");
    Result r = l2a("run --model model-copy --doc doc.txt", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "model-copy");
    EXPECT_TRUE(contains(r.err, "tokenizer.json")) << r.err;

    // Token ids still work without a tokenizer.
    write_file(dir / "ids.json", "[72, 101, 108, 108, 111]");
    r = l2a("run --model model-copy --tokens ids.json --quiet", dir);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "ids.json: 5 tokens")) << r.out;
}

TEST_F(Cli, MalformedTokenizer) {
    const fs::path& dir = dir_;
    const fs::path model = copy_of_demo(dir);
    write_file(model / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": 3}}");
    write_file(dir / "doc.txt", "hello");
    const Result r = l2a("run --model model-copy --doc doc.txt", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "tokenizer.json");
    EXPECT_FALSE(contains(r.err, "json.exception")) << r.err;
}

TEST_F(Cli, EmptyDocument) {
    const fs::path& dir = dir_;
    write_file(dir / "empty.txt", "");
    const Result r = l2a("run --demo --doc empty.txt", dir);
    EXPECT_ONE_LINE_ERROR(r, 1, "empty.txt");
}

TEST_F(Cli, InvalidUtf8IsReplacedWithAWarning) {
    const fs::path& dir = dir_;
    write_file(dir / "bad.txt", "caf\xc3 au lait \xff\xfe ok");
    const Result r = l2a("run --demo --doc bad.txt --out p.l2a --quiet", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, "warning: bad.txt: replaced 3 invalid UTF-8 sequences")) << r.err;
    const l2a::Profile p = l2a::load_profile(dir / "p.l2a");
    EXPECT_EQ(p.replaced_sequences, 3u);
    EXPECT_TRUE(contains(p.document_text, "\xef\xbf\xbd")) << "U+FFFD expected";
}

TEST_F(Cli, MaxTokensTruncationIsReported) {
    const fs::path& dir = dir_;
    write_file(dir / "doc.txt", std::string(1500, 'a'));  // one token per byte in the demo
    const Result r = l2a("run --demo --doc doc.txt --max-tokens 100 --out p.l2a", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "doc.txt: 1,500 tokens, truncated to 100 (--max-tokens)")) << r.err;
    const l2a::Profile p = l2a::load_profile(dir / "p.l2a");
    EXPECT_EQ(p.num_tokens(), 100);
    EXPECT_EQ(p.tokens_before_truncation, 1500);
    EXPECT_EQ(p.document_text, std::string(100, 'a'));
}

TEST_F(Cli, BadTokenFiles) {
    const fs::path& dir = dir_;
    const struct {
        const char* file;
        const char* content;
        const char* error;  // part of the one line on stderr
    } bad_files[] = {
        {"broken.json", "[1, 2,", "broken.json: malformed JSON"},
        {"object.json", "{\"ids\": [1]}", "object.json: expected a JSON array"},
        {"text.json", "[1, \"two\"]", "text.json: entry 1"},
        {"large.json", "[1, 264]", "large.json: token id 264 at position 1"},
        {"huge.json", "[9223372036854775808]",
         "huge.json: token id 9223372036854775808 at position 0 is outside any vocabulary"},
        {"negative.json", "[-3]", "negative.json: token id -3 at position 0"},
        {"none.json", "[]", "none.json"},
    };
    for (const auto& bad : bad_files) {
        SCOPED_TRACE(bad.file);
        write_file(dir / bad.file, bad.content);
        const Result r = l2a(std::string("run --demo --tokens ") + bad.file, dir);
        EXPECT_ONE_LINE_ERROR(r, 1, bad.error);
    }

    write_file(dir / "good.json", "[72, 105, 256]");
    const Result r = l2a("run --demo --tokens good.json --out p.l2a", dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(l2a::load_profile(dir / "p.l2a").document_text, "Hi<|endoftext|>");
}

TEST_F(Cli, PruneOutOfRange) {
    const fs::path& dir = dir_;
    Result r = l2a("run --demo --max-tokens 16 --prune 9", dir);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;  // the error alone: nothing ran
    EXPECT_TRUE(contains(r.err, "--prune")) << r.err;
    EXPECT_TRUE(contains(r.err, "9")) << r.err;
    r = l2a("run --demo --prune x", dir);
    EXPECT_ONE_LINE_ERROR(r, 2, "--prune");
}

// Whether process `pid` has a handler for `signal` (Linux: the SigCgt mask in /proc).
bool catches(pid_t pid, int signal) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("SigCgt:", 0) == 0) {
            const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
            return (mask >> (signal - 1)) & 1;
        }
    }
    return false;
}

// How a signalled command ended.
struct Stopped {
    bool exited = false;  // false: killed by the signal instead of stopping cleanly
    int status = -1;
    std::string err;
};

// Starts `l2a <args>` (absolute paths) with the untrained demo model, waits until it handles
// `signal` and `delay` more, sends it, and waits for the end.
Stopped interrupt(std::vector<std::string> args, int signal, const fs::path& err_file,
                  std::chrono::milliseconds delay) {
    args.insert(args.begin(), kBinary.string());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = {"L2A_DEMO_DIR=" + demo_dir().string()};
    for (char** e = environ; *e; ++e) {
        if (std::strncmp(*e, "L2A_DEMO_DIR=", 13) != 0) env_strings.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string err = err_file.string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    Stopped stopped;
    if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) {
        ADD_FAILURE() << "cannot start " << kBinary;
        return stopped;
    }
    posix_spawn_file_actions_destroy(&actions);
    // Wait until the handler is in place (loading LibTorch can take a while on a busy machine),
    // then give the command time to get into its work.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!catches(pid, signal) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(delay);
    ::kill(pid, signal);
    int raw = 0;
    EXPECT_EQ(::waitpid(pid, &raw, 0), pid);
    stopped.exited = WIFEXITED(raw);
    stopped.status = stopped.exited ? WEXITSTATUS(raw) : -1;
    stopped.err = read_file(err_file);
    return stopped;
}

// Nothing in `dir` whose name contains one of `pieces` (outputs and their temporary files).
void expect_no_files_named(const fs::path& dir, std::initializer_list<const char*> pieces) {
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        for (const char* piece : pieces) {
            EXPECT_FALSE(contains(name, piece)) << entry.path();
        }
    }
}

std::string long_document(const fs::path& dir) {
    const std::string doc = (dir / "long.txt").string();
    std::string text;
    while (text.size() < 60000) text += "All work and no play makes a dull log. ";
    write_file(doc, text);
    return doc;
}

// Ctrl-C, SIGTERM and SIGHUP during a long run: exit status 130, "l2a: cancelled", and neither
// the profile nor the logits written, nor any temporary file left.
TEST_F(Cli, InterruptCancelsWithoutWriting) {
    const fs::path& dir = dir_;
    ASSERT_EQ(l2a("info --demo", dir).status, 0);  // the model exists before the clock starts
    const std::string doc = long_document(dir);
    const std::string out = (dir / "p.l2a").string();
    const std::string logits = (dir / "logits.safetensors").string();
    int interrupted = 0;
    for (const int signal : {SIGINT, SIGTERM, SIGHUP}) {
        SCOPED_TRACE(strsignal(signal));
        const Stopped s =
            interrupt({"run", "--demo", "--doc", doc, "--out", out, "--logits-out", logits}, signal,
                      dir / "stderr.txt", std::chrono::milliseconds(1500));
        ASSERT_TRUE(s.exited) << "killed by the signal instead of stopping cleanly";
        if (s.status == 0) continue;  // the run finished before the signal
        ++interrupted;
        EXPECT_EQ(s.status, 130) << s.err;
        EXPECT_TRUE(contains(s.err, "l2a: cancelled")) << s.err;
        EXPECT_FALSE(fs::exists(out));
        EXPECT_FALSE(fs::exists(logits));
        expect_no_files_named(dir, {"p.l2a", "logits", ".tmp"});
    }
    if (interrupted == 0) GTEST_SKIP() << "every run finished before the signal";
}

// whatif, suggest-prune, export and train stop as run does: 130, one line, no partial output.
TEST_F(Cli, EveryLongCommandCancelsCleanly) {
    const fs::path& dir = dir_;
    ASSERT_EQ(l2a("info --demo", dir).status, 0);
    long_document(dir);
    // A base profile of the long document to re-run.
    ASSERT_EQ(l2a("run --demo --doc long.txt --max-tokens 4000 --out base.l2a --quiet", dir).status,
              0);
    const std::string base = (dir / "base.l2a").string();
    int interrupted = 0;
    auto check = [&](std::vector<std::string> args, int signal,
                     std::initializer_list<const char*> outputs) {
        SCOPED_TRACE(args.front() + " / " + strsignal(signal));
        const Stopped s =
            interrupt(args, signal, dir / "stderr.txt", std::chrono::milliseconds(1500));
        ASSERT_TRUE(s.exited) << "killed by the signal instead of stopping cleanly";
        if (s.status == 0) return;  // it finished before the signal
        ++interrupted;
        EXPECT_EQ(s.status, 130) << s.err;
        EXPECT_TRUE(contains(s.err, "l2a: cancelled")) << s.err;
        expect_no_files_named(dir, outputs);
    };
    check({"whatif", "--demo", "--profile", base, "--threshold", "0.3", "--out",
           (dir / "variant.l2a").string()},
          SIGINT, {"variant", ".tmp"});
    check({"suggest-prune", "--demo", "--profile", base, "--max-dnll", "1000"}, SIGTERM, {".tmp"});

    ASSERT_EQ(
        l2a("make-docs --out docs --count 2 --tokens 4096 --min-distance 300 --quiet", dir).status,
        0);
    const std::string demo =
        json::parse(l2a("info --demo --json", dir).out)["path"].get<std::string>();
    check({"train", "--model", demo, "--data", (dir / "docs").string(), "--out",
           (dir / "run").string(), "--steps", "100000", "--batch", "1", "--seq-len", "256",
           "--warmup", "1"},
          SIGINT, {".tmp", ".writing"});
    // A cancelled training run keeps the complete checkpoint it stopped at, so it can resume.
    if (fs::exists(dir / "run")) {
        EXPECT_TRUE(fs::exists(dir / "run/last/train_state.json"));
    }
    if (interrupted == 0) GTEST_SKIP() << "every command finished before the signal";
}

// An output is refused before any work when it is one of the inputs (by another name too), a
// folder, or in a folder that does not exist.
TEST_F(Cli, OutputsAreCheckedBeforeAnyWork) {
    const fs::path& dir = dir_;
    write_file(dir / "doc.txt", "Hello there, general Kenobi.");
    ASSERT_EQ(l2a("run --demo --doc doc.txt --out p.l2a --quiet", dir).status, 0);
    const std::string doc_before = read_file(dir / "doc.txt");
    const std::string profile_before = read_file(dir / "p.l2a");
    fs::create_directories(dir / "sub");
    const struct {
        const char* args;
        int status;
        const char* error;
    } mistakes[] = {
        {"run --demo --doc doc.txt --out doc.txt", 2,
         "--out doc.txt names the same file as --doc doc.txt"},
        {"run --demo --doc doc.txt --out sub/../doc.txt", 2,
         "names the same file as --doc doc.txt"},
        {"run --demo --doc doc.txt --out p2.l2a --logits-out doc.txt", 2,
         "--logits-out doc.txt names the same file as --doc"},
        {"run --demo --doc doc.txt --out x.l2a --logits-out x.l2a", 2,
         "names the same file as --logits-out"},
        {"whatif --demo --profile p.l2a --out ./p.l2a --prune 1", 2,
         "names the same file as --profile p.l2a"},
        {"export --profile p.l2a --out p.l2a", 2, "names the same file as --profile p.l2a"},
        {"run --demo --doc doc.txt --out missing/p.l2a", 1, "--out missing/p.l2a: the folder"},
        {"run --demo --doc doc.txt --out sub", 1, "--out sub: is a folder"},
        {"run --demo --doc doc.txt --logits-out missing/l.safetensors", 1, "does not exist"},
        {"whatif --demo --profile p.l2a --prune 1 --out missing/v.l2a", 1,
         "--out missing/v.l2a: the folder"},
        {"export --profile p.l2a --format html --out missing/r.html", 1, "does not exist"},
        {"evaluate --demo --docs sub --out missing/e.json", 1, "does not exist"},
        {"train --model m --data docs --out doc.txt/run", 1, "--out doc.txt/run"},
    };
    for (const auto& mistake : mistakes) {
        SCOPED_TRACE(mistake.args);
        const Result r = l2a(mistake.args, dir);
        EXPECT_ONE_LINE_ERROR(r, mistake.status, mistake.error);
        EXPECT_TRUE(r.out.empty()) << r.out;
    }
    EXPECT_EQ(read_file(dir / "doc.txt"), doc_before);
    EXPECT_EQ(read_file(dir / "p.l2a"), profile_before);
    EXPECT_FALSE(fs::exists(dir / "missing"));
}

// A long document with a small --max-tokens is read only as far as needed, and says so; a
// device gives a clear error instead of filling memory.
TEST_F(Cli, MaxTokensReadsOnlyTheBeginningOfALongDocument) {
    std::string text;
    while (text.size() < 3'000'000) text += "All work and no play makes Jack a dull boy.\n";
    write_file(dir_ / "big.txt", text);
    Result r = l2a("run --demo --doc big.txt --max-tokens 64 --quiet --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: big.txt: read the first ")) << r.err;
    EXPECT_TRUE(contains(r.err, " of 3,000,")) << r.err;
    EXPECT_TRUE(contains(r.err, "bytes: at least ")) << r.err;
    EXPECT_TRUE(contains(r.err, "tokens, truncated to 64 (--max-tokens)")) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["document"]["num_tokens"], 64);
    EXPECT_TRUE(j["document"]["truncated"].get<bool>());
    // The same 64 tokens as from a file that holds just their text.
    const std::string kept = j["document"]["num_bytes"].dump();
    write_file(dir_ / "head.txt", text.substr(0, std::stoul(kept)));
    const Result head = l2a("run --demo --doc head.txt --quiet --json", dir_);
    ASSERT_EQ(head.status, 0) << head.err;
    EXPECT_EQ(json::parse(head.out)["metrics"], j["metrics"]);

    r = l2a("run --demo --doc /dev/zero --quiet", dir_);
    EXPECT_ONE_LINE_ERROR(
        r, 1, "/dev/zero: is not a regular file (a pipe or device) and gives more than 64 MiB");
    r = l2a("run --demo --doc /dev/zero --max-tokens 10 --quiet", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "/dev/zero: is not a regular file");
}

// ---- weights and activations that are not numbers ---------------------------------------------

using TensorEdit = std::function<void(std::vector<float>&)>;

// A copy of the demo model in dir/`folder` whose F32 tensors named in `edits` are changed.
fs::path demo_with_tensors(const fs::path& dir, const std::string& folder,
                           const std::map<std::string, TensorEdit>& edits) {
    const fs::path copy = dir / folder;
    fs::create_directories(copy);
    for (const char* file : {"config.json", "tokenizer.json"})
        fs::copy_file(demo_dir() / file, copy / file);
    const l2a::SafetensorsFile source =
        l2a::SafetensorsFile::open(demo_dir() / "model.safetensors");
    l2a::SafetensorsWriter writer(copy / "model.safetensors");
    std::size_t found = 0;
    for (const l2a::TensorInfo& info : source.tensors()) {
        const l2a::TensorView view = source.view(info);
        const auto edit = edits.find(info.name);
        if (edit == edits.end()) {
            writer.add(info.name, info.dtype, info.shape,
                       std::span<const std::byte>(view.data, view.size_bytes()));
            continue;
        }
        ++found;
        EXPECT_EQ(info.dtype, l2a::DType::F32);
        std::vector<float> values(view.size_bytes() / sizeof(float));
        std::memcpy(values.data(), view.data, view.size_bytes());
        edit->second(values);
        writer.add(info.name, info.dtype, info.shape,
                   std::as_bytes(std::span<const float>(values)));
    }
    EXPECT_EQ(found, edits.size());
    writer.finish();
    return copy;
}

// A NaN in the weights is refused at load, naming the tensor; run anyway on request, the NaN
// reaches the residual stream and the run stops naming the layer (no "mean NLL n/a" report).
TEST_F(Cli, NonFiniteWeightsAreRefusedNamingTheTensor) {
    write_file(dir_ / "doc.txt", "The quick brown fox jumps over the lazy dog. Twice, even.");
    // One NaN in one tensor (the check must see NaN, not only Inf), two infinities in another.
    demo_with_tensors(
        dir_, "nan",
        {{"model.layers.1.mlp.up_proj.weight",
          [](std::vector<float>& v) { v[5] = std::numeric_limits<float>::quiet_NaN(); }},
         {"model.layers.3.mlp.gate_proj.weight", [](std::vector<float>& v) {
              v[1] = std::numeric_limits<float>::infinity();
              v[2] = -std::numeric_limits<float>::infinity();
          }}});
    demo_with_tensors(dir_, "inf",
                      {{"model.layers.3.mlp.gate_proj.weight", [](std::vector<float>& v) {
                            v[1] = std::numeric_limits<float>::infinity();
                            v[2] = -std::numeric_limits<float>::infinity();
                        }}});
    Result r = l2a("run --model inf --doc doc.txt --quiet", dir_);
    EXPECT_ONE_LINE_ERROR(
        r, 1,
        "inf/model.safetensors: tensor 'model.layers.3.mlp.gate_proj.weight' holds 2 "
        "non-finite values (NaN or Inf); refusing");
    r = l2a("run --model nan --doc doc.txt --quiet", dir_);
    EXPECT_ONE_LINE_ERROR(
        r, 1,
        "nan/model.safetensors: tensor 'model.layers.1.mlp.up_proj.weight' holds 1 "
        "non-finite value (NaN or Inf), and 1 more tensor does too; refusing");
    EXPECT_TRUE(contains(r.err, "--allow-nonfinite-weights")) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;

    r = l2a("run --model nan --doc doc.txt --quiet --allow-nonfinite-weights", dir_);
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_EQ(r.err_lines(), 2) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: warning: ")) << r.err;
    EXPECT_TRUE(contains(r.err, "running anyway")) << r.err;
    EXPECT_TRUE(contains(r.err, "layer 1 produced non-finite activations")) << r.err;
    EXPECT_FALSE(contains(r.out, "n/a")) << r.out;
}

// Finite weights whose products overflow: the layer where the residual stream stops being
// finite is named, and nothing is reported or saved.
TEST_F(Cli, NonFiniteActivationsStopTheRunNamingTheLayer) {
    write_file(dir_ / "doc.txt", "The quick brown fox jumps over the lazy dog. Twice, even.");
    demo_with_tensors(dir_, "huge",
                      {{"model.layers.2.post_attention_layernorm.weight",
                        [](std::vector<float>& v) { std::fill(v.begin(), v.end(), 1e38f); }}});
    const Result r = l2a("run --model huge --doc doc.txt --out p.l2a --quiet", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "layer 2 produced non-finite activations (NaN or Inf)");
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "p.l2a"));
}

// A config.json that uses fewer layers than the weights hold says so, once.
TEST_F(Cli, ConfigWithFewerLayersWarnsAboutUnusedTensors) {
    write_file(dir_ / "doc.txt", "The quick brown fox jumps over the lazy dog.");
    const fs::path copy = copy_of_demo(dir_);
    json config = json::parse(read_file(copy / "config.json"));
    ASSERT_EQ(config["num_hidden_layers"], 6);
    config["num_hidden_layers"] = 4;
    write_file(copy / "config.json", config.dump(2));
    int beyond = 0;
    const l2a::SafetensorsFile weights = l2a::SafetensorsFile::open(copy / "model.safetensors");
    for (const l2a::TensorInfo& info : weights.tensors()) {
        beyond += info.name.rfind("model.layers.4.", 0) == 0 ||
                  info.name.rfind("model.layers.5.", 0) == 0;
    }
    ASSERT_GT(beyond, 0);
    const Result r = l2a("run --model model-copy --doc doc.txt --quiet --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err,
              "l2a: warning: model.safetensors: " + std::to_string(beyond) +
                  " tensors of layers 4-5 are not used by config.json (num_hidden_layers = 4)\n");
    EXPECT_EQ(json::parse(r.out)["layers"].size(), 4u);
    // The matching config warns about nothing.
    EXPECT_EQ(l2a("run --demo --doc doc.txt --quiet --json", dir_).err, "");
}

// ---- bench: argument errors, found before any model is made or any GPU is needed -------------

TEST_F(Cli, BenchUnknownShapeListsTheKnownOnes) {
    const Result r = l2a("bench prefill --shape qwen9-1b", dir_);
    EXPECT_ONE_LINE_ERROR(r, 2, "--shape: unknown shape 'qwen9-1b'");
    EXPECT_TRUE(contains(r.err, "qwen3-8b")) << r.err;
    EXPECT_TRUE(contains(r.err, "qwen2.5-7b")) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

// `bench prefill` of the smallest published shape on the CPU, ours alone, with a short window
// and few tokens to keep it quick, then `more`.
std::string tiny_bench(const std::string& tokens, const std::string& more) {
    return "bench prefill --shape qwen2.5-0.5b --device cpu --window 32 --tokens " + tokens +
           " --repeat 1 --no-base " + more;
}

// --no-base times ours alone: no base run, no base figures (the smallest published shape, a
// short window and few tokens on the CPU to keep it quick).
TEST_F(Cli, BenchPrefillShapeWithoutTheBase) {
    const Result r = l2a(tiny_bench("64,96", "--json --quiet"), dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_TRUE(j["base"].is_null()) << j["base"];
    ASSERT_EQ(j["results"].size(), 2u);
    for (const json& row : j["results"]) {
        EXPECT_GT(row["ours_median_seconds"].get<double>(), 0.0) << row;
        EXPECT_FALSE(row.contains("base_median_seconds")) << row;
        EXPECT_FALSE(row.contains("base_over_ours")) << row;
        EXPECT_FALSE(row["ranks"][0].contains("base_peak_device_bytes")) << row;
        EXPECT_FALSE(row.contains("ours_clocks")) << "a CPU has no SM clock to sample: " << row;
    }
    const Result text = l2a(tiny_bench("64", "--quiet"), dir_);
    ASSERT_EQ(text.status, 0) << text.err;
    EXPECT_TRUE(contains(text.out, "base: not run (--no-base)")) << text.out;
    EXPECT_FALSE(contains(text.out, "SM clock")) << text.out;
}

// --warmup sets the untimed run before each length's timed runs: N tokens (at most the length)
// or the length itself; each row says what it was, and the progress lines name it.
TEST_F(Cli, BenchPrefillWarmsUpAsAsked) {
    const Result some = l2a(tiny_bench("64,96", "--warmup 80 --json"), dir_);
    ASSERT_EQ(some.status, 0) << some.err;
    const json j = json::parse(some.out);
    std::vector<std::int64_t> warmups;
    for (const json& row : j["results"])
        warmups.push_back(row["warmup_tokens"].get<std::int64_t>());
    EXPECT_EQ(warmups, (std::vector<std::int64_t>{64, 80}));
    EXPECT_EQ(j["warmup"], 80) << j["warmup"];
    EXPECT_TRUE(contains(some.err, "ours at 64 tokens: warm-up run of 64 tokens")) << some.err;
    EXPECT_TRUE(contains(some.err, "ours at 96 tokens: warm-up run of 80 tokens")) << some.err;

    const Result one = l2a(tiny_bench("64", "--warmup full --json --quiet"), dir_);
    ASSERT_EQ(one.status, 0) << one.err;
    const json full_json = json::parse(one.out);
    EXPECT_EQ(full_json["warmup"], "full") << full_json["warmup"];
    EXPECT_EQ(full_json["results"][0]["warmup_tokens"], 64) << full_json;
    const Result full = l2a(tiny_bench("64,96", "--warmup full"), dir_);
    ASSERT_EQ(full.status, 0) << full.err;
    EXPECT_TRUE(contains(full.out, "median of 1 runs after a warm-up run at the same length"))
        << full.out;
    EXPECT_TRUE(contains(full.err, "ours at 96 tokens: warm-up run of 96 tokens")) << full.err;
}

// A bench's "clocks" object: sampled through NVML and consistent, or a reason why not.
void expect_clocks(const json& clocks) {
    const std::string source = clocks.at("source").get<std::string>();
    if (source == "nvml") {
        EXPECT_GT(clocks.at("samples").get<std::int64_t>(), 0) << clocks;
        const auto median = clocks.at("median_sm_mhz").get<std::int64_t>();
        EXPECT_GE(median, clocks.at("min_sm_mhz").get<std::int64_t>()) << clocks;
        EXPECT_LE(median, clocks.at("max_sm_mhz").get<std::int64_t>()) << clocks;
        EXPECT_GT(clocks.at("min_sm_mhz").get<std::int64_t>(), 0) << clocks;
        EXPECT_GE(clocks.at("power_capped_share").get<double>(), 0.0) << clocks;
        EXPECT_LE(clocks.at("power_capped_share").get<double>(), 1.0) << clocks;
    } else {
        EXPECT_TRUE(source.starts_with("not sampled: ")) << source;
        EXPECT_EQ(clocks.at("samples"), 0) << clocks;
    }
}

// On a GPU the timed runs of ours and of the base report the SM clock they ran at (under the
// power cap it moves between runs, and the times with it). Needs a GPU; skips without.
TEST_F(Cli, BenchPrefillSaysTheClockItRanAt) {
    if (!cuda_here(dir_)) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    const std::string args =
        "bench prefill --shape qwen2.5-0.5b --device cuda --window 32 --tokens 16384 --repeat 2 "
        "--quiet";
    const Result r = l2a(args + " --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json row = json::parse(r.out)["results"].at(0);
    ASSERT_TRUE(row.contains("ours_clocks")) << row;
    ASSERT_TRUE(row.contains("base_clocks")) << row;
    expect_clocks(row["ours_clocks"]);
    expect_clocks(row["base_clocks"]);
    // Where NVML loads, runs of 16K tokens (far longer than a 5 ms sample) are sampled.
    void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (nvml != nullptr) {
        dlclose(nvml);
        EXPECT_EQ(row["ours_clocks"]["source"], "nvml") << row["ours_clocks"];
        EXPECT_EQ(row["base_clocks"]["source"], "nvml") << row["base_clocks"];
    }

    const Result text = l2a(args, dir_);
    ASSERT_EQ(text.status, 0) << text.err;
    EXPECT_TRUE(contains(text.out, "ours: SM clock")) << text.out;
    EXPECT_TRUE(contains(text.out, "base: SM clock")) << text.out;

    // Without NVML the runs still time, and say why there is no clock; --no-base: none for it.
    const ScopedEnv missing("L2A_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
    const Result without =
        l2a("bench prefill --shape qwen2.5-0.5b --device cuda --window 32 --tokens 2048 --repeat 1 "
            "--no-base --json --quiet",
            dir_);
    ASSERT_EQ(without.status, 0) << without.err;
    const json lone = json::parse(without.out)["results"].at(0);
    EXPECT_FALSE(lone.contains("base_clocks")) << lone;
    const json& clocks = lone.at("ours_clocks");
    EXPECT_EQ(clocks.at("source"),
              "not sampled: NVML (/nonexistent/libnvidia-ml.so.1) is not installed")
        << clocks;
    EXPECT_TRUE(clocks.at("median_sm_mhz").is_null()) << clocks;
    EXPECT_EQ(clocks.at("samples"), 0) << clocks;
}

// bench attention: each part's time with the SM clock of its own timed runs (the samples inside
// their bracket), and without NVML a reason in its place. Needs a GPU; skips without.
TEST_F(Cli, BenchAttentionSaysTheClockOfEachPart) {
    if (!cuda_here(dir_)) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    // 32K tokens, 10 runs: global and local take tens of ms, so every part is sampled.
    const std::string args =
        "bench attention --tokens 32768 --fractions 0.2 --shapes 28/4/128 --repeat 10 --quiet";
    const Result r = l2a(args + " --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json row = json::parse(r.out)["results"].at(0);
    void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (nvml != nullptr) dlclose(nvml);
    for (const char* part : {"global", "local", "whole", "sdpa_cudnn"}) {
        // A baseline a GPU's backend refuses has a reason and no time, so no clock.
        if (row.at(part).contains("available")) continue;
        ASSERT_TRUE(row.at(part).contains("clock")) << part << ": " << row.at(part);
        const json& clock = row[part]["clock"];
        expect_clocks(clock);
        // The hottest sample's temperature, or null where NVML does not read it.
        ASSERT_TRUE(clock.contains("max_celsius")) << part << ": " << clock;
        if (nvml != nullptr) {
            EXPECT_EQ(clock["source"], "nvml") << part << ": " << clock;
            // At most one sample every 5 ms, inside the part's timed runs.
            const double ms = row[part]["ms"].get<double>();
            EXPECT_LE(clock["samples"].get<double>(), 1.2 * 10 * ms / 5.0 + 2)
                << part << ": " << clock;
        }
    }
    EXPECT_EQ(json::parse(r.out)["order"], "blocks");  // the default

    // Either order times every part, with its clock from the samples inside its timed spans:
    // in blocks one span a part (cuDNN's shared by the rows of one length and shape),
    // interleaved one a run (cuDNN's with each row's parts), and at most one sample per 5 ms of
    // them and one more per span.
    for (const char* order : {"blocks", "interleaved"}) {
        SCOPED_TRACE(order);
        const bool interleaved = std::string(order) == "interleaved";
        const Result other =
            l2a(std::string("bench attention --tokens 32768 --fractions 0.2,1 --shapes 28/4/128 "
                            "--repeat 6 --quiet --json --order ") +
                    order,
                dir_);
        ASSERT_EQ(other.status, 0) << other.err;
        const json results = json::parse(other.out);
        EXPECT_EQ(results["order"], order);
        ASSERT_EQ(results["results"].size(), 2u);
        for (const json& each : results["results"]) {
            for (const char* part : {"global", "local", "whole", "sdpa_cudnn"}) {
                if (each.at(part).contains("available")) continue;  // a backend's refusal
                ASSERT_TRUE(each.at(part).contains("ms")) << each;
                const json& timed = each[part];
                expect_clocks(timed["clock"]);
                EXPECT_EQ(timed["timed_spans"], interleaved ? 6 : 1) << part << ": " << timed;
                const double span_ms = timed["timed_span_ms"].get<double>();
                EXPECT_GE(span_ms, 6 * 0.9 * timed["ms"].get<double>()) << part << ": " << timed;
                if (nvml != nullptr) {
                    EXPECT_LE(timed["clock"]["samples"].get<double>(),
                              span_ms / 5.0 + timed["timed_spans"].get<double>() + 1)
                        << part << ": " << timed;
                }
            }
        }
        const json& first_cudnn = results["results"][0]["sdpa_cudnn"];
        if (!interleaved && first_cudnn.contains("ms")) {
            EXPECT_EQ(first_cudnn["ms"], results["results"][1]["sdpa_cudnn"]["ms"]);
        }
        // Where each span lies, across the whole grid (one length and shape): no two parts ran
        // at once, and they ran in the documented order. In blocks: cuDNN's runs, flash's, then
        // each row's global, local and whole. Interleaved: flash's, then each row's rounds,
        // each in the order interleaved_order gives, one span a run lasting about a run.
        // The baselines timed once for both rows (cuDNN in blocks, flash always) show the same
        // spans in both and are counted once.
        struct Run {
            double begin, end;
            std::string label;
        };
        std::vector<Run> runs;
        const std::vector<std::string> names = {"global", "local", "whole", "sdpa_cudnn"};
        const auto add_spans = [&](const json& timed, const std::string& label) {
            for (const json& span : timed["timed_spans_at_ms"]) {
                const double begin = span.at(0).get<double>();
                const double end = span.at(1).get<double>();
                EXPECT_GE(begin, 0.0) << label;
                EXPECT_GT(end, begin) << label;
                if (interleaved && label.rfind("flash", 0) != 0) {
                    // One run: about the median run (6 runs spread by the GPU's clock).
                    const double ms = timed["ms"].get<double>();
                    EXPECT_GT(end - begin, 0.5 * ms) << label << ": " << span;
                    EXPECT_LT(end - begin, 2.0 * ms) << label << ": " << span;
                }
                runs.push_back({begin, end, label});
            }
        };
        const json& rows = results["results"];
        std::vector<std::string> expected;
        const auto shared = [&](const char* part, const std::string& label) {
            if (!rows[0].at(part).contains("ms")) return;  // the backend refused
            EXPECT_EQ(rows[1][part]["timed_spans_at_ms"], rows[0][part]["timed_spans_at_ms"])
                << part;
            add_spans(rows[0][part], label);
            expected.push_back(label);
        };
        if (!interleaved) shared("sdpa_cudnn", "cudnn");
        shared("sdpa_flash", "flash");
        for (std::size_t r = 0; r < rows.size(); ++r) {
            const json& each = rows[r];
            const std::string row = "row " + std::to_string(r) + " ";
            std::vector<std::size_t> parts;
            for (std::size_t part = 0; part < names.size(); ++part) {
                if (!each.at(names[part]).contains("ms")) continue;  // cuDNN refused
                if (part == 3 && !interleaved) continue;             // counted once above
                parts.push_back(part);
                add_spans(each[names[part]], row + names[part]);
            }
            if (interleaved) {
                const int rounds = each["global"]["timed_spans"].get<int>();
                for (int round = 0; round < rounds; ++round) {
                    for (std::size_t j : l2a::interleaved_order(round, parts.size())) {
                        expected.push_back(row + names[parts[j]]);
                    }
                }
            } else {
                for (std::size_t part : parts) expected.push_back(row + names[part]);
            }
        }
        std::sort(runs.begin(), runs.end(),
                  [](const Run& a, const Run& b) { return a.begin < b.begin; });
        std::vector<std::string> got;
        for (std::size_t i = 0; i < runs.size(); ++i) {
            if (i > 0) {
                EXPECT_LE(runs[i - 1].end, runs[i].begin)
                    << runs[i - 1].label << " overlaps " << runs[i].label;
            }
            got.push_back(runs[i].label);
        }
        EXPECT_EQ(got, expected);
    }

    const Result text = l2a(args, dir_);
    ASSERT_EQ(text.status, 0) << text.err;
    EXPECT_TRUE(contains(
        text.out, nvml != nullptr ? "SM clock in each part's timed runs" : "SM clock: not sampled"))
        << text.out;
    EXPECT_TRUE(contains(text.out, "timed in blocks: cuDNN's runs, flash's, then each row's"))
        << text.out;
    if (nvml != nullptr) {
        // The clock table's row: five cells, each "-" or the median MHz, the power-capped share
        // "P<n>", where there is one the share slowed for heat or by the hardware "H<n>", and
        // where NVML reads it the hottest temperature "<n>C" (as the JSON's max_celsius).
        const std::size_t table = text.out.find("SM clock in each part");
        const std::size_t header = text.out.find("\n tokens", table);
        ASSERT_NE(header, std::string::npos) << text.out;
        const std::size_t row_begin = text.out.find('\n', header + 1) + 1;
        std::istringstream row(
            text.out.substr(row_begin, text.out.find('\n', row_begin) - row_begin));
        std::vector<std::string> words;
        for (std::string w; row >> w;) words.push_back(w);
        // A share: "P31", "P100", or never rounded to all or none, "P>99" and "P<1".
        const auto share = [](const std::string& w, char tag) {
            const std::size_t digits = w.size() >= 2 && (w[1] == '<' || w[1] == '>') ? 2 : 1;
            return w.size() > digits && w[0] == tag &&
                   w.find_first_not_of("0123456789", digits) == std::string::npos &&
                   std::stoi(w.substr(digits)) <= 100;
        };
        int cells = 0;
        bool sampled_cell = false;
        for (std::size_t i = 3; i < words.size(); ++cells) {
            if (words[i] == "-") {
                ++i;
                continue;
            }
            ASSERT_TRUE(words[i].find_first_not_of("0123456789") == std::string::npos &&
                        i + 1 < words.size() && share(words[i + 1], 'P'))
                << text.out;
            sampled_cell = true;
            i += 2;
            if (i < words.size() && share(words[i], 'H')) ++i;
            if (i < words.size() && words[i].size() >= 2 && words[i].back() == 'C' &&
                words[i].find_first_not_of("0123456789") == words[i].size() - 1) {
                const int celsius = std::stoi(words[i]);
                EXPECT_TRUE(celsius > 10 && celsius < 120) << text.out;
                ++i;
            }
        }
        EXPECT_EQ(cells, 5) << text.out;
        EXPECT_TRUE(sampled_cell) << text.out;
    }

    const ScopedEnv missing("L2A_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
    const Result without = l2a(args + " --json", dir_);
    ASSERT_EQ(without.status, 0) << without.err;
    const json lone = json::parse(without.out)["results"].at(0);
    EXPECT_EQ(lone["local"]["clock"]["source"],
              "not sampled: NVML (/nonexistent/libnvidia-ml.so.1) is not installed")
        << lone["local"];
    EXPECT_EQ(lone["local"]["clock"]["samples"], 0) << lone["local"];
}

// --trace: under each row, where the last traced run's GPU time went (kernel time per phase and
// the kernels that took the most), consistent with itself. Needs a GPU and CUPTI; skips without.
TEST_F(Cli, BenchPrefillTraceSaysWhereTheTimeWent) {
    if (!cuda_here(dir_)) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    const std::string args =
        "bench prefill --shape qwen2.5-0.5b --device cuda --window 32 --tokens 512 --repeat 1 "
        "--no-base --trace --quiet";
    const Result r = l2a(args + " --json", dir_);
    if (r.status != 0 && contains(r.err, "no kernel tracer")) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.status, 0) << r.err;
    const json row = json::parse(r.out)["results"].at(0);
    const json& b = row.at("traced_breakdown");
    const double wall = b.at("wall_seconds").get<double>();
    const double kernels = b.at("kernel_seconds").get<double>();
    EXPECT_GT(wall, 0.0) << b;
    EXPECT_GT(kernels, 0.0) << b;
    EXPECT_LE(kernels, wall * 1.01) << "one stream: the kernels' time fits in the run's";
    EXPECT_EQ(b.at("launches"), row.at("traced_kernels"));
    double by_phase = 0;
    std::vector<std::string> phases;
    for (const json& p : b.at("phases")) {
        phases.push_back(p.at("name").get<std::string>());
        by_phase += p.at("seconds").get<double>();
    }
    EXPECT_NEAR(by_phase, kernels, 1e-9 + 1e-9 * kernels);
    // The GPU's idle gaps between kernels, by the phase whose kernel ended each: they add up,
    // and with the kernels (one stream) fit in the run.
    const double idle = b.at("idle_seconds").get<double>();
    double idle_by_phase = 0;
    for (const json& p : b.at("phases")) {
        EXPECT_GE(p.at("idle_before_seconds").get<double>(), 0.0) << p;
        idle_by_phase += p.at("idle_before_seconds").get<double>();
    }
    EXPECT_GE(idle, 0.0) << b;
    EXPECT_NEAR(idle_by_phase, idle, 1e-9 + 1e-9 * idle);
    // Of those gaps, the ones across a range boundary: part of each phase's.
    const double across = b.at("idle_across_ranges_seconds").get<double>();
    double across_by_phase = 0;
    for (const json& p : b.at("phases")) {
        const double part = p.at("idle_across_ranges_seconds").get<double>();
        EXPECT_GE(part, 0.0) << p;
        EXPECT_LE(part, p.at("idle_before_seconds").get<double>()) << p;
        across_by_phase += part;
    }
    EXPECT_NEAR(across_by_phase, across, 1e-9 + 1e-9 * across);
    EXPECT_LE(across, idle + 1e-9) << b;
    EXPECT_LE(kernels + idle, wall * 1.01) << b;
    for (const char* part : {"local", "router", "global", "mlp"}) {
        EXPECT_NE(std::find(phases.begin(), phases.end(), part), phases.end()) << part;
    }
    const json& top = b.at("kernels");
    ASSERT_FALSE(top.empty());
    EXPECT_LE(top.size(), 15u);
    for (std::size_t i = 1; i < top.size(); ++i) {
        EXPECT_GE(top[i - 1].at("seconds").get<double>(), top[i].at("seconds").get<double>());
    }
    const auto attention = std::find_if(top.begin(), top.end(), [](const json& k) {
        return contains(k.at("name").get<std::string>(), "attention");
    });
    EXPECT_NE(attention, top.end()) << top;
    // The GPU's clock while the run went: sampled (NVML, every 5 ms) or a reason why not.
    expect_clocks(b.at("clocks"));
    for (const json& k : top) EXPECT_TRUE(k.contains("median_sm_mhz")) << k;

    const Result text = l2a(args, dir_);
    ASSERT_EQ(text.status, 0) << text.err;
    EXPECT_TRUE(contains(text.out, "last traced run:")) << text.out;
    EXPECT_TRUE(contains(text.out, "by phase: local")) << text.out;
    EXPECT_TRUE(contains(text.out, "GPU idle between kernels")) << text.out;
    EXPECT_TRUE(contains(text.out, "of it across range boundaries")) << text.out;
    EXPECT_TRUE(contains(text.out, "SM clock")) << text.out;
}

// bench explain: the base run, the lens (its first call and the median) and the oracle, timed.
TEST_F(Cli, BenchExplainTimesTheLensAndTheOracle) {
    const Result r = l2a(
        "bench explain --demo --tokens 512 --layer 2 --repeat 2 --threads 1 --json --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["tokens"], 512);
    EXPECT_EQ(j["layer"], 2);
    EXPECT_EQ(j["repeat"], 2);
    for (const char* key : {"base_seconds", "explain_first_seconds", "explain_median_seconds",
                            "oracle_median_seconds"}) {
        ASSERT_TRUE(j.contains(key)) << key;
        EXPECT_GT(j[key].get<double>(), 0.0) << key;
    }
    EXPECT_GE(j["oracle_seconds_per_layer_beyond_run"].get<double>(), 0.0);
}

TEST_F(Cli, BenchBadArgumentsExitTwo) {
    const struct {
        const char* args;
        const char* error;
    } mistakes[] = {
        {"bench prefill --shape qwen3-8b --tokens 12x", "--tokens: '12x'"},
        {"bench prefill --shape qwen3-8b --tokens 1", "--tokens: '1'"},
        {"bench prefill --shape qwen3-8b --tokens 8K,,32K", "--tokens: ''"},
        {"bench prefill --shape qwen3-8b --routing sometimes", "--routing"},
        {"bench prefill --shape qwen3-8b --backend magic", "--backend: 'magic'"},
        {"bench prefill --shape qwen3-8b --demo", "--shape"},
        {"bench prefill --demo --device cuda", "--device applies to --shape"},
        {"bench prefill --demo --no-base", "--no-base applies to --shape"},
        {"bench prefill --shape qwen3-8b --warmup 0", "--warmup: '0'"},
        {"bench prefill --shape qwen3-8b --warmup soon", "--warmup: 'soon'"},
        {"bench prefill --demo --warmup full", "--warmup applies to --shape"},
        {"bench prefill --shape qwen3-8b --engine tcp://127.0.0.1:9 --no-base",
         "--no-base is not used with --engine"},
        {"bench attention --tokens 0", "--tokens: '0'"},
        {"bench attention --tokens 99999999999K", "--tokens"},
        {"bench attention --fractions 0.2,1.5", "--fractions: '1.5'"},
        {"bench attention --shapes 28/5/128", "--shapes: '28/5/128'"},
        {"bench attention --shapes 28/4/96", "--shapes: '28/4/96'"},
        {"bench attention --window 0", "--window"},
        {"bench attention --device cpu", "--device"},
        {"bench attention --dtype fp32", "--dtype: bench attention times bf16 or fp16, not 'fp32'"},
        {"bench attention --order random",
         "--order: the parts' timed runs are 'interleaved' or in 'blocks', not 'random'"},
        {"bench attention --model x", "unknown option '--model'"},
        {"bench sideways",
         "unknown benchmark 'sideways' (available: prefill, attention, whatif, explain)"},
    };
    for (const auto& mistake : mistakes) {
        SCOPED_TRACE(mistake.args);
        const Result r = l2a(mistake.args, dir_);
        EXPECT_ONE_LINE_ERROR(r, 2, mistake.error);
    }
}

// Without a CUDA build, or without a GPU, bench attention says which of the two is missing.
TEST_F(Cli, BenchAttentionWithoutCudaSaysSo) {
    const Result r =
        l2a("bench attention --quiet --tokens 256 --fractions 0.5 --shapes 4/2/64 "
            "--repeat 1",
            dir_);
    if (r.status == 0) GTEST_SKIP() << "this build and machine have a GPU: the bench ran";
    EXPECT_ONE_LINE_ERROR(r, 1, "bench attention");
    EXPECT_TRUE(contains(r.err, "CUDA")) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(Cli, BenchHelpNamesBothBenchmarks) {
    const Result r = l2a("bench --help", dir_);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "l2a bench attention")) << r.out;
    EXPECT_TRUE(contains(r.out, "--shape NAME")) << r.out;
    EXPECT_TRUE(contains(r.out, "qwen2.5-14b")) << r.out;
    EXPECT_EQ(l2a("bench attention --help", dir_).out, r.out);
}

// ---- whatif and suggest-prune ----------------------------------------------------------------

// A base profile of the demo with few tokens, saved as base.l2a in `dir`.
void make_base_profile(const fs::path& dir) {
    const Result r = l2a("run --demo --max-tokens 48 --quiet --out base.l2a", dir);
    ASSERT_EQ(r.status, 0) << r.err;
}

TEST_F(Cli, WhatIfPruneEndToEnd) {
    make_base_profile(dir_);
    const Result r =
        l2a("whatif --profile base.l2a --demo --prune 2 --out variant.l2a --json --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["tokens"], 48);
    EXPECT_EQ(j["start_layer"], 2);
    EXPECT_EQ(j["prune"], json::array({2}));
    EXPECT_EQ(j["layers"][2]["variant_global_fraction"], 0.0);
    EXPECT_EQ(j["layers"][2]["pruned"], true);
    EXPECT_EQ(j["layers"][0]["variant_global_fraction"], j["layers"][0]["base_global_fraction"]);
    EXPECT_LT(j["kv_bytes"]["variant"].get<std::int64_t>(),
              j["kv_bytes"]["base"].get<std::int64_t>());
    EXPECT_GT(j["kl"]["max"].get<double>(), 0.0);
    EXPECT_EQ(j["token_delta_nll"].size(), 48u);
    EXPECT_TRUE(j["token_delta_nll"][0].is_null());
    EXPECT_GT(j["ttft_seconds"]["variant_predicted"].get<double>(), 0.0);
    // Measured by default: 3 full prefills of each, as median, min and max of the samples.
    for (const char* which : {"base", "variant"}) {
        SCOPED_TRACE(which);
        const json& runs = j["ttft_seconds"][std::string(which) + "_measured_runs"];
        ASSERT_TRUE(runs.is_object()) << j["ttft_seconds"];
        std::vector<double> samples = runs["samples"].get<std::vector<double>>();
        ASSERT_EQ(samples.size(), 3u);
        std::sort(samples.begin(), samples.end());
        EXPECT_GT(samples[0], 0.0);
        EXPECT_EQ(runs["min"].get<double>(), samples[0]);
        EXPECT_EQ(runs["median"].get<double>(), samples[1]);
        EXPECT_EQ(runs["max"].get<double>(), samples[2]);
        EXPECT_EQ(j["ttft_seconds"][std::string(which) + "_measured"].get<double>(), samples[1]);
    }

    const l2a::Profile base = l2a::load_profile(dir_ / "base.l2a");
    const l2a::Profile variant = l2a::load_profile(dir_ / "variant.l2a");
    EXPECT_EQ(variant.options.prune, (std::vector<int>{2}));
    EXPECT_EQ(variant.token_ids, base.token_ids);
    ASSERT_EQ(variant.decisions.size(), base.decisions.size());
    for (std::size_t t = 0; t < 48; ++t) {
        EXPECT_EQ(variant.decisions[2 * 48 + t], 0) << t;
        EXPECT_EQ(variant.decisions[t], base.decisions[t]) << t;
        EXPECT_EQ(variant.router_logits[48 + t], base.router_logits[48 + t]) << t;
    }
    EXPECT_EQ(variant.metrics.global_fraction[2], 0.0);
    EXPECT_NEAR(variant.metrics.mean_nll - base.metrics.mean_nll,
                j["mean_nll"]["delta"].get<double>(), 1e-6);

    // The text report shows the comparison table.
    const Result text =
        l2a("whatif --profile base.l2a --demo --prune 2,4 --ttft-repeats 2 --quiet", dir_);
    ASSERT_EQ(text.status, 0) << text.err;
    for (const char* piece :
         {"mean NLL", "perplexity", "KV cache", "TTFT predicted", "KL(base || variant)",
          "top-1 agreement", "re-run from layer 2", "pruned"}) {
        EXPECT_TRUE(contains(text.out, piece)) << piece << " in: " << text.out;
    }
    // Base-until-the-layer plus a re-run is not a time to first token: nothing is called
    // measured unless full runs of both were timed.
    for (const char* piece : {"TTFT measured   base ", " 2 runs)\n                variant  ",
                              " 2 runs)\n                full prefills", "device      cpu, "}) {
        EXPECT_TRUE(contains(text.out, piece)) << piece << " in: " << text.out;
    }
    const Result predicted =
        l2a("whatif --profile base.l2a --demo --prune 2,4 --ttft-repeats 0 --json --quiet", dir_);
    ASSERT_EQ(predicted.status, 0) << predicted.err;
    const json p = json::parse(predicted.out)["ttft_seconds"];
    EXPECT_TRUE(p["base_measured"].is_null()) << p;
    EXPECT_TRUE(p["variant_measured_runs"].is_null()) << p;
    EXPECT_GT(p["variant_predicted"].get<double>(), 0.0);
    const Result not_measured =
        l2a("whatif --profile base.l2a --demo --prune 2,4 --ttft-repeats 0 --quiet", dir_);
    ASSERT_EQ(not_measured.status, 0) << not_measured.err;
    EXPECT_TRUE(contains(not_measured.out, "TTFT measured   not measured (--ttft-repeats 0)"))
        << not_measured.out;
    EXPECT_FALSE(contains(not_measured.out, "runs)")) << not_measured.out;
    EXPECT_ONE_LINE_ERROR(l2a("whatif --profile base.l2a --ttft-repeats -1", dir_), 2,
                          "--ttft-repeats");
}

TEST_F(Cli, WhatIfWithoutChangeIsExactlyTheBase) {
    make_base_profile(dir_);
    const Result r = l2a("whatif --profile base.l2a --demo --json --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["mean_nll"]["delta"], 0.0);
    EXPECT_EQ(j["kl"]["max"], 0.0);
    EXPECT_EQ(j["kl"]["mean"], 0.0);
    EXPECT_EQ(j["top1_agreement"], 1.0);
    EXPECT_EQ(j["start_layer"], 6);
    // A threshold change re-runs every layer.
    const Result t = l2a("whatif --profile base.l2a --demo --threshold 0.3 --json --quiet", dir_);
    ASSERT_EQ(t.status, 0) << t.err;
    EXPECT_EQ(json::parse(t.out)["start_layer"], 0);
}

TEST_F(Cli, SuggestPruneEndToEnd) {
    make_base_profile(dir_);
    const Result r =
        l2a("suggest-prune --profile base.l2a --demo --max-dnll 0.02 --json --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_LE(j["delta_mean_nll"].get<double>(), 0.02);
    EXPECT_GT(j["runs"].get<int>(), 0);
    EXPECT_EQ(j["kv_bytes_saved"].get<std::int64_t>() > 0, !j["layers"].empty());
    // Without a limit every layer goes.
    const Result all = l2a("suggest-prune --profile base.l2a --demo --max-dnll 1000 --quiet", dir_);
    ASSERT_EQ(all.status, 0) << all.err;
    EXPECT_TRUE(contains(all.out, "--prune 0,1,2,3,4,5")) << all.out;
    EXPECT_TRUE(contains(all.out, "KV cache    saves")) << all.out;
}

TEST_F(Cli, WhatIfAndSuggestPruneErrors) {
    make_base_profile(dir_);
    // The same profile, recorded by "another model".
    l2a::Profile other = l2a::load_profile(dir_ / "base.l2a");
    other.model.hidden_size += 64;
    l2a::save_profile(other, dir_ / "other.l2a");
    write_file(dir_ / "garbage.l2a", "not a profile");
    const struct {
        const char* args;
        int status;
        const char* error;
    } mistakes[] = {
        {"whatif --demo", 2, "--profile FILE"},
        {"whatif --profile missing.l2a --demo", 1, "missing.l2a"},
        {"whatif --profile garbage.l2a --demo", 1, "garbage.l2a"},
        {"whatif --profile other.l2a --demo", 1, "another model (hidden_size"},
        {"whatif --profile base.l2a --demo --threshold 1.5", 2, "--threshold: 1.5"},
        {"whatif --profile base.l2a --demo --threshold abc", 2, "--threshold"},
        {"whatif --profile base.l2a --demo --prune x", 2, "--prune"},
        {"whatif --profile base.l2a --demo --prune 9", 1, "--prune: layer 9 does not exist"},
        {"whatif --profile base.l2a --demo --routing sometimes", 2, "--routing"},
        {"suggest-prune --profile base.l2a --demo", 2, "--max-dnll X"},
        {"suggest-prune --profile base.l2a --demo --max-dnll -1", 2, "--max-dnll: -1"},
        {"suggest-prune --profile base.l2a --demo --max-dnll abc", 2, "--max-dnll"},
        {"suggest-prune --profile missing.l2a --demo --max-dnll 0.1", 1, "missing.l2a"},
        {"suggest-prune --profile other.l2a --demo --max-dnll 0.1", 1, "another model"},
    };
    for (const auto& mistake : mistakes) {
        SCOPED_TRACE(mistake.args);
        const Result r = l2a(std::string(mistake.args) + " --quiet", dir_);
        EXPECT_ONE_LINE_ERROR(r, mistake.status, mistake.error);
        EXPECT_TRUE(r.out.empty()) << r.out;
    }
    EXPECT_FALSE(fs::exists(dir_ / "variant.l2a"));
}

// A text file given as a profile is named as not being one, by every command that reads one.
TEST_F(Cli, TextFileAsProfileIsNamedAsSuch) {
    write_file(dir_ / "notes.txt", "Some notes about the run, not a profile.\n");
    write_file(dir_ / "empty.l2a", "");
    for (const char* args : {"export --profile notes.txt", "whatif --profile notes.txt --demo",
                             "suggest-prune --profile notes.txt --demo --max-dnll 0.1",
                             "whatif --profile notes.txt --prune 1"}) {
        SCOPED_TRACE(args);
        const Result r = l2a(args, dir_);
        EXPECT_ONE_LINE_ERROR(r, 1, "notes.txt: not an .l2a profile (no safetensors header)");
    }
    EXPECT_ONE_LINE_ERROR(l2a("export --profile empty.l2a", dir_), 1,
                          "empty.l2a: not an .l2a profile (the file is empty)");
}

// --prune, --routing and --threshold are checked against the profile's model before any model
// is loaded or anything runs: a model folder that does not exist is never reached.
TEST_F(Cli, WhatIfChecksItsOptionsBeforeAnyWork) {
    make_base_profile(dir_);
    Result r = l2a("whatif --profile base.l2a --model no-such-model --prune 3,7", dir_);
    EXPECT_ONE_LINE_ERROR(
        r, 1, "--prune: layer 7 does not exist (the model of base.l2a has 6 layers: 0-5)");
    r = l2a("whatif --profile base.l2a --prune 6", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "--prune: layer 6 does not exist");
    // A run without routers (a plain model, or --as-base) has nothing to prune or route.
    ASSERT_EQ(l2a("run --demo --max-tokens 32 --as-base --quiet --out plain.l2a", dir_).status, 0);
    for (const char* option : {"--prune 1", "--routing local", "--threshold 0.3"}) {
        SCOPED_TRACE(option);
        r = l2a(std::string("whatif --profile plain.l2a --model no-such-model ") + option, dir_);
        EXPECT_ONE_LINE_ERROR(r, 1, "plain.l2a is a run of the model as its base model");
        EXPECT_TRUE(
            contains(r.err, std::string(option).substr(0, std::string(option).find(' ')) + ":"))
            << r.err;
    }
    r = l2a("suggest-prune --profile plain.l2a --model no-such-model --max-dnll 0.1", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "no global attention to prune");
    l2a::Profile plain = l2a::load_profile(dir_ / "base.l2a");
    plain.model.is_l2a = false;
    plain.model.model_type = "qwen3";
    l2a::save_profile(plain, dir_ / "qwen3.l2a");
    r = l2a("whatif --profile qwen3.l2a --model no-such-model --routing local", dir_);
    EXPECT_ONE_LINE_ERROR(
        r, 1, "--routing: qwen3.l2a is a run of a plain qwen3 model without L2A layers");
    // A profile recorded on a GPU, on a machine without one: said before any model is read.
    l2a::Profile gpu = l2a::load_profile(dir_ / "base.l2a");
    gpu.options.device = "cuda";
    l2a::save_profile(gpu, dir_ / "gpu.l2a");
    r = l2a("whatif --profile gpu.l2a --model no-such-model --prune 1", dir_);
    if (!cuda_here(dir_)) {
        EXPECT_ONE_LINE_ERROR(r, 1, "gpu.l2a: was recorded on cuda, which cannot run here: ");
    } else {
        EXPECT_ONE_LINE_ERROR(r, 1, "no-such-model");
    }
    EXPECT_FALSE(fs::exists(dir_ / "no-such-model"));
}

// Without --model or --demo, whatif and suggest-prune use the folder the profile recorded, from
// any working folder, as long as it still holds the same model.
TEST_F(Cli, WhatIfDefaultsToTheRecordedModel) {
    const fs::path model = copy_of_demo(dir_);
    write_file(dir_ / "doc.txt", "The key is amber-fox. Later: the key is amber-fox again.");
    ASSERT_EQ(l2a("run --model model-copy --doc doc.txt --quiet --out base.l2a", dir_).status, 0);
    const l2a::Profile base = l2a::load_profile(dir_ / "base.l2a");
    EXPECT_TRUE(fs::path(base.model.path).is_absolute()) << base.model.path;
    EXPECT_TRUE(fs::equivalent(base.model.path, model)) << base.model.path;

    fs::create_directories(dir_ / "elsewhere");
    Result r = l2a("whatif --profile ../base.l2a --prune 5 --out v.l2a", dir_ / "elsewhere");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "model       " + base.model.path)) << r.out;
    EXPECT_TRUE(contains(r.err, "l2a: wrote v.l2a\n")) << r.err;
    EXPECT_EQ(l2a::load_profile(dir_ / "elsewhere" / "v.l2a").options.prune, std::vector<int>{5});
    r = l2a("suggest-prune --profile base.l2a --max-dnll 1000 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "--prune 0,1,2,3,4,5")) << r.out;

    // The folder changed: one line saying so, naming the folder and --model.
    nlohmann::json config = json::parse(read_file(model / "config.json"));
    config["num_hidden_layers"] = 5;
    write_file(model / "config.json", config.dump());
    r = l2a("whatif --profile base.l2a --prune 1", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1,
                          "base.l2a: was recorded with the model in " + base.model.path +
                              ", which has changed since (layers 6 in the profile, 5 in");
    EXPECT_TRUE(contains(r.err, "--model DIR")) << r.err;
    // The folder is gone.
    fs::rename(model, dir_ / "moved");
    r = l2a("whatif --profile base.l2a --prune 1", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1,
                          "base.l2a: was recorded with the model in " + base.model.path +
                              ", which is no longer there");
    EXPECT_TRUE(contains(r.err, "--model DIR")) << r.err;
    r = l2a("suggest-prune --profile base.l2a --max-dnll 0.1", dir_);
    EXPECT_ONE_LINE_ERROR(r, 1, "which is no longer there");
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(Cli, WhatIfHelp) {
    for (const char* args :
         {"whatif --help", "help whatif", "suggest-prune --help", "help suggest-prune"}) {
        const Result r = l2a(args, dir_);
        EXPECT_EQ(r.status, 0) << args << ": " << r.err;
        EXPECT_TRUE(contains(r.out, "Usage: l2a")) << args << ": " << r.out;
    }
    EXPECT_TRUE(contains(l2a("help whatif", dir_).out, "--prune LIST"));
    EXPECT_TRUE(contains(l2a("help suggest-prune", dir_).out, "--max-dnll X"));
    EXPECT_TRUE(contains(l2a("--help", dir_).out, "suggest-prune"));
}

// `l2a explain` of a token past the window and `l2a oracle` of a saved run, end to end: the JSON
// keys the help promises, and the oracle stored in the profile and exported.
TEST_F(Cli, ExplainAndOracleOnTheDemo) {
    Result r = l2a("explain --demo --token 300 --layer 3 --top 5 --json --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json e = json::parse(r.out);
    for (const char* key : {"token", "layer", "decision", "router_logit", "probability",
                            "distant_mass", "window", "sources", "heads"}) {
        EXPECT_TRUE(e.contains(key)) << key;
    }
    EXPECT_EQ(e["token"], 300);
    EXPECT_EQ(e["layer"], 3);
    EXPECT_EQ(e["window"], 256);
    ASSERT_EQ(e["sources"].size(), 5u);
    double last = 2.0;
    for (const json& source : e["sources"]) {
        const double w = source["weight"].get<double>();
        EXPECT_LE(w, last);
        EXPECT_GE(w, 0.0);
        last = w;
        EXPECT_LE(source["token"].get<std::int64_t>(), 300);
        EXPECT_TRUE(source["text"].is_string());
    }
    ASSERT_EQ(e["heads"].size(), 4u);  // the demo shape's query heads
    EXPECT_EQ(e["heads"][0]["top"].size(), 5u);
    const double mass = e["distant_mass"].get<double>();
    EXPECT_GE(mass, 0.0);
    EXPECT_LE(mass, 1.0);
    r = l2a("explain --demo --token 20 --layer 1 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "older than the window")) << r.out;
    EXPECT_ONE_LINE_ERROR(l2a("explain --demo --layer 1", dir_), 2, "--token");
    EXPECT_ONE_LINE_ERROR(l2a("explain --demo --token 3 --layer 9 --quiet", dir_), 1, "layer 9");

    ASSERT_EQ(l2a("run --demo --max-tokens 400 --out p.l2a --quiet", dir_).status, 0);
    r = l2a("oracle --profile p.l2a --out o.l2a --json --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json o = json::parse(r.out);
    ASSERT_EQ(o["layers"].size(), 6u);
    for (const json& layer : o["layers"]) {
        for (const char* key : {"auc", "precision", "recall", "mean_distant_mass_routed",
                                "mean_distant_mass_local", "ratio", "ceiling_ratio", "missed"}) {
            EXPECT_TRUE(layer.contains(key)) << key;
        }
        // No choice of as many tokens beats the best one.
        if (layer["ratio"].is_number() && layer["ceiling_ratio"].is_number()) {
            EXPECT_LE(layer["ratio"].get<double>(), layer["ceiling_ratio"].get<double>() + 1e-9);
        }
    }
    r = l2a("export --profile o.l2a --format json --out o.json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json exported = json::parse(read_file(dir_ / "o.json"));
    EXPECT_TRUE(exported["layers"][2]["oracle"].contains("auc"));
    // Each layer's ratio and ceiling as l2a oracle printed them, and at least one of them a number.
    bool some_ceiling = false;
    for (std::size_t l = 0; l < 6; ++l) {
        EXPECT_EQ(exported["layers"][l]["oracle"]["ceiling_ratio"],
                  o["layers"][l]["ceiling_ratio"]);
        EXPECT_EQ(exported["layers"][l]["oracle"]["ratio"], o["layers"][l]["ratio"]);
        some_ceiling = some_ceiling || o["layers"][l]["ceiling_ratio"].is_number();
    }
    EXPECT_TRUE(some_ceiling) << o.dump();
    EXPECT_EQ(exported["layers"][2]["distant_mass"].size(), 400u);
    // The plain run has no oracle object.
    r = l2a("export --profile p.l2a --format json --out p.json", dir_);
    EXPECT_FALSE(json::parse(read_file(dir_ / "p.json"))["layers"][2].contains("oracle"));
    r = l2a("export --profile o.l2a --format csv --out o.csv", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string routing = read_file(dir_ / "o.routing.csv");
    // Token 300, layer 0: a distant mass in the last column (a number, not empty).
    const std::size_t row = routing.find("\r\n300,0,");
    ASSERT_NE(row, std::string::npos);
    const std::string line = routing.substr(row + 2, routing.find("\r\n", row + 2) - row - 2);
    EXPECT_NE(line.back(), ',') << line;
    EXPECT_ONE_LINE_ERROR(l2a("oracle --profile p.l2a --min-mass 2", dir_), 2, "--min-mass");
}

TEST_F(Cli, BenchWhatIfTimesTheBaseAndTheReRun) {
    Result r = l2a("bench whatif --demo --tokens 128 --repeat 2 --layer 1 --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["tokens"], 128);
    EXPECT_EQ(j["pruned_layer"], 1);
    EXPECT_GT(j["base_seconds"].get<double>(), 0.0);
    EXPECT_GT(j["rerun_median_seconds"].get<double>(), 0.0);
    EXPECT_GE(j["rerun_and_compare_median_seconds"].get<double>(),
              j["rerun_median_seconds"].get<double>());
    r = l2a("bench whatif --demo --tokens 64 --repeat 1", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "what the app waits for")) << r.out;
    EXPECT_ONE_LINE_ERROR(l2a("bench whatif --demo --layer 99", dir_), 2, "--layer");
    EXPECT_ONE_LINE_ERROR(l2a("bench whatif", dir_), 2, "--demo");
}

// --threads on every command that computes: a value out of range is that command's usage error
// (an unknown option would be another one).
TEST_F(Cli, ThreadsOnEveryCommandThatComputes) {
    for (const char* command :
         {"run --demo", "whatif --profile p.l2a", "suggest-prune --profile p.l2a --max-dnll 1",
          "bench prefill --demo", "bench prefill --shape qwen3-0.6b", "bench whatif --demo",
          "bench attention", "evaluate --demo --docs d", "train --data d --out o --model m"}) {
        SCOPED_TRACE(command);
        const Result r = l2a(std::string(command) + " --threads 0", dir_);
        EXPECT_ONE_LINE_ERROR(r, 2, "--threads: 0 is out of range (1 to 1024)");
    }
    // The run summary says how many threads ran, and why.
    Result r = l2a("run --demo --max-tokens 16 --threads 1 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "(cpu, reference, 1 thread by --threads)")) << r.out;
    {
        // Without --threads: OMP_NUM_THREADS when set, else the cores the load leaves free.
        const ScopedEnv omp("OMP_NUM_THREADS", "1");
        r = l2a("run --demo --max-tokens 16 --quiet", dir_);
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_TRUE(contains(r.out, "(cpu, reference, 1 thread by OMP_NUM_THREADS)")) << r.out;
    }
    const ScopedEnv no_omp("OMP_NUM_THREADS", nullptr);
    r = l2a("run --demo --max-tokens 16 --quiet --out p.l2a", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const l2a::Profile p = l2a::load_profile(dir_ / "p.l2a");
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    EXPECT_GE(p.cpu_threads, 1);
    EXPECT_LE(p.cpu_threads, std::max(cores, 1));
    const std::string threads =
        std::to_string(p.cpu_threads) + (p.cpu_threads == 1 ? " thread of " : " threads of ");
    EXPECT_TRUE(contains(r.out, threads)) << r.out;
    EXPECT_TRUE(contains(r.out, " core")) << r.out;
    EXPECT_TRUE(contains(r.out, ", load ")) << r.out;
    r = l2a("run --demo --max-tokens 16 --quiet --threads 2 --out p2.l2a", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(l2a::load_profile(dir_ / "p2.l2a").cpu_threads, 2);
}

// Benchmarks print the load average and the cores, and warn exactly when the load is above 0.5.
TEST_F(Cli, BenchPrintsTheLoadAndWarnsWhenBusy) {
    Result r = l2a("bench whatif --demo --tokens 32 --repeat 1 --threads 1 --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    const double load = j["machine"]["load_average_1min"].get<double>();
    EXPECT_GE(load, 0.0);
    EXPECT_GE(j["machine"]["cores"].get<int>(), 1);
    EXPECT_EQ(j["machine"]["threads"], 1);
    EXPECT_EQ(contains(r.err, "warning: the machine is busy (load average"), load > 0.5) << r.err;
    r = l2a("bench prefill --demo --tokens 16 --repeat 1 --threads 2 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "2 CPU threads; load average ")) << r.out;
    EXPECT_TRUE(contains(r.out, "over the last minute, ")) << r.out;
}

TEST_F(Cli, MakeDocsWritesDocumentsSidecarsAndTheTokenizer) {
    Result r =
        l2a("make-docs --out docs --count 3 --tokens 4096 --min-distance 1000 --seed 5 "
            "--tokenizer-out docs/tokenizer.json",
            dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "3 documents")) << r.err;
    for (const char* name : {"doc_000000", "doc_000001", "doc_000002"}) {
        const std::string text = read_file(dir_ / "docs" / (std::string(name) + ".txt"));
        const json side = json::parse(read_file(dir_ / "docs" / (std::string(name) + ".json")));
        EXPECT_EQ(side["bytes"], text.size());
        ASSERT_FALSE(side["references"].empty());
        for (const json& ref : side["references"]) {
            const auto b = ref["begin"].get<std::size_t>(), e = ref["end"].get<std::size_t>();
            const auto sb = ref["source_begin"].get<std::size_t>();
            const auto se = ref["source_end"].get<std::size_t>();
            EXPECT_GE(b, se + 1000);
            EXPECT_EQ(text.substr(b, e - b), text.substr(sb, se - sb));
        }
    }
    EXPECT_NE(read_file(dir_ / "docs/doc_000000.txt"), read_file(dir_ / "docs/doc_000001.txt"));
    EXPECT_EQ(json::parse(read_file(dir_ / "docs/tokenizer.json"))["model"]["type"], "BPE");
    // The same seed writes the same documents.
    ASSERT_EQ(
        l2a("make-docs --out again --count 1 --tokens 4096 --min-distance 1000 --seed 5 --quiet",
            dir_)
            .status,
        0);
    EXPECT_EQ(read_file(dir_ / "again/doc_000000.txt"), read_file(dir_ / "docs/doc_000000.txt"));

    EXPECT_ONE_LINE_ERROR(l2a("make-docs", dir_), 2, "--out DIR");
    EXPECT_ONE_LINE_ERROR(l2a("make-docs --out d --tokens 1000 --min-distance 600", dir_), 2,
                          "--min-distance");
    EXPECT_ONE_LINE_ERROR(l2a("make-docs --out d --mix missing.txt", dir_), 1, "missing.txt");
    EXPECT_TRUE(contains(l2a("help make-docs", dir_).out, "--tokenizer-out"));
    EXPECT_TRUE(contains(l2a("help make-docs", dir_).out, "--style STYLE"));
}

TEST_F(Cli, MakeDocsWritesHandbookDocuments) {
    ASSERT_EQ(l2a("make-docs --out hb --count 2 --tokens 4096 --min-distance 1000 --seed 5 "
                  "--style handbook --quiet",
                  dir_)
                  .status,
              0);
    const std::string text = read_file(dir_ / "hb/doc_000000.txt");
    EXPECT_EQ(text.rfind("# The ", 0), 0u) << text.substr(0, 80);
    EXPECT_TRUE(contains(text, " Handbook\n")) << text.substr(0, 80);
    const json side = json::parse(read_file(dir_ / "hb/doc_000000.json"));
    EXPECT_EQ(side["bytes"], text.size());
    ASSERT_FALSE(side["references"].empty());
    for (const json& ref : side["references"]) {
        const auto b = ref["begin"].get<std::size_t>(), e = ref["end"].get<std::size_t>();
        const auto sb = ref["source_begin"].get<std::size_t>();
        const auto se = ref["source_end"].get<std::size_t>();
        EXPECT_GE(b, se + 1000);
        EXPECT_EQ(text.substr(b, e - b), text.substr(sb, se - sb));
    }
    // --style synthetic is the default.
    ASSERT_EQ(l2a("make-docs --out syn --count 1 --tokens 4096 --min-distance 1000 --seed 5 "
                  "--style synthetic --quiet",
                  dir_)
                  .status,
              0);
    ASSERT_EQ(
        l2a("make-docs --out plain --count 1 --tokens 4096 --min-distance 1000 --seed 5 --quiet",
            dir_)
            .status,
        0);
    EXPECT_EQ(read_file(dir_ / "syn/doc_000000.txt"), read_file(dir_ / "plain/doc_000000.txt"));
    EXPECT_NE(read_file(dir_ / "syn/doc_000000.txt"), text);
    EXPECT_ONE_LINE_ERROR(l2a("make-docs --out d --style prose", dir_), 2, "--style");
}

TEST_F(Cli, ConstructErrorsAreOneLine) {
    EXPECT_ONE_LINE_ERROR(l2a("construct --out x", dir_), 2, "--base DIR");
    EXPECT_ONE_LINE_ERROR(l2a("construct --base b", dir_), 2, "--out DIR");
    EXPECT_ONE_LINE_ERROR(l2a("construct --base nowhere --out x --quiet", dir_), 1,
                          "no config.json");
    EXPECT_ONE_LINE_ERROR(l2a("construct --base nowhere --out x --threshold 1.5", dir_), 2,
                          "--threshold");
    // The demo model is already an L2A model.
    const Result info = l2a("info --demo --json", dir_);
    ASSERT_EQ(info.status, 0) << info.err;
    const std::string demo = json::parse(info.out)["path"].get<std::string>();
    EXPECT_ONE_LINE_ERROR(l2a("construct --base '" + demo + "' --out x --quiet", dir_), 1,
                          "already an L2A model");
    EXPECT_FALSE(fs::exists(dir_ / "x"));
    EXPECT_TRUE(contains(l2a("help construct", dir_).out, "--window W"));
}

TEST_F(Cli, TrainRunsAndItsMistakesAreOneLine) {
    const Result info = l2a("info --demo --json", dir_);
    ASSERT_EQ(info.status, 0) << info.err;
    const std::string demo = json::parse(info.out)["path"].get<std::string>();
    ASSERT_EQ(
        l2a("make-docs --out docs --count 2 --tokens 2048 --min-distance 300 --quiet", dir_).status,
        0);
    Result r = l2a("train --model '" + demo +
                       "' --data docs --out run --steps 3 --batch 1 --seq-len 128 "
                       "--warmup 1 --threads 1 --quiet",
                   dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir_ / "run/last/model.safetensors"));
    EXPECT_TRUE(fs::exists(dir_ / "run/last/train_state.json"));
    const std::string log = read_file(dir_ / "run/train.csv");
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 4) << log;  // header + 3 steps
    // The trained checkpoint runs.
    r = l2a("run --model run/last --doc docs/doc_000000.txt --max-tokens 64 --quiet --json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;

    EXPECT_ONE_LINE_ERROR(l2a("train --data docs --out x", dir_), 2, "--model DIR");
    EXPECT_ONE_LINE_ERROR(l2a("train --model m --out x", dir_), 2, "--data DIR");
    EXPECT_ONE_LINE_ERROR(l2a("train --model m --data docs --out x --train some", dir_), 2,
                          "--train some");
    // A run on the demo model whose data folder does not exist: what is checked before the data
    // are read fails first.
    const auto on_demo = [&](const std::string& options) {
        return l2a("train --model '" + demo + "' --data nowhere --out x" + options, dir_);
    };
    EXPECT_ONE_LINE_ERROR(on_demo(" --quiet"), 1, "nowhere");
    EXPECT_ONE_LINE_ERROR(
        l2a("train --model '" + demo + "' --data docs --out run --resume --steps 5 --quiet", dir_),
        1, "train_state.json");
    EXPECT_ONE_LINE_ERROR(l2a("train --model m --data docs --out x --lambda-layers 1,,2", dir_), 2,
                          "--lambda-layers: '' (in '1,,2') is not a number");
    EXPECT_ONE_LINE_ERROR(l2a("train --model m --data docs --out x --lambda-layers 1,-1", dir_), 2,
                          "every factor must be 0 or more");
    // The demo model has 6 layers: the count is checked before any data are read.
    EXPECT_ONE_LINE_ERROR(on_demo(" --lambda-layers 1,2 --quiet"), 1,
                          "gives 2 factors; the model has 6 layers");
    EXPECT_TRUE(contains(l2a("help train", dir_).out, "--dense-prob"));
    EXPECT_TRUE(contains(l2a("help train", dir_).out, "--lambda-layers"));
    EXPECT_ONE_LINE_ERROR(l2a("train --model m --data docs --out x --locality -1", dir_), 2,
                          "--locality: must not be negative");
    EXPECT_ONE_LINE_ERROR(l2a("train --model m --data docs --out x --locality-window 8", dir_), 2,
                          "go with --locality X");
    // The demo model's window is 256: a sequence of 128 tokens has no key older than it.
    EXPECT_ONE_LINE_ERROR(
        on_demo(" --locality 0.5 --seq-len 128"), 1,
        "--locality: the model's window, 256, leaves no key older than the window");
    EXPECT_ONE_LINE_ERROR(on_demo(" --locality 0.5 --train local"), 1, "--train local keeps fixed");
    EXPECT_TRUE(contains(l2a("help train", dir_).out, "--locality-window"));
}

TEST_F(Cli, ConvertThenEvaluateAndTheirMistakesAreOneLine) {
    const Result info = l2a("info --demo --json", dir_);
    ASSERT_EQ(info.status, 0) << info.err;
    const std::string demo = json::parse(info.out)["path"].get<std::string>();
    Result r = l2a("convert --model '" + demo + "' --out half --dtype bf16", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "converted to bf16")) << r.out;
    EXPECT_EQ(json::parse(read_file(dir_ / "half/config.json"))["torch_dtype"], "bfloat16");
    ASSERT_EQ(
        l2a("make-docs --out docs --count 2 --tokens 1024 --min-distance 200 --quiet", dir_).status,
        0);
    r = l2a("evaluate --model half --docs docs --max-tokens 512 --json --quiet --out e.json", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["documents"], 2);
    EXPECT_EQ(j["tokens"], 1024);
    EXPECT_EQ(j["variants"].size(), 4u);
    EXPECT_EQ(j["checks"].size(), 4u);
    EXPECT_EQ(json::parse(read_file(dir_ / "e.json")), j);
    r = l2a("evaluate --model half --docs docs --count 1 --max-tokens 256 --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "Checks:")) << r.out;
    EXPECT_TRUE(contains(r.out, "1 documents, 256 tokens")) << r.out;

    EXPECT_ONE_LINE_ERROR(l2a("convert --model half --out half2 --dtype int8", dir_), 2,
                          "--dtype int8");
    EXPECT_ONE_LINE_ERROR(l2a("convert --model half --out half --dtype f32", dir_), 1,
                          "own folder");
    EXPECT_ONE_LINE_ERROR(
        l2a("convert --model '" + demo + "' --out half --dtype f32 --quiet", dir_), 1, "--force");
    EXPECT_ONE_LINE_ERROR(l2a("evaluate --model half", dir_), 2, "--docs DIR");
    fs::create_directories(dir_ / "empty");
    EXPECT_ONE_LINE_ERROR(l2a("evaluate --model half --docs empty --quiet", dir_), 1, "make-docs");
    EXPECT_TRUE(contains(l2a("help evaluate", dir_).out, "reference position"));
    EXPECT_TRUE(contains(l2a("help convert", dir_).out, "--dtype"));
}

}  // namespace
