// The generator keeps a queue of "facts" stated so far. Each step either states a new fact
// (a key and its value, a defined term, a numbered section with a claim), writes filler (or a
// chunk of the mixed-in natural text), or, once a fact is old enough, refers back to it in a
// sentence whose ending can only be completed by remembering the fact. Values and definitions
// are random word pairs, so nothing nearby predicts them.
#include "l2a/engine/synthetic_docs.h"

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <string_view>

namespace l2a {
namespace {

// splitmix64: a small, portable generator (std distributions differ between libraries).
class Random {
public:
    explicit Random(std::uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return n ? static_cast<std::size_t>(next() % n) : 0; }
    template <typename T, std::size_t N>
    const T& pick(const T (&items)[N]) {
        return items[below(N)];
    }

private:
    std::uint64_t state_;
};

constexpr const char* kAdjectives[] = {
    "amber", "silver", "quiet", "crimson", "hollow", "bright", "frozen", "gentle", "rapid",
    "ancient", "narrow", "golden", "bitter", "distant", "hidden", "woven", "copper", "pale",
    "restless", "steady", "velvet", "jagged", "misty", "scarlet", "humble", "lucid", "brisk",
    "dusky", "ivory", "lunar"};
constexpr const char* kNouns[] = {
    "falcon", "harbor", "lantern", "meadow", "compass", "glacier", "orchard", "signal", "anchor",
    "beacon", "cipher", "thistle", "canyon", "ember", "willow", "quarry", "mirror", "tundra",
    "ribbon", "summit", "pebble", "comet", "basalt", "heron", "garnet", "prairie", "spindle",
    "marble", "lagoon", "tapestry"};
constexpr const char* kTermStarts[] = {"glor", "vend", "quil", "tras", "mirn", "zeph", "brol",
                                       "cand", "plum", "drev", "skar", "welt"};
constexpr const char* kTermEnds[] = {"ix", "ane", "otl", "ume", "ark", "esh", "ona", "ith"};
constexpr const char* kFiller[] = {
    "The committee reviewed the schedule and agreed to revisit it later.",
    "Several readers asked for more examples, so a few are included below.",
    "This paragraph restates the background for readers who skipped ahead.",
    "Nothing in this part changes the earlier conclusions.",
    "The measurements were repeated on three days with similar results.",
    "A short note on notation: numbers in brackets are counts.",
    "Most of the remaining text is routine and can be skimmed.",
    "The next paragraphs describe the procedure step by step.",
    "Each step was checked twice before the results were written down.",
    "Some of the wording follows the original report closely.",
    "The appendix lists the same items in a different order.",
    "Readers familiar with the method may skip to the next section."};

std::string value_phrase(Random& r) {
    return std::string(r.pick(kAdjectives)) + " " + r.pick(kNouns);
}

struct Fact {
    std::string kind;
    std::string cue;      // what the reference sentence says before the answer
    std::string answer;   // what it must recall
    std::size_t source_begin = 0, source_end = 0;
    std::size_t stated_at = 0;  // byte offset where the statement ends
};

class Writer {
public:
    explicit Writer(const SyntheticDocOptions& o) : o_(o), r_(o.seed) {}

    SyntheticDoc write() {
        int section = 1, subsection = 0;
        heading(section, subsection);
        while (doc_.text.size() < o_.target_bytes) {
            const std::size_t roll = r_.below(100);
            // Refer back when a fact is old enough (about a third of the steps).
            if (!facts_.empty() && facts_.front().stated_at + o_.min_distance <= doc_.text.size() &&
                roll < 35) {
                refer_back();
            } else if (roll < 60) {
                state_fact(section, subsection);
            } else if (roll < 70) {
                if (++subsection > 4) {
                    ++section;
                    subsection = 0;
                }
                heading(section, subsection);
            } else {
                filler();
            }
        }
        return std::move(doc_);
    }

private:
    void add(std::string_view s) { doc_.text += s; }

    void heading(int section, int subsection) {
        add("\n## Section " + std::to_string(section) + "." + std::to_string(subsection) + "\n\n");
    }

    void filler() {
        if (!o_.mix_texts.empty()) {
            // The next chunk of natural text, cut at a line or word boundary.
            const std::string& source = o_.mix_texts[mix_index_ % o_.mix_texts.size()];
            if (mix_offset_ >= source.size()) {
                mix_offset_ = 0;
                ++mix_index_;
                return;
            }
            std::size_t end = std::min(source.size(), mix_offset_ + 200 + r_.below(300));
            while (end < source.size() && source[end] != ' ' && source[end] != '\n') ++end;
            std::string chunk = source.substr(mix_offset_, end - mix_offset_);
            // Keep the document valid UTF-8: stop before a cut multi-byte character.
            while (!chunk.empty() && (static_cast<unsigned char>(chunk.back()) & 0x80)) chunk.pop_back();
            mix_offset_ = end;
            add(chunk);
            add("\n\n");
            return;
        }
        const std::size_t sentences = 1 + r_.below(3);
        for (std::size_t i = 0; i < sentences; ++i) {
            add(r_.pick(kFiller));
            add(" ");
        }
        add("\n");
    }

    void state_fact(int section, int subsection) {
        Fact f;
        const std::size_t kind = r_.below(4);
        const std::string value = value_phrase(r_);
        if (kind == 0) {
            const std::string key = "K-" + std::to_string(1000 + r_.below(9000));
            add("Key " + key + " is '");
            f.kind = "key";
            f.cue = "Recall that key " + key + " is '";
            f.answer = value;
            f.source_begin = doc_.text.size();
            add(value);
            f.source_end = doc_.text.size();
            add("'.\n");
        } else if (kind == 1) {
            const std::string term = std::string(r_.pick(kTermStarts)) + r_.pick(kTermEnds);
            add("Definition: a *" + term + "* is a ");
            f.kind = "term";
            f.cue = "As defined above, a *" + term + "* is a ";
            f.answer = value;
            f.source_begin = doc_.text.size();
            add(value);
            f.source_end = doc_.text.size();
            add(".\n");
        } else if (kind == 2) {
            const std::string label = std::to_string(section) + "." + std::to_string(subsection);
            add("Claim " + label + ": the " + r_.pick(kNouns) + " count is ");
            const std::string number = std::to_string(10 + r_.below(990));
            f.kind = "section";
            f.cue = "By the claim of section " + label + ", the count is ";
            f.answer = number;
            f.source_begin = doc_.text.size();
            add(number);
            f.source_end = doc_.text.size();
            add(".\n");
        } else {
            // A passage of random words, repeated verbatim later after its first two words.
            std::string passage;
            const std::size_t words = 8 + r_.below(8);
            for (std::size_t i = 0; i < words; ++i) {
                if (i) passage += ' ';
                passage += i % 2 ? r_.pick(kNouns) : r_.pick(kAdjectives);
            }
            const std::size_t split = passage.find(' ', passage.find(' ') + 1);
            f.kind = "repeat";
            f.cue = passage.substr(0, split + 1);
            f.answer = passage.substr(split + 1);
            add("Note: ");
            add(f.cue);
            f.source_begin = doc_.text.size();
            add(f.answer);
            f.source_end = doc_.text.size();
            add(".\n");
        }
        f.stated_at = doc_.text.size();
        facts_.push_back(std::move(f));
    }

    void refer_back() {
        // A random fact among the old enough ones, so references are not in statement order.
        std::size_t old = 0;
        while (old < facts_.size() && facts_[old].stated_at + o_.min_distance <= doc_.text.size()) ++old;
        const std::size_t i = r_.below(old);
        Fact f = facts_[i];
        facts_.erase(facts_.begin() + static_cast<std::ptrdiff_t>(i));
        add(f.kind == "repeat" ? "Again: " + f.cue : f.cue);
        ReferenceSpan span;
        span.begin = doc_.text.size();
        add(f.answer);
        span.end = doc_.text.size();
        span.source_begin = f.source_begin;
        span.source_end = f.source_end;
        span.kind = f.kind;
        doc_.references.push_back(span);
        add(f.kind == "key" ? "'.\n" : ".\n");
    }

    const SyntheticDocOptions& o_;
    Random r_;
    SyntheticDoc doc_;
    std::deque<Fact> facts_;
    std::size_t mix_index_ = 0, mix_offset_ = 0;
};

}  // namespace

SyntheticDoc make_synthetic_doc(const SyntheticDocOptions& options) { return Writer(options).write(); }

std::string synthetic_doc_sidecar_json(const SyntheticDoc& doc, std::uint64_t seed) {
    nlohmann::json refs = nlohmann::json::array();
    for (const ReferenceSpan& r : doc.references) {
        refs.push_back({{"kind", r.kind},
                        {"begin", r.begin},
                        {"end", r.end},
                        {"source_begin", r.source_begin},
                        {"source_end", r.source_end}});
    }
    return nlohmann::json{{"bytes", doc.text.size()}, {"seed", seed}, {"references", refs}}.dump(1) +
           "\n";
}

}  // namespace l2a
