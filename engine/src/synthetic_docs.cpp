// The generator keeps a queue of "facts" stated so far. Each step either states a new fact
// (a key and its value, a defined term, a numbered section with a claim), writes filler (or a
// chunk of the mixed-in natural text), or, once a fact is old enough, refers back to it in a
// sentence whose ending can only be completed by remembering the fact. Values and definitions
// are random word pairs, codes or made-up words, so nothing nearby predicts them. Codes and
// made-up words carry information in every byte: a model that learns to look back and copy them
// gains on every byte, which is what makes it learn to look back at all.
#include "l2a/engine/synthetic_docs.h"

#include <algorithm>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "doc_random.h"
#include "handbook_docs.h"

namespace l2a {
namespace {

using Random = DocRandom;

constexpr const char* kAdjectives[] = {
    "amber",  "silver",  "quiet",    "crimson", "hollow", "bright",  "frozen", "gentle",
    "rapid",  "ancient", "narrow",   "golden",  "bitter", "distant", "hidden", "woven",
    "copper", "pale",    "restless", "steady",  "velvet", "jagged",  "misty",  "scarlet",
    "humble", "lucid",   "brisk",    "dusky",   "ivory",  "lunar"};
constexpr const char* kNouns[] = {"falcon",  "harbor",  "lantern", "meadow", "compass", "glacier",
                                  "orchard", "signal",  "anchor",  "beacon", "cipher",  "thistle",
                                  "canyon",  "ember",   "willow",  "quarry", "mirror",  "tundra",
                                  "ribbon",  "summit",  "pebble",  "comet",  "basalt",  "heron",
                                  "garnet",  "prairie", "spindle", "marble", "lagoon",  "tapestry"};
constexpr const char* kTermStarts[] = {"glor", "vend", "quil", "tras", "mirn", "zeph",
                                       "brol", "cand", "plum", "drev", "skar", "welt"};
constexpr const char* kTermEnds[] = {"ix", "ane", "otl", "ume", "ark", "esh", "ona", "ith"};
// Filler: sentences assembled from parts (thousands of combinations), so that no amount of
// training makes the filler memorable, but none of it needs anything far back.
constexpr const char* kSubjects[] = {
    "The committee",       "Our team",          "The auditor",
    "Each reader",         "The second survey", "A later draft",
    "The field crew",      "This chapter",      "The night shift",
    "An outside reviewer", "The working group", "The summary table",
    "Most observers",      "The first report",  "A small panel",
    "The archive staff"};
constexpr const char* kVerbs[] = {"reviewed",  "summarized", "questioned", "revisited", "measured",
                                  "compared",  "described",  "postponed",  "checked",   "recorded",
                                  "discussed", "corrected",  "estimated",  "listed"};
constexpr const char* kObjects[] = {"the schedule",
                                    "the earlier figures",
                                    "the shipping records",
                                    "two of the samples",
                                    "the draft budget",
                                    "the weather notes",
                                    "the list of open questions",
                                    "the older maps",
                                    "the survey results",
                                    "the supply counts",
                                    "the travel plans",
                                    "the minutes of the meeting",
                                    "the remaining items",
                                    "the first estimates"};
constexpr const char* kTails[] = {" and agreed to revisit it later",
                                  " before the meeting ended",
                                  " without changing the conclusions",
                                  " in some detail",
                                  "",
                                  "",
                                  " once more",
                                  " for the third time",
                                  " with mixed results",
                                  " at the request of the board",
                                  " as planned",
                                  " over two weeks"};
constexpr const char* kFiller[] = {
    "Several readers asked for more examples, so a few are included below.",
    "This paragraph restates the background for readers who skipped ahead.",
    "Nothing in this part changes the earlier conclusions.",
    "A short note on notation: numbers in brackets are counts.",
    "Most of the remaining text is routine and can be skimmed.",
    "Readers familiar with the method may skip to the next section."};

std::string value_phrase(Random& r) {
    return std::string(r.pick(kAdjectives)) + " " + r.pick(kNouns);
}

// A code such as "RWT-5821": three letters, four digits.
std::string value_code(Random& r) {
    std::string code;
    for (int i = 0; i < 3; ++i) code += static_cast<char>('A' + r.below(26));
    code += '-';
    for (int i = 0; i < 4; ++i) code += static_cast<char>('0' + r.below(10));
    return code;
}

// A made-up word of two or three consonant-vowel syllables, such as "ketoma".
std::string made_up_word(Random& r) {
    static constexpr char kConsonants[] = "bdfgklmnprstvz";
    static constexpr char kVowels[] = "aeiou";
    std::string word;
    const std::size_t syllables = 2 + r.below(2);
    for (std::size_t i = 0; i < syllables; ++i) {
        word += kConsonants[r.below(sizeof kConsonants - 1)];
        word += kVowels[r.below(sizeof kVowels - 1)];
    }
    return word;
}

struct Fact {
    std::string kind;
    std::string cue;     // what the reference sentence says before the answer
    std::string answer;  // what it must recall
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
            // Refer back when a fact is old enough (about a third of the steps; dense: most).
            const bool can_refer =
                !facts_.empty() && facts_.front().stated_at + o_.min_distance <= doc_.text.size();
            if (can_refer && roll < (o_.dense ? 55u : 35u)) {
                refer_back();
            } else if (roll < 60 || (o_.dense && roll < 92)) {
                state_fact(section, subsection);
            } else if (roll < 70 || o_.dense) {
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
            const std::optional<std::string> chunk = mix_.next(o_.mix_texts, r_);
            if (!chunk) return;
            add(*chunk);
            add("\n\n");
            return;
        }
        const std::size_t sentences = 1 + r_.below(3);
        for (std::size_t i = 0; i < sentences; ++i) {
            if (r_.below(5) == 0) {
                add(r_.pick(kFiller));
            } else {
                add(std::string(r_.pick(kSubjects)) + " " + r_.pick(kVerbs) + " " +
                    r_.pick(kObjects) + r_.pick(kTails) +
                    (r_.below(4) == 0 ? " (" + std::to_string(2 + r_.below(40)) + " pages)."
                                      : "."));
            }
            add(" ");
        }
        add("\n");
    }

    void state_fact(int section, int subsection) {
        Fact f;
        const std::size_t kind = r_.below(4);
        if (kind == 0) {
            const std::string value = value_code(r_);
            std::string key = "K-" + std::to_string(1000 + r_.below(9000));
            while (used_.count(key)) key = "K-" + std::to_string(1000 + r_.below(9000));
            used_.insert(key);
            add("Key " + key + " is '");
            f.kind = "key";
            f.cue = "Recall that key " + key + " is '";
            f.answer = value;
            f.source_begin = doc_.text.size();
            add(value);
            f.source_end = doc_.text.size();
            add("'.\n");
        } else if (kind == 1) {
            // Each term is defined once per document, so that its recall is unambiguous.
            std::string term = std::string(r_.pick(kTermStarts)) + r_.pick(kTermEnds);
            for (int tries = 0; used_.count(term) && tries < 8; ++tries) {
                term = std::string(r_.pick(kTermStarts)) + r_.pick(kTermEnds);
            }
            if (used_.count(term)) term += std::to_string(used_.size());
            used_.insert(term);
            const std::string value = value_phrase(r_);
            add("Definition: a *" + term + "* is a ");
            f.kind = "term";
            f.cue = "As defined above, a *" + term + "* is a ";
            f.answer = value;
            f.source_begin = doc_.text.size();
            add(value);
            f.source_end = doc_.text.size();
            add(".\n");
        } else if (kind == 2) {
            // Claims are numbered within their section (section 2.1 holds claims 2.1.1, 2.1.2,
            // ...).
            const std::string label = std::to_string(section) + "." + std::to_string(subsection) +
                                      "." + std::to_string(++claims_[section * 100 + subsection]);
            const std::string noun = r_.pick(kNouns);
            add("Claim " + label + ": the " + noun + " count is ");
            const std::string number = std::to_string(10 + r_.below(990));
            f.kind = "section";
            f.cue = "By claim " + label + ", the " + noun + " count is ";
            f.answer = number;
            f.source_begin = doc_.text.size();
            add(number);
            f.source_end = doc_.text.size();
            add(".\n");
        } else {
            // A passage of made-up words, repeated verbatim later after its first two words.
            std::string passage;
            const std::size_t words = 8 + r_.below(8);
            for (std::size_t i = 0; i < words; ++i) {
                if (i) passage += ' ';
                passage += made_up_word(r_);
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
        while (old < facts_.size() && facts_[old].stated_at + o_.min_distance <= doc_.text.size())
            ++old;
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
    std::set<std::string> used_;  // keys and defined terms
    std::map<int, int> claims_;   // claims so far per section
    MixCursor mix_;
};

}  // namespace

SyntheticDoc make_synthetic_doc(const SyntheticDocOptions& options) {
    if (options.style == SyntheticDocStyle::handbook) return make_handbook_doc(options);
    return Writer(options).write();
}

std::string synthetic_doc_sidecar_json(const SyntheticDoc& doc, std::uint64_t seed) {
    nlohmann::json refs = nlohmann::json::array();
    for (const ReferenceSpan& r : doc.references) {
        refs.push_back({{"kind", r.kind},
                        {"begin", r.begin},
                        {"end", r.end},
                        {"source_begin", r.source_begin},
                        {"source_end", r.source_end}});
    }
    return nlohmann::json{{"bytes", doc.text.size()}, {"seed", seed}, {"references", refs}}.dump(
               1) +
           "\n";
}

}  // namespace l2a
