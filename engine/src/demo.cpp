// The demo model and document. The model is a small l2a_qwen3 with random weights drawn from our
// own generator (splitmix64 seeding xoshiro256**, Box-Muller): std::normal_distribution is
// implementation-defined, and every machine must produce the same bytes.
#include "l2a/engine/demo.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <system_error>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"
#include "splitmix.h"

namespace l2a {
namespace {

using json = nlohmann::ordered_json;

constexpr const char* kDemoFolderName = "demo-untrained-v1";
// Written into config.json; a folder without it (or with another value) is rebuilt.
constexpr const char* kDemoMarker = "untrained-v1";
constexpr std::uint64_t kDemoSeed = 0x4c32'4144'454d'4f31ULL;

// Architecture of the demo model: small enough to run a few thousand tokens per second on a
// laptop CPU, large enough to have real GQA, QK-norm and a window shorter than the document.
struct DemoShape {
    std::int64_t vocab = 264;  // 256 bytes + 3 special tokens, padded to a multiple of 8
    std::int64_t hidden = 256;
    std::int64_t layers = 6;
    std::int64_t heads = 4;
    std::int64_t kv_heads = 2;
    std::int64_t head_dim = 64;
    std::int64_t intermediate = 704;
    std::int64_t window = 256;
};
constexpr DemoShape kShape;

constexpr std::array<const char*, 3> kSpecialTokens = {"<|endoftext|>", "<|im_start|>",
                                                       "<|im_end|>"};

class Xoshiro256 {
public:
    explicit Xoshiro256(std::uint64_t seed) {
        for (auto& word : s_) word = splitmix64(seed);
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in (0, 1): 53 random bits, never exactly 0 (Box-Muller takes its log).
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
    std::uint64_t below(std::uint64_t n) { return next() % n; }
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double radius = std::sqrt(-2.0 * std::log(uniform()));
        const double angle = 2.0 * 3.14159265358979323846 * uniform();
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
    double spare_ = 0.0;
    bool has_spare_ = false;
};

// Each tensor has its own stream (seed mixed with its name), so adding or reordering tensors
// never changes the others.
std::uint64_t tensor_seed(std::string_view name) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
    for (char c : name) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;
    }
    std::uint64_t state = kDemoSeed ^ hash;
    return splitmix64(state);
}

struct WeightSpec {
    std::string name;
    std::vector<std::int64_t> shape;
    double std = 0.0;  // 0: all ones (norm weights); negative: the negated draw
};

std::vector<WeightSpec> demo_weights() {
    const auto& s = kShape;
    const std::int64_t q_rows = s.heads * s.head_dim;
    const std::int64_t kv_rows = s.kv_heads * s.head_dim;
    constexpr double kMatrixStd = 0.02;
    // At theta = 0.5 the hard decision is sign(w . u), whatever the scale of w; the scale only
    // sets how soft p = sigmoid(z / tau) is. With |u| ~ sqrt(d) = 16 this std gives z a spread of
    // about 0.3, so p at tau = 0.1 spans most of (0, 1) instead of sticking to 0 or 1.
    constexpr double kRouterStd = 0.02;
    // Random routers put the decision boundary anywhere relative to the hidden states' shared
    // direction, so some layers route nearly every token and others nearly none. Flipping the
    // sign of a router turns a fraction f into 1 - f; these signs, found once on the demo
    // document, keep every layer between a few and about half of its tokens, as a sparse
    // trained model would.
    constexpr std::array<double, 6> kRouterSign = {1, -1, -1, 1, -1, 1};
    static_assert(kRouterSign.size() == kShape.layers);

    std::vector<WeightSpec> specs;
    specs.push_back({"model.embed_tokens.weight", {s.vocab, s.hidden}, kMatrixStd});
    for (std::int64_t layer = 0; layer < s.layers; ++layer) {
        const std::string p = "model.layers." + std::to_string(layer) + ".";
        specs.push_back({p + "input_layernorm.weight", {s.hidden}, 0.0});
        specs.push_back({p + "input_layernorm_global.weight", {s.hidden}, 0.0});
        specs.push_back({p + "post_attention_layernorm.weight", {s.hidden}, 0.0});
        for (const char* suffix : {"", "_global"}) {
            const std::string a = p + "self_attn.";
            specs.push_back({a + "q_proj" + suffix + ".weight", {q_rows, s.hidden}, kMatrixStd});
            specs.push_back({a + "k_proj" + suffix + ".weight", {kv_rows, s.hidden}, kMatrixStd});
            specs.push_back({a + "v_proj" + suffix + ".weight", {kv_rows, s.hidden}, kMatrixStd});
            specs.push_back({a + "o_proj" + suffix + ".weight", {s.hidden, q_rows}, kMatrixStd});
            specs.push_back({a + "q_norm" + suffix + ".weight", {s.head_dim}, 0.0});
            specs.push_back({a + "k_norm" + suffix + ".weight", {s.head_dim}, 0.0});
        }
        specs.push_back({p + "self_attn.sigmoid_linear.weight",
                         {1, s.hidden},
                         kRouterSign[static_cast<std::size_t>(layer)] * kRouterStd});
        specs.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, kMatrixStd});
        specs.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, kMatrixStd});
        specs.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, kMatrixStd});
    }
    specs.push_back({"model.norm.weight", {s.hidden}, 0.0});
    return specs;
}

std::string demo_config_json() {
    const auto& s = kShape;
    json j;
    j["architectures"] = {"L2AQwen3ForCausalLM"};
    j["model_type"] = "l2a_qwen3";
    j["l2a_untrained"] = true;
    j["l2a_demo"] = kDemoMarker;
    j["vocab_size"] = s.vocab;
    j["hidden_size"] = s.hidden;
    j["intermediate_size"] = s.intermediate;
    j["num_hidden_layers"] = s.layers;
    j["num_attention_heads"] = s.heads;
    j["num_key_value_heads"] = s.kv_heads;
    j["head_dim"] = s.head_dim;
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = 8192;
    j["rope_theta"] = 10000.0;
    j["rms_norm_eps"] = 1e-6;
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["initializer_range"] = 0.02;
    j["tie_word_embeddings"] = true;
    j["torch_dtype"] = "float32";
    j["bos_token_id"] = 256;
    j["eos_token_id"] = 256;
    j["use_cache"] = true;
    j["sliding_window"] = s.window;
    j["sigmoid_temp"] = 0.1;
    j["sigmoid_threshold"] = 0.5;
    j["sigmoid_linear"] = true;
    j["sig_input_type"] = "hidden_linearproj";
    j["l2a_initfrombase"] = false;
    return j.dump(2) + "\n";
}

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others are moved to
// U+0100 and up, so that every byte is a visible character in the vocabulary.
std::string byte_level_symbol(int byte) {
    const bool printable =
        (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
    unsigned codepoint = static_cast<unsigned>(byte);
    if (!printable) {
        int shifted = 0;
        for (int b = 0; b < byte; ++b) {
            const bool p =
                (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            if (!p) ++shifted;
        }
        codepoint = 256u + static_cast<unsigned>(shifted);
    }
    std::string out;
    if (codepoint < 0x80) {
        out += static_cast<char>(codepoint);
    } else {
        out += static_cast<char>(0xc0 | (codepoint >> 6));
        out += static_cast<char>(0x80 | (codepoint & 0x3f));
    }
    return out;
}

}  // namespace

std::string byte_level_tokenizer_json() {
    json byte_level = {{"type", "ByteLevel"},
                       {"add_prefix_space", false},
                       {"trim_offsets", false},
                       {"use_regex", false}};
    json added = json::array();
    for (std::size_t i = 0; i < kSpecialTokens.size(); ++i) {
        added.push_back({{"id", 256 + static_cast<int>(i)},
                         {"content", kSpecialTokens[i]},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}});
    }
    json vocab = json::object();
    for (int byte = 0; byte < 256; ++byte) vocab[byte_level_symbol(byte)] = byte;
    for (std::size_t i = 0; i < kSpecialTokens.size(); ++i) {
        vocab[kSpecialTokens[i]] = 256 + static_cast<int>(i);
    }
    json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = std::move(added);
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = byte_level;
    j["post_processor"] = byte_level;
    j["decoder"] = byte_level;
    j["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", ""},
                  {"end_of_word_suffix", ""},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", std::move(vocab)},
                  {"merges", json::array()}};
    return j.dump(2) + "\n";
}

namespace {

void write_demo_weights(const std::filesystem::path& path) {
    SafetensorsWriter writer(path);
    writer.set_metadata("format", "pt");
    writer.set_metadata("l2a.note", "random weights, untrained (L2A Studio demo model)");
    const std::vector<WeightSpec> specs = demo_weights();
    for (const WeightSpec& spec : specs) writer.declare(spec.name, DType::F32, spec.shape);
    std::vector<float> buffer;
    for (const WeightSpec& spec : specs) {
        std::int64_t count = 1;
        for (std::int64_t dim : spec.shape) count *= dim;
        Xoshiro256 rng(tensor_seed(spec.name));
        constexpr std::int64_t kPiece = 1 << 16;
        for (std::int64_t done = 0; done < count; done += kPiece) {
            const std::int64_t n = std::min(kPiece, count - done);
            buffer.resize(static_cast<std::size_t>(n));
            for (float& value : buffer) {
                value = spec.std == 0.0 ? 1.0f : static_cast<float>(spec.std * rng.normal());
            }
            writer.write(buffer.data(), buffer.size() * sizeof(float));
        }
    }
    writer.finish();
}

bool demo_folder_complete(const std::filesystem::path& dir) {
    std::error_code ec;
    for (const char* name : {"config.json", "model.safetensors", "tokenizer.json"}) {
        if (!std::filesystem::is_regular_file(dir / name, ec)) return false;
    }
    try {
        const json config = json::parse(read_text_file(dir / "config.json"));
        return config.value("l2a_demo", "") == kDemoMarker;
    } catch (const std::exception&) {
        return false;
    }
}

std::string env(const char* name) {
    const char* value = std::getenv(name);
    return value ? std::string(value) : std::string();
}

}  // namespace

std::filesystem::path demo_model_dir() {
    if (std::string dir = env("L2A_DEMO_DIR"); !dir.empty()) return dir;
    std::filesystem::path cache;
    if (std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty() && xdg.front() == '/') {
        cache = xdg;
    } else if (std::string home = env("HOME"); !home.empty()) {
        cache = std::filesystem::path(home) / ".cache";
    } else {
        cache = std::filesystem::temp_directory_path();
    }
    return cache / "l2a-studio" / kDemoFolderName;
}

std::filesystem::path ensure_demo_model(const std::filesystem::path& dir) {
    if (demo_folder_complete(dir)) return dir;

    static std::atomic<unsigned> counter{0};
    const std::filesystem::path parent = dir.has_parent_path() ? dir.parent_path() : ".";
    const std::filesystem::path temp =
        parent / ("." + dir.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter++));
    const std::string origin = dir.string();
    std::error_code ec;
    std::filesystem::create_directories(temp, ec);
    if (ec) fail(origin, "cannot create the demo model folder: " + ec.message());
    try {
        write_text_atomically(temp / "config.json", demo_config_json());
        write_text_atomically(temp / "tokenizer.json", byte_level_tokenizer_json());
        write_demo_weights(temp / "model.safetensors");
    } catch (...) {
        std::filesystem::remove_all(temp, ec);
        throw;
    }

    // A leftover incomplete folder is replaced; one completed meanwhile by another process wins.
    if (std::filesystem::exists(dir, ec) && !demo_folder_complete(dir)) {
        std::filesystem::remove_all(dir, ec);
    }
    std::filesystem::rename(temp, dir, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove_all(temp, ignored);
        if (demo_folder_complete(dir)) return dir;
        fail(origin, "cannot create the demo model folder: " + ec.message());
    }
    return dir;
}

// ---- the demo document ------------------------------------------------------------------------

namespace {

struct Term {
    const char* word;
    const char* definition;
};

// A glossary of replicated logs. Definitions come early; the rest of the document leans on them
// ("as in Definition 3") and asks about them again, so reading it well takes long-range recall.
constexpr std::array<Term, 14> kTerms = {{
    {"replica", "a server that keeps its own copy of the log and applies its entries in order"},
    {"log entry", "a client command together with the term in which the leader received it"},
    {"quorum", "any majority of the replicas, so that two quorums always share a replica"},
    {"term", "a numbered stretch of time that begins with an election and has at most one leader"},
    {"leader", "the one replica of a term that accepts commands and sends them to the others"},
    {"follower", "a replica that answers the leader and stores the entries it is sent"},
    {"heartbeat", "an empty append message that a leader sends to show that it is alive"},
    {"election timeout",
     "the time a follower waits without a heartbeat before it starts an election"},
    {"commit index", "the position of the newest entry known to be stored on a quorum"},
    {"snapshot", "a compact image of the state machine that replaces a prefix of the log"},
    {"lease", "a promise, bounded in time, that no other replica will act as leader"},
    {"partition", "a network failure that splits the replicas into groups that cannot talk"},
    {"state machine", "the deterministic program that every replica runs on committed entries"},
    {"joint consensus",
     "a transition in which every decision needs a quorum of the old and of the new members"},
}};

constexpr std::array<const char*, 7> kNodes = {"alder", "birch", "cedar",  "elm",
                                               "fir",   "hazel", "juniper"};

constexpr const char* kGoldenRule =
    "The golden rule, repeated on purpose: an entry is committed once a quorum has stored it, "
    "and a committed entry is never lost, whatever fails afterwards.";

struct Topic {
    const char* title;
    const char* body;  // {N} refers to Definition N (1-based): "*word* (Definition N)"
};

constexpr std::array<Topic, 10> kTopics = {{
    {"Electing a leader",
     "Every replica starts as a {6}. When its {8} runs out, it increases the {4}, votes for "
     "itself and asks the others for their votes. A candidate that collects votes from a {3} "
     "becomes the {5} and sends a {7} at once, so that nobody else starts a competing election."},
    {"Appending entries",
     "Clients talk only to the {5}. It wraps each command in a {2}, appends it to its own log and "
     "sends it to every {6}. A follower accepts the entry only if its log matches the leader's "
     "log just before it; otherwise it refuses, and the leader retries one position earlier."},
    {"Committing",
     "The {5} advances the {9} as soon as a {3} has stored an entry of the current {4}. Only then "
     "does each {1} hand the entry to its {13}. Entries of older terms are committed indirectly, "
     "by committing a newer entry after them."},
    {"Snapshots",
     "A log that grows forever is a liability. From time to time each {1} writes a {10} and "
     "drops the entries it covers. A {6} that falls far behind receives the snapshot instead of "
     "the missing entries, then continues from the position the snapshot ends at."},
    {"Reading safely",
     "A read served by a stale {5} may miss a write that a newer leader has committed. Either "
     "the leader confirms with a {3} before it answers, or it holds a {11} and answers alone "
     "while the lease lasts. The lease trades a round trip for a bound on clock drift."},
    {"Surviving a partition",
     "During a {12}, at most one side can contain a {3}. The side without one cannot commit "
     "anything, even if it still has a {5} from an earlier {4}; its writes wait, and are "
     "discarded when the network heals and a newer leader speaks."},
    {"Changing the membership",
     "Adding or removing replicas is dangerous because the meaning of {3} changes. With {14}, "
     "the cluster passes through a state in which both the old and the new members must agree, "
     "so that two leaders can never be elected for the same {4}."},
    {"Recovering after a crash",
     "A {1} that restarts reads its latest {10} and replays every {2} written after it. It has "
     "forgotten "
     "nothing that it acknowledged, because it writes every entry to stable storage before "
     "answering. It then waits as a {6} for the current leader's {7}."},
    {"Tuning the timeouts",
     "An {8} much longer than the interval between heartbeats avoids needless elections; one "
     "much shorter than a network delay causes them constantly. A common choice is ten "
     "heartbeat intervals, with a random spread so that candidates rarely collide."},
    {"Measuring latency",
     "A write costs one round trip from the {5} to the fastest {3}, plus one write to stable "
     "storage. A slow {1} does not slow the cluster down, as long as a quorum of fast replicas "
     "remains; the {9} simply moves on without it."},
}};

const char* article(std::string_view word) {
    return std::string_view("aeiou").find(word.front()) != std::string_view::npos ? "an" : "a";
}

std::string with_article(std::string_view word) {
    return article(word) + (" " + std::string(word));
}

std::string cap(std::string text) {
    if (!text.empty() && text[0] >= 'a' && text[0] <= 'z')
        text[0] = static_cast<char>(text[0] - 32);
    return text;
}

// "{3}" -> "*quorum* (Definition 3)" the first time a section names it, "quorum" afterwards.
std::string expand_references(std::string_view body) {
    std::string out;
    std::vector<bool> seen(kTerms.size() + 1, false);
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] != '{') {
            out += body[i];
            continue;
        }
        const std::size_t close = body.find('}', i);
        const int n = std::stoi(std::string(body.substr(i + 1, close - i - 1)));
        const std::string word = kTerms[static_cast<std::size_t>(n - 1)].word;
        if (!seen[static_cast<std::size_t>(n)]) {
            out += "*" + word + "* (Definition " + std::to_string(n) + ")";
            seen[static_cast<std::size_t>(n)] = true;
        } else {
            out += word;
        }
        i = close;
    }
    return out;
}

class DemoWriter {
public:
    explicit DemoWriter(std::size_t target) : target_(target), rng_(kDemoSeed) {}

    std::string write() {
        add("# A Field Guide to Replicated Logs\n\n");
        add("This guide explains how a small group of servers keeps one ordered log of commands "
            "even when some of them crash or the network misbehaves. It is meant to be read in "
            "order: the first section fixes the vocabulary, and every later section builds on "
            "it.\n\n");
        add("## Section 1: Vocabulary\n\n");
        for (std::size_t i = 0; i < kTerms.size() && !done(); ++i) {
            add("Definition " + std::to_string(i + 1) + ": " + article(kTerms[i].word) + " *" +
                kTerms[i].word + "* is " + kTerms[i].definition + ".\n\n");
        }
        int section = 2;
        for (std::size_t round = 0; !done(); ++round) {
            for (std::size_t t = 0; t < kTopics.size() && !done(); ++t, ++section) {
                write_section(section, kTopics[t], round);
            }
        }
        return text_;
    }

private:
    bool done() const { return text_.size() >= target_; }
    void add(const std::string& piece) { text_ += piece; }
    const char* node() { return kNodes[rng_.below(kNodes.size())]; }
    std::size_t term_index() { return rng_.below(kTerms.size()); }

    void write_section(int number, const Topic& topic, std::size_t round) {
        std::string title = topic.title;
        if (round > 0) title += ", revisited (" + std::to_string(round + 1) + ")";
        add("## Section " + std::to_string(number) + ": " + title + "\n\n");
        add(expand_references(topic.body) + "\n\n");
        add(example(number));
        // Some passages come back word for word: a reader (or a model) that remembers them can
        // predict them exactly.
        if (number % 3 == 0) add(std::string(kGoldenRule) + "\n\n");
        add(check_yourself());
    }

    std::string example(int section) {
        const std::string leader = node();
        std::string follower = node();
        while (follower == leader) follower = node();
        const auto term = 2 + rng_.below(40);
        const auto index = 10 + rng_.below(900);
        const std::size_t cited = term_index();
        std::string out = "Example " + std::to_string(section) + ".1: in a cluster of five, " +
                          leader + " is the leader of term " + std::to_string(term) + " and " +
                          follower + " has stored entries up to index " + std::to_string(index) +
                          ". ";
        switch (rng_.below(4)) {
            case 0:
                out += "If " + leader + " crashes, " + follower + " waits for its election " +
                       "timeout, asks for votes in term " + std::to_string(term + 1) +
                       ", and wins if three replicas answer.";
                break;
            case 1:
                out += "The leader can move the commit index to " + std::to_string(index) +
                       " only after two more replicas confirm that entry.";
                break;
            case 2:
                out += "A partition that leaves " + leader + " with one other replica stops all " +
                       "commits until the network heals.";
                break;
            default:
                out += "When " + follower + " falls behind by more than a snapshot, the leader " +
                       "sends the snapshot and the entries after it.";
                break;
        }
        out += " Recall, as in Definition " + std::to_string(cited + 1) + ", that " +
               with_article(kTerms[cited].word) + " is " + kTerms[cited].definition + ".\n\n";
        return out;
    }

    // Asks for a definition and answers with its exact words from Section 1.
    std::string check_yourself() {
        const std::size_t i = term_index();
        return "Check yourself: what is " + with_article(kTerms[i].word) + "? Answer, as in " +
               "Definition " + std::to_string(i + 1) + ": " + cap(kTerms[i].definition) + ".\n\n";
    }

    std::size_t target_;
    Xoshiro256 rng_;
    std::string text_;
};

}  // namespace

std::string demo_document(std::size_t approx_bytes) {
    std::string text = DemoWriter(approx_bytes).write();
    if (text.size() > approx_bytes + approx_bytes / 10) {
        // Very small requests: end at a sentence boundary near the requested size.
        const std::size_t cut = text.rfind(". ", approx_bytes);
        text.resize(cut == std::string::npos ? approx_bytes : cut + 1);
        text += "\n";
    }
    return text;
}

}  // namespace l2a
