// Byte-level BPE as HuggingFace tokenizers runs it for encode(text, add_special_tokens=False):
// added tokens are cut out of the raw text first (leftmost-longest), the rest is normalized
// (each piece on its own), split by the pre-tokenizer regexes (each split on its own, so
// lookarounds end at its edges), mapped to GPT-2's byte alphabet and merged by rank. Offsets are
// tracked per byte back to the original text, with HuggingFace's alignment rules, so that they
// agree with theirs exactly.
#include "l2a/engine/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "l2a/engine/error.h"
#include "unicode.h"

namespace l2a {

namespace {

using Json = nlohmann::json;
using unicode::AlignedText;
using unicode::ByteSpan;

// Ids index flat tables; this bounds what a (possibly hostile) file can make us allocate.
constexpr std::int64_t max_token_id = 1 << 24;
// Words longer than this are not worth caching (and would let a long run evict useful entries).
constexpr std::size_t max_cached_word = 256;
constexpr std::size_t max_cache_entries = 200000;

// GPT-2's pre-tokenization pattern, which ByteLevel(use_regex = true) applies.
constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

[[noreturn]] void fail_in(std::string_view origin, const std::string& message) {
    throw Error(origin.empty() ? message : std::string(origin) + ": " + message);
}

std::string shown(std::string_view text) {
    std::string out = "'";
    out.append(text.substr(0, 60));
    if (text.size() > 60) {
        out.append("...");
    }
    out.push_back('\'');
    return out;
}

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        return std::hash<std::string_view>{}(text);
    }
};
template <typename Value>
using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

// GPT-2's reversible map from the 256 byte values to printable characters.
struct ByteAlphabet {
    std::array<std::string, 256> byte_chars;  // UTF-8 of the character standing for each byte
    std::unordered_map<char32_t, unsigned char> char_bytes;
};

const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet alphabet = [] {
        ByteAlphabet built;
        char32_t next_unprintable = 256;
        for (unsigned byte = 0; byte < 256; ++byte) {
            const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
                                   (byte >= 0xAE && byte <= 0xFF);
            const char32_t cp = printable ? static_cast<char32_t>(byte) : next_unprintable++;
            unicode::append_utf8(built.byte_chars[byte], cp);
            built.char_bytes.emplace(cp, static_cast<unsigned char>(byte));
        }
        return built;
    }();
    return alphabet;
}

// ---- regular expressions --------------------------------------------------------------------

// HuggingFace compiles its patterns with Oniguruma (Ruby syntax). PCRE2 reads the same text
// with a few different meanings; rewrite those so that both match the same strings:
// \s, \w and \h have Oniguruma's Unicode definitions, ^ and $ are line anchors (compile option),
// (?m) is Ruby's dot-all, and \p{<category>} also covers the characters that PCRE2's older
// Unicode tables lack.
std::string onig_to_pcre2(std::string_view pattern) {
    const std::string space = R"(\t-\r\x{85}\p{Z})";
    const std::string word = R"(\p{L})" + unicode::pcre2_missing_category_chars("L") + R"(\p{M})" +
                             unicode::pcre2_missing_category_chars("M") + R"(\p{N})" +
                             unicode::pcre2_missing_category_chars("N") + R"(\p{Pc})";
    const std::string hex = "0-9a-fA-F";
    std::string out;
    bool in_class = false;
    bool class_start = false;
    std::size_t i = 0;
    while (i < pattern.size()) {
        const bool at_class_start = class_start;
        class_start = false;
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[i + 1];
            const std::string* set = e == 's' || e == 'S'   ? &space
                                     : e == 'w' || e == 'W' ? &word
                                     : e == 'h' || e == 'H' ? &hex
                                                            : nullptr;
            if (set != nullptr) {
                const bool negated = e == 'S' || e == 'W' || e == 'H';
                if (!in_class) {
                    out += (negated ? "[^" : "[") + *set + "]";
                    i += 2;
                    continue;
                }
                if (!negated) {
                    out += *set;
                    i += 2;
                    continue;
                }
                // A negated class escape inside a class has no rewrite; PCRE2's is close.
            }
            if ((e == 'p' || e == 'P') && i + 2 < pattern.size() && pattern[i + 2] == '{') {
                const std::size_t close = pattern.find('}', i + 3);
                if (close != std::string_view::npos) {
                    const std::string_view name = pattern.substr(i + 3, close - i - 3);
                    const std::string_view escape = pattern.substr(i, close + 1 - i);
                    const std::string extra = name.empty() || name.front() == '^'
                                                  ? std::string()
                                                  : unicode::pcre2_missing_category_chars(name);
                    if (extra.empty() || (in_class && e == 'P')) {
                        out += escape;
                    } else if (in_class) {
                        out += std::string(escape) + extra;
                    } else {
                        out += (e == 'p' ? "[" : "[^") + std::string("\\p{") + std::string(name) +
                               "}" + extra + "]";
                    }
                    i = close + 1;
                    continue;
                }
            }
            if (e == 'Q') {
                const std::size_t end = pattern.find("\\E", i + 2);
                const std::size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
                out += pattern.substr(i, stop - i);
                i = stop;
                continue;
            }
            out += pattern.substr(i, 2);
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
                const std::size_t end = pattern.find(":]", i + 2);
                const std::size_t stop = end == std::string_view::npos ? i + 1 : end + 2;
                out += pattern.substr(i, stop - i);
                i = stop;
                continue;
            }
            if (c == ']' && !at_class_start) {
                in_class = false;
            }
            out.push_back(c);
            ++i;
            continue;
        }
        if (c == '[') {
            in_class = true;
            class_start = true;
            out.push_back(c);
            ++i;
            if (i < pattern.size() && pattern[i] == '^') {
                out.push_back('^');
                ++i;
            }
            continue;
        }
        if (c == '(' && i + 1 < pattern.size() && pattern[i + 1] == '?') {
            // Inline flags: Ruby's m is dot-all, PCRE2's s.
            out += "(?";
            i += 2;
            while (i < pattern.size() && (pattern[i] == 'i' || pattern[i] == 'm' ||
                                          pattern[i] == 'x' || pattern[i] == '-')) {
                out.push_back(pattern[i] == 'm' ? 's' : pattern[i]);
                ++i;
            }
            continue;
        }
        out.push_back(c);
        ++i;
    }
    return out;
}

std::string escape_literal(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x80 && !std::isalnum(byte)) {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    return out;
}

class MatchData {
public:
    MatchData() : data_(pcre2_match_data_create(1, nullptr)) {
        if (data_ == nullptr) {
            throw Error("tokenizer: out of memory for regular expression matching");
        }
    }
    MatchData(const MatchData&) = delete;
    MatchData& operator=(const MatchData&) = delete;
    ~MatchData() { pcre2_match_data_free(data_); }
    pcre2_match_data* get() const { return data_; }

private:
    pcre2_match_data* data_;
};

class Pattern {
public:
    Pattern(std::string_view onig_pattern, std::string_view origin, std::string_view where)
        : source_(onig_pattern) {
        const std::string translated = onig_to_pcre2(onig_pattern);
        int error = 0;
        PCRE2_SIZE error_offset = 0;
        code_ =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &error_offset, nullptr);
        if (code_ == nullptr) {
            std::array<PCRE2_UCHAR, 256> message{};
            pcre2_get_error_message(error, message.data(), message.size());
            fail_in(origin, std::string(where) + ": cannot compile the regular expression " +
                                shown(onig_pattern) + ": " +
                                reinterpret_cast<const char*>(message.data()));
        }
        // Without JIT (not built, or no executable memory) the interpreter gives the same
        // results, only slower.
        pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
    }
    Pattern(const Pattern&) = delete;
    Pattern& operator=(const Pattern&) = delete;
    ~Pattern() { pcre2_code_free(code_); }

    // The matches in `subject` as Oniguruma's find_iter reports them: after an empty match the
    // search moves on by one character, and an empty match right where the previous match
    // ended is skipped.
    void find_all(std::string_view subject, const MatchData& data,
                  std::vector<std::pair<std::size_t, std::size_t>>& matches) const {
        matches.clear();
        std::size_t search_from = 0;
        std::size_t last_match_end = std::string_view::npos;
        while (search_from <= subject.size()) {
            std::size_t begin = 0;
            std::size_t end = 0;
            if (!match(subject, search_from, data, begin, end)) {
                break;
            }
            if (begin == end) {
                if (end < subject.size()) {
                    std::size_t next = end;
                    unicode::next_code_point(subject, next);
                    search_from = next;
                } else {
                    search_from = subject.size() + 1;
                }
                if (last_match_end == end) {
                    continue;
                }
            } else {
                search_from = end;
            }
            last_match_end = end;
            matches.emplace_back(begin, end);
        }
    }

private:
    bool match(std::string_view subject, std::size_t from, const MatchData& data,
               std::size_t& begin, std::size_t& end) const {
        const auto run = [&](uint32_t options) {
            return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                               from, PCRE2_NO_UTF_CHECK | options, data.get(), nullptr);
        };
        int rc = run(0);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
            rc = run(PCRE2_NO_JIT);  // the interpreter keeps its backtracking on the heap
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            return false;
        }
        if (rc < 0) {
            std::array<PCRE2_UCHAR, 256> message{};
            pcre2_get_error_message(rc, message.data(), message.size());
            throw Error("tokenizer: the pre-tokenizer pattern " + shown(source_) +
                        " failed on the text: " + reinterpret_cast<const char*>(message.data()));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
        begin = ovector[0];
        end = ovector[1];
        return true;
    }

    std::string source_;
    pcre2_code* code_ = nullptr;
};

// ---- pre-tokenizer ----------------------------------------------------------------------------

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct SplitStep {
    std::unique_ptr<Pattern> pattern;
    SplitBehavior behavior = SplitBehavior::isolated;
    bool invert = false;
};

using Range = std::pair<std::size_t, std::size_t>;

// HuggingFace's NormalizedString::split on text[range]: the pattern sees only that range; the
// pieces it keeps (non-empty) are appended to `out` in text coordinates.
void split_range(const SplitStep& step, std::string_view text, Range range, const MatchData& data,
                 std::vector<Range>& matches_scratch, std::vector<Range>& out) {
    const std::string_view subject = text.substr(range.first, range.second - range.first);
    step.pattern->find_all(subject, data, matches_scratch);

    // Cover the subject with (range, is_match) pieces.
    std::vector<std::pair<Range, bool>> pieces;
    std::size_t previous = 0;
    for (const Range& m : matches_scratch) {
        if (previous != m.first) {
            pieces.push_back({{previous, m.first}, false});
        }
        pieces.push_back({m, true});
        previous = m.second;
    }
    if (previous != subject.size()) {
        pieces.push_back({{previous, subject.size()}, false});
    }
    if (step.invert) {
        for (auto& piece : pieces) {
            piece.second = !piece.second;
        }
    }

    std::vector<std::pair<Range, bool>> kept;  // (range, remove)
    bool previous_match = false;
    switch (step.behavior) {
        case SplitBehavior::isolated:
            for (const auto& piece : pieces) {
                kept.push_back({piece.first, false});
            }
            break;
        case SplitBehavior::removed:
            kept = pieces;
            break;
        case SplitBehavior::contiguous:
            for (const auto& [piece, is_match] : pieces) {
                if (is_match == previous_match && !kept.empty()) {
                    kept.back().first.second = piece.second;
                } else {
                    kept.push_back({piece, false});
                }
                previous_match = is_match;
            }
            break;
        case SplitBehavior::merged_with_previous:
            for (const auto& [piece, is_match] : pieces) {
                if (is_match && !previous_match && !kept.empty()) {
                    kept.back().first.second = piece.second;
                } else {
                    kept.push_back({piece, false});
                }
                previous_match = is_match;
            }
            break;
        case SplitBehavior::merged_with_next:
            for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
                const auto& [piece, is_match] = *it;
                if (is_match && !previous_match && !kept.empty()) {
                    kept.back().first.first = piece.first;
                } else {
                    kept.push_back({piece, false});
                }
                previous_match = is_match;
            }
            std::reverse(kept.begin(), kept.end());
            break;
    }
    for (const auto& [piece, remove] : kept) {
        if (!remove && piece.second > piece.first) {
            out.emplace_back(range.first + piece.first, range.first + piece.second);
        }
    }
}

// ---- added tokens -------------------------------------------------------------------------

struct AddedToken {
    std::string content;
    std::int32_t id = 0;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
    bool special = false;
};

// Leftmost-longest search over many literal strings (the semantics of the Aho-Corasick
// automaton HuggingFace builds): the match that starts first, and the longest of those.
class TokenTrie {
public:
    void add(std::string_view pattern, std::size_t token) {
        if (pattern.empty()) {
            return;
        }
        std::uint32_t node = 0;
        for (const char c : pattern) {
            const auto byte = static_cast<unsigned char>(c);
            std::uint32_t next = child(node, byte);
            if (next == 0) {
                next = static_cast<std::uint32_t>(nodes_.size());
                nodes_.emplace_back();
                nodes_[node].children.emplace_back(byte, next);
            }
            node = next;
        }
        nodes_[node].token = static_cast<std::int64_t>(token);
        first_bytes_[static_cast<unsigned char>(pattern.front())] = true;
    }

    bool empty() const { return nodes_.size() == 1; }

    bool find(std::string_view text, std::size_t from, std::size_t& begin, std::size_t& end,
              std::size_t& token) const {
        for (std::size_t start = from; start < text.size(); ++start) {
            if (!first_bytes_[static_cast<unsigned char>(text[start])]) {
                continue;
            }
            std::uint32_t node = 0;
            std::int64_t found = -1;
            for (std::size_t pos = start; pos < text.size(); ++pos) {
                node = child(node, static_cast<unsigned char>(text[pos]));
                if (node == 0) {
                    break;
                }
                if (nodes_[node].token >= 0) {
                    found = nodes_[node].token;
                    end = pos + 1;
                }
            }
            if (found >= 0) {
                begin = start;
                token = static_cast<std::size_t>(found);
                return true;
            }
        }
        return false;
    }

private:
    struct Node {
        std::vector<std::pair<unsigned char, std::uint32_t>> children;
        std::int64_t token = -1;
    };

    std::uint32_t child(std::uint32_t node, unsigned char byte) const {
        for (const auto& [b, next] : nodes_[node].children) {
            if (b == byte) {
                return next;
            }
        }
        return 0;
    }

    std::vector<Node> nodes_{1};
    std::array<bool, 256> first_bytes_{};
};

struct AddedSplit {
    std::size_t begin;
    std::size_t end;
    std::int64_t token;  // index into the added tokens, -1 for ordinary text
};

bool ends_with_word(std::string_view text) {
    if (text.empty()) {
        return false;
    }
    std::size_t end = text.size();
    return unicode::is_word_char(unicode::previous_code_point(text, end));
}

bool starts_with_word(std::string_view text) {
    if (text.empty()) {
        return false;
    }
    std::size_t pos = 0;
    return unicode::is_word_char(unicode::next_code_point(text, pos));
}

// Start of the run of white space that ends `text`.
std::size_t trailing_space_start(std::string_view text) {
    std::size_t end = text.size();
    while (end > 0) {
        std::size_t before = end;
        if (!unicode::is_white_space(unicode::previous_code_point(text, before))) {
            break;
        }
        end = before;
    }
    return end;
}

std::size_t leading_space_length(std::string_view text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t next = pos;
        if (!unicode::is_white_space(unicode::next_code_point(text, next))) {
            break;
        }
        pos = next;
    }
    return pos;
}

// HuggingFace's AddedVocabulary::find_matches, including its flag rules: a single_word token
// only counts between non-word characters, lstrip/rstrip take the white space beside it.
void split_added_tokens(const std::vector<AddedToken>& tokens, const TokenTrie& trie,
                        std::string_view sentence, std::vector<AddedSplit>& out) {
    out.clear();
    std::size_t start_offset = 0;
    std::size_t search_from = 0;
    std::size_t match_begin = 0;
    std::size_t match_end = 0;
    std::size_t index = 0;
    while (!trie.empty() && trie.find(sentence, search_from, match_begin, match_end, index)) {
        search_from = match_end;
        const AddedToken& token = tokens[index];
        std::size_t start = match_begin;
        std::size_t stop = match_end;
        if (token.single_word) {
            const bool space_before = start == 0 || !ends_with_word(sentence.substr(0, start));
            const bool space_after =
                stop == sentence.size() || !starts_with_word(sentence.substr(stop));
            if (!space_before || !space_after) {
                continue;
            }
        }
        if (token.lstrip) {
            start = std::max(trailing_space_start(sentence.substr(0, start)), start_offset);
        }
        if (token.rstrip) {
            stop += leading_space_length(sentence.substr(stop));
        }
        if (start_offset < start) {
            out.push_back({start_offset, start, -1});
        }
        out.push_back({start, stop, static_cast<std::int64_t>(index)});
        start_offset = stop;
    }
    if (start_offset < sentence.size()) {
        out.push_back({start_offset, sentence.size(), -1});
    }
}

// ---- BPE model ----------------------------------------------------------------------------

struct BpeModel {
    StringMap<std::int32_t> vocab;
    // (left id << 32 | right id) -> (rank, merged id)
    std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::int32_t>> merges;
    std::array<std::int32_t, 256> byte_ids{};  // token of each single byte, -1 if none
    std::int32_t unk_id = -1;
    bool fuse_unk = false;
    bool ignore_merges = false;

    const std::pair<std::uint32_t, std::int32_t>* find_merge(std::int32_t left,
                                                             std::int32_t right) const {
        const std::uint64_t key =
            (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
            static_cast<std::uint32_t>(right);
        const auto found = merges.find(key);
        return found == merges.end() ? nullptr : &found->second;
    }
};

// (token id, length in bytes of the word)
using WordTokens = std::vector<std::pair<std::int32_t, std::uint32_t>>;

// Merges the word's bytes lowest rank first, leftmost first among equal ranks, as
// HuggingFace's Word::merge_all does with its priority queue.
void merge_word(const BpeModel& model, std::string_view word, WordTokens& out) {
    struct Symbol {
        std::int32_t id;
        std::int32_t prev;
        std::int32_t next;
        std::uint32_t length;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    const auto add_symbol = [&](std::int32_t id, std::uint32_t length) {
        const auto index = static_cast<std::int32_t>(symbols.size());
        if (!symbols.empty()) {
            symbols.back().next = index;
        }
        symbols.push_back({id, index - 1, -1, length});
    };
    std::int32_t pending_unk_length = 0;
    for (const char c : word) {
        const std::int32_t id = model.byte_ids[static_cast<unsigned char>(c)];
        if (id >= 0) {
            if (pending_unk_length > 0) {
                add_symbol(model.unk_id, static_cast<std::uint32_t>(pending_unk_length));
                pending_unk_length = 0;
            }
            add_symbol(id, 1);
        } else if (model.unk_id >= 0) {
            if (pending_unk_length > 0 && !model.fuse_unk) {
                add_symbol(model.unk_id, static_cast<std::uint32_t>(pending_unk_length));
                pending_unk_length = 0;
            }
            ++pending_unk_length;
        }
        // Without an unknown token a byte that has no token is dropped, as HuggingFace does.
    }
    if (pending_unk_length > 0) {
        add_symbol(model.unk_id, static_cast<std::uint32_t>(pending_unk_length));
    }

    struct Candidate {
        std::uint32_t rank;
        std::int32_t position;
        std::int32_t merged;
        bool operator>(const Candidate& other) const {
            return rank != other.rank ? rank > other.rank : position > other.position;
        }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
        if (const auto* merge = model.find_merge(symbols[i].id, symbols[i + 1].id)) {
            queue.push({merge->first, static_cast<std::int32_t>(i), merge->second});
        }
    }
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<std::size_t>(top.position)];
        if (left.length == 0 || left.next < 0) {
            continue;
        }
        Symbol& right = symbols[static_cast<std::size_t>(left.next)];
        const auto* merge = model.find_merge(left.id, right.id);
        if (merge == nullptr || merge->second != top.merged) {
            continue;  // stale: one side has changed since this candidate was queued
        }
        left.id = top.merged;
        left.length += right.length;
        left.next = right.next;
        right.length = 0;
        if (left.next >= 0) {
            symbols[static_cast<std::size_t>(left.next)].prev = top.position;
        }
        if (left.prev >= 0) {
            const Symbol& before = symbols[static_cast<std::size_t>(left.prev)];
            if (const auto* m = model.find_merge(before.id, left.id)) {
                queue.push({m->first, left.prev, m->second});
            }
        }
        if (left.next >= 0) {
            const Symbol& after = symbols[static_cast<std::size_t>(left.next)];
            if (const auto* m = model.find_merge(left.id, after.id)) {
                queue.push({m->first, top.position, m->second});
            }
        }
    }
    out.clear();
    for (const Symbol& symbol : symbols) {
        if (symbol.length > 0) {
            out.emplace_back(symbol.id, symbol.length);
        }
    }
}

enum class TokenKind : std::uint8_t { none, model, added, special };

// ---- the tokenizer ------------------------------------------------------------------------

struct TokenizerData {
    std::string origin;
    BpeModel model;
    bool nfc = false;
    std::vector<SplitStep> pre_tokenizer;
    std::vector<AddedToken> added;
    TokenTrie raw_trie;         // added tokens matched in the text as given
    TokenTrie normalized_trie;  // added tokens matched after normalization
    StringMap<std::int32_t> added_ids;
    bool trim_offsets = false;
    bool trim_add_prefix_space = false;
    bool byte_level_decoder = false;
    std::vector<std::string> id_tokens;  // token string per id
    std::vector<std::string> id_bytes;   // what the decoder turns each id into
    std::vector<TokenKind> id_kinds;
};

}  // namespace

struct Tokenizer::Impl : TokenizerData {};

namespace {

class JsonReader {
public:
    explicit JsonReader(std::string_view origin) : origin_(origin) {}

    [[noreturn]] void fail(const std::string& where, const std::string& message) const {
        fail_in(origin_, where + ": " + message);
    }

    const Json& object(const Json& parent, const char* key, const std::string& where) const {
        const auto found = parent.find(key);
        if (found == parent.end()) {
            fail(where, std::string("missing \"") + key + "\"");
        }
        if (!found->is_object()) {
            fail(where + "." + key, "expected an object");
        }
        return *found;
    }

    bool boolean(const Json& parent, const char* key, bool fallback,
                 const std::string& where) const {
        const auto found = parent.find(key);
        if (found == parent.end() || found->is_null()) {
            return fallback;
        }
        if (!found->is_boolean()) {
            fail(where + "." + key, "expected true or false");
        }
        return found->get<bool>();
    }

    // A string field; `fallback` when absent or null.
    std::string string(const Json& parent, const char* key, const std::string& fallback,
                       const std::string& where) const {
        const auto found = parent.find(key);
        if (found == parent.end() || found->is_null()) {
            return fallback;
        }
        if (!found->is_string()) {
            fail(where + "." + key, "expected a string");
        }
        return found->get<std::string>();
    }

    std::string type(const Json& value, const std::string& where) const {
        if (!value.is_object()) {
            fail(where, "expected an object");
        }
        const std::string type = string(value, "type", "", where);
        if (type.empty()) {
            fail(where, "missing \"type\"");
        }
        return type;
    }

    std::int32_t id(const Json& value, const std::string& where) const {
        if (!value.is_number_integer()) {
            fail(where, "expected an integer token id");
        }
        const auto id = value.get<std::int64_t>();
        if (id < 0 || id >= max_token_id) {
            fail(where, "token id " + std::to_string(id) + " is out of range");
        }
        return static_cast<std::int32_t>(id);
    }

    const std::string& origin() const { return origin_; }

private:
    std::string origin_;
};

void read_model(const JsonReader& reader, const Json& root, TokenizerData& impl) {
    const Json& model = reader.object(root, "model", "tokenizer");
    const std::string where = "model";
    const std::string type = reader.string(model, "type", "BPE", where);
    if (type != "BPE") {
        reader.fail(where, "unsupported model type " + shown(type) + " (only BPE is supported)");
    }
    const auto dropout = model.find("dropout");
    if (dropout != model.end() && !dropout->is_null() &&
        !(dropout->is_number() && dropout->get<double>() == 0.0)) {
        reader.fail(where + ".dropout", "BPE dropout is not supported (encoding would be random)");
    }
    if (!reader.string(model, "continuing_subword_prefix", "", where).empty() ||
        !reader.string(model, "end_of_word_suffix", "", where).empty()) {
        reader.fail(where, "continuing_subword_prefix and end_of_word_suffix are not supported");
    }
    if (reader.boolean(model, "byte_fallback", false, where)) {
        reader.fail(where + ".byte_fallback",
                    "byte_fallback is not supported (byte-level BPE never needs it)");
    }
    BpeModel& bpe = impl.model;
    bpe.fuse_unk = reader.boolean(model, "fuse_unk", false, where);
    bpe.ignore_merges = reader.boolean(model, "ignore_merges", false, where);

    const auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_object()) {
        reader.fail(where + ".vocab", "missing or not an object of token -> id");
    }
    bpe.vocab.reserve(vocab->size());
    std::vector<const std::string*> by_id;
    for (const auto& [token, value] : vocab->items()) {
        const std::int32_t id = reader.id(value, where + ".vocab[" + shown(token) + "]");
        if (static_cast<std::size_t>(id) >= by_id.size()) {
            by_id.resize(static_cast<std::size_t>(id) + 1, nullptr);
        }
        if (by_id[static_cast<std::size_t>(id)] != nullptr) {
            reader.fail(where + ".vocab", "id " + std::to_string(id) + " is used by both " +
                                              shown(*by_id[static_cast<std::size_t>(id)]) +
                                              " and " + shown(token));
        }
        const auto inserted = bpe.vocab.emplace(token, id).first;
        by_id[static_cast<std::size_t>(id)] = &inserted->first;
    }

    const std::string unk = reader.string(model, "unk_token", "", where);
    if (!unk.empty()) {
        const auto found = bpe.vocab.find(unk);
        if (found == bpe.vocab.end()) {
            reader.fail(where + ".unk_token", shown(unk) + " is not in the vocabulary");
        }
        bpe.unk_id = found->second;
    }

    const auto merges = model.find("merges");
    if (merges == model.end() || !merges->is_array()) {
        reader.fail(where + ".merges", "missing or not an array");
    }
    bpe.merges.reserve(merges->size());
    std::uint32_t rank = 0;
    for (std::size_t i = 0; i < merges->size(); ++i) {
        const Json& entry = (*merges)[i];
        const std::string at = where + ".merges[" + std::to_string(i) + "]";
        std::string left;
        std::string right;
        if (entry.is_string()) {
            const std::string line = entry.get<std::string>();
            if (line.rfind("#version", 0) == 0) {
                continue;  // a merges.txt header carried over, which HuggingFace skips too
            }
            const std::size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
                reader.fail(at, shown(line) + " is not two tokens separated by one space");
            }
            left = line.substr(0, space);
            right = line.substr(space + 1);
        } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
                   entry[1].is_string()) {
            left = entry[0].get<std::string>();
            right = entry[1].get<std::string>();
        } else {
            reader.fail(at, "expected \"a b\" or [\"a\", \"b\"]");
        }
        const auto find = [&](const std::string& token) {
            const auto found = bpe.vocab.find(token);
            if (found == bpe.vocab.end()) {
                reader.fail(at, "merge " + shown(left + " " + right) + " refers to " +
                                    shown(token) + ", which is not in the vocabulary");
            }
            return found->second;
        };
        const std::int32_t left_id = find(left);
        const std::int32_t right_id = find(right);
        const std::int32_t merged_id = find(left + right);
        const std::uint64_t key =
            (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left_id)) << 32) |
            static_cast<std::uint32_t>(right_id);
        // A repeated pair takes its last rank, as in HuggingFace's map.
        bpe.merges[key] = {rank++, merged_id};
    }

    const ByteAlphabet& alphabet = byte_alphabet();
    for (unsigned byte = 0; byte < 256; ++byte) {
        const auto found = bpe.vocab.find(alphabet.byte_chars[byte]);
        bpe.byte_ids[byte] = found == bpe.vocab.end() ? -1 : found->second;
    }
}

void read_normalizer(const JsonReader& reader, const Json& normalizer, const std::string& where,
                     TokenizerData& impl) {
    if (normalizer.is_null()) {
        return;
    }
    const std::string type = reader.type(normalizer, where);
    if (type == "NFC") {
        impl.nfc = true;  // NFC is idempotent: once is as good as several times
    } else if (type == "Sequence") {
        const auto list = normalizer.find("normalizers");
        if (list == normalizer.end() || !list->is_array()) {
            reader.fail(where + ".normalizers", "missing or not an array");
        }
        for (std::size_t i = 0; i < list->size(); ++i) {
            read_normalizer(reader, (*list)[i], where + ".normalizers[" + std::to_string(i) + "]",
                            impl);
        }
    } else {
        reader.fail(where, "unsupported normalizer type " + shown(type) +
                               " (supported: NFC, and Sequence of it)");
    }
}

void read_pre_tokenizer(const JsonReader& reader, const Json& pre, const std::string& where,
                        TokenizerData& impl, bool& byte_level_seen) {
    const std::string type = reader.type(pre, where);
    if (type == "Sequence") {
        const auto list = pre.find("pretokenizers");
        if (list == pre.end() || !list->is_array()) {
            reader.fail(where + ".pretokenizers", "missing or not an array");
        }
        for (std::size_t i = 0; i < list->size(); ++i) {
            read_pre_tokenizer(reader, (*list)[i],
                               where + ".pretokenizers[" + std::to_string(i) + "]", impl,
                               byte_level_seen);
        }
        return;
    }
    if (byte_level_seen) {
        reader.fail(where, "a pre-tokenizer after ByteLevel is not supported");
    }
    if (type == "ByteLevel") {
        if (reader.boolean(pre, "add_prefix_space", true, where)) {
            reader.fail(where + ".add_prefix_space", "true is not supported");
        }
        if (reader.boolean(pre, "use_regex", true, where)) {
            SplitStep step;
            step.pattern = std::make_unique<Pattern>(gpt2_pattern, reader.origin(), where);
            impl.pre_tokenizer.push_back(std::move(step));
        }
        byte_level_seen = true;
        return;
    }
    if (type != "Split") {
        reader.fail(where, "unsupported pre_tokenizer type " + shown(type) +
                               " (supported: Split, ByteLevel, Sequence)");
    }
    const Json& pattern = reader.object(pre, "pattern", where);
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
        regex = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
        regex = escape_literal(pattern["String"].get<std::string>());
    } else {
        reader.fail(where + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    SplitStep step;
    step.pattern = std::make_unique<Pattern>(regex, reader.origin(), where + ".pattern");
    step.invert = reader.boolean(pre, "invert", false, where);
    const std::string behavior = reader.string(pre, "behavior", "", where);
    static const std::array<std::pair<std::string_view, SplitBehavior>, 5> behaviors{{
        {"Removed", SplitBehavior::removed},
        {"Isolated", SplitBehavior::isolated},
        {"MergedWithPrevious", SplitBehavior::merged_with_previous},
        {"MergedWithNext", SplitBehavior::merged_with_next},
        {"Contiguous", SplitBehavior::contiguous},
    }};
    const auto found = std::find_if(behaviors.begin(), behaviors.end(),
                                    [&](const auto& entry) { return entry.first == behavior; });
    if (found == behaviors.end()) {
        reader.fail(where + ".behavior", "unknown split behavior " + shown(behavior));
    }
    step.behavior = found->second;
    impl.pre_tokenizer.push_back(std::move(step));
}

void read_post_processor(const JsonReader& reader, const Json& post, const std::string& where,
                         TokenizerData& impl) {
    if (post.is_null()) {
        return;
    }
    const std::string type = reader.type(post, where);
    if (type == "ByteLevel") {
        impl.trim_offsets = reader.boolean(post, "trim_offsets", true, where);
        impl.trim_add_prefix_space = reader.boolean(post, "add_prefix_space", true, where);
    } else if (type == "TemplateProcessing") {
        // It only adds special tokens, which encode() never asks for.
    } else if (type == "Sequence") {
        const auto list = post.find("processors");
        if (list == post.end() || !list->is_array()) {
            reader.fail(where + ".processors", "missing or not an array");
        }
        for (std::size_t i = 0; i < list->size(); ++i) {
            read_post_processor(reader, (*list)[i],
                                where + ".processors[" + std::to_string(i) + "]", impl);
        }
    } else {
        reader.fail(where, "unsupported post_processor type " + shown(type) +
                               " (supported: ByteLevel, TemplateProcessing, Sequence)");
    }
}

void read_decoder(const JsonReader& reader, const Json& decoder, const std::string& where,
                  TokenizerData& impl) {
    if (decoder.is_null()) {
        return;  // HuggingFace then joins the token strings with spaces
    }
    const std::string type = reader.type(decoder, where);
    if (type == "ByteLevel") {
        impl.byte_level_decoder = true;
    } else if (type == "Sequence") {
        const auto list = decoder.find("decoders");
        if (list == decoder.end() || !list->is_array()) {
            reader.fail(where + ".decoders", "missing or not an array");
        }
        for (std::size_t i = 0; i < list->size(); ++i) {
            read_decoder(reader, (*list)[i], where + ".decoders[" + std::to_string(i) + "]", impl);
        }
    } else {
        reader.fail(where, "unsupported decoder type " + shown(type) +
                               " (supported: ByteLevel, Sequence of it)");
    }
}

void read_added_tokens(const JsonReader& reader, const Json& root, TokenizerData& impl) {
    const auto list = root.find("added_tokens");
    if (list == root.end() || list->is_null()) {
        return;
    }
    if (!list->is_array()) {
        reader.fail("added_tokens", "expected an array");
    }
    auto next_id = static_cast<std::int32_t>(impl.model.vocab.size());
    for (std::size_t i = 0; i < list->size(); ++i) {
        const Json& entry = (*list)[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        if (!entry.is_object()) {
            reader.fail(where, "expected an object");
        }
        AddedToken token;
        token.content = reader.string(entry, "content", "", where);
        if (token.content.empty()) {
            reader.fail(where, "missing or empty \"content\"");
        }
        if (unicode::find_invalid_utf8(token.content) != std::string_view::npos) {
            reader.fail(where, "content is not valid UTF-8");
        }
        const auto id = entry.find("id");
        if (id == entry.end()) {
            reader.fail(where, "missing \"id\"");
        }
        reader.id(*id, where + ".id");
        token.special = reader.boolean(entry, "special", false, where);
        token.single_word = reader.boolean(entry, "single_word", false, where);
        token.lstrip = reader.boolean(entry, "lstrip", false, where);
        token.rstrip = reader.boolean(entry, "rstrip", false, where);
        token.normalized = reader.boolean(entry, "normalized", !token.special, where);
        // HuggingFace does not take the file's ids: a token that is already known keeps its id,
        // a new one gets the next id after the model's vocabulary (counted, as HF counts it).
        // For consistent files, which all real ones are, this is the file's id.
        const auto known = impl.added_ids.find(token.content);
        if (known != impl.added_ids.end()) {
            token.id = known->second;
            const auto same = std::find_if(impl.added.begin(), impl.added.end(),
                                           [&](const AddedToken& t) { return t.id == token.id; });
            *same = std::move(token);
            continue;
        }
        const auto in_vocab = impl.model.vocab.find(token.content);
        token.id = in_vocab != impl.model.vocab.end() ? in_vocab->second : next_id++;
        impl.added_ids.emplace(token.content, token.id);
        impl.added.push_back(std::move(token));
    }
    for (std::size_t i = 0; i < impl.added.size(); ++i) {
        const AddedToken& token = impl.added[i];
        if (token.normalized) {
            impl.normalized_trie.add(impl.nfc ? unicode::nfc(token.content) : token.content, i);
        } else {
            impl.raw_trie.add(token.content, i);
        }
    }
}

// Fills the per-id tables that decoding and lookups use.
void index_ids(const JsonReader& reader, TokenizerData& impl) {
    std::size_t size = 0;
    for (const auto& [token, id] : impl.model.vocab) {
        size = std::max(size, static_cast<std::size_t>(id) + 1);
    }
    for (const AddedToken& token : impl.added) {
        size = std::max(size, static_cast<std::size_t>(token.id) + 1);
    }
    impl.id_tokens.assign(size, std::string());
    impl.id_kinds.assign(size, TokenKind::none);
    for (const auto& [token, id] : impl.model.vocab) {
        impl.id_tokens[static_cast<std::size_t>(id)] = token;
        impl.id_kinds[static_cast<std::size_t>(id)] = TokenKind::model;
    }
    for (const AddedToken& token : impl.added) {
        const auto id = static_cast<std::size_t>(token.id);
        if (impl.id_kinds[id] == TokenKind::model && impl.id_tokens[id] != token.content) {
            reader.fail("added_tokens", "token " + shown(token.content) + " has id " +
                                            std::to_string(id) + ", which the model gives to " +
                                            shown(impl.id_tokens[id]));
        }
        impl.id_tokens[id] = token.content;
        impl.id_kinds[id] = token.special ? TokenKind::special : TokenKind::added;
    }
    const ByteAlphabet& alphabet = byte_alphabet();
    impl.id_bytes.assign(size, std::string());
    for (std::size_t id = 0; id < size; ++id) {
        const std::string& token = impl.id_tokens[id];
        if (!impl.byte_level_decoder) {
            impl.id_bytes[id] = token;
            continue;
        }
        // A token with any character outside the byte alphabet is taken as it is, as
        // HuggingFace's ByteLevel decoder does.
        std::string bytes;
        std::size_t pos = 0;
        bool mapped = true;
        while (pos < token.size()) {
            const auto found = alphabet.char_bytes.find(unicode::next_code_point(token, pos));
            if (found == alphabet.char_bytes.end()) {
                mapped = false;
                break;
            }
            bytes.push_back(static_cast<char>(found->second));
        }
        impl.id_bytes[id] = mapped ? bytes : token;
    }
}

// One encode() call: the scratch space it needs, so that concurrent calls share nothing.
class EncodeRun {
public:
    EncodeRun(const TokenizerData& impl, std::string_view text) : impl_(impl), text_(text) {}

    Encoding run() {
        std::vector<AddedSplit> pieces;
        split_added_tokens(impl_.added, impl_.raw_trie, text_, pieces);
        for (const AddedSplit& piece : pieces) {
            const std::string_view slice = text_.substr(piece.begin, piece.end - piece.begin);
            if (piece.token >= 0) {
                push(impl_.added[static_cast<std::size_t>(piece.token)].id,
                     {static_cast<std::uint32_t>(piece.begin),
                      static_cast<std::uint32_t>(piece.end)},
                     slice);
            } else if (!slice.empty()) {
                encode_piece(slice, piece.begin);
            }
        }
        return std::move(encoding_);
    }

private:
    ByteSpan origin_of(std::size_t begin, std::size_t end) const {
        return {normalized_.origin[begin].first, normalized_.origin[end - 1].second};
    }

    void encode_piece(std::string_view slice, std::size_t base) {
        normalized_.clear();
        if (impl_.nfc) {
            unicode::append_nfc(slice, static_cast<std::uint32_t>(base), normalized_);
        } else {
            unicode::append_identity(slice, static_cast<std::uint32_t>(base), normalized_);
        }
        std::vector<AddedSplit> pieces;
        split_added_tokens(impl_.added, impl_.normalized_trie, normalized_.text, pieces);
        for (const AddedSplit& piece : pieces) {
            if (piece.end <= piece.begin) {
                continue;
            }
            if (piece.token >= 0) {
                push(impl_.added[static_cast<std::size_t>(piece.token)].id,
                     origin_of(piece.begin, piece.end),
                     std::string_view(normalized_.text)
                         .substr(piece.begin, piece.end - piece.begin));
            } else {
                pre_tokenize({piece.begin, piece.end});
            }
        }
    }

    void pre_tokenize(Range range) {
        ranges_.assign(1, range);
        for (const SplitStep& step : impl_.pre_tokenizer) {
            next_ranges_.clear();
            for (const Range& r : ranges_) {
                split_range(step, normalized_.text, r, match_data_, matches_, next_ranges_);
            }
            ranges_.swap(next_ranges_);
        }
        for (const Range& r : ranges_) {
            encode_word(r);
        }
    }

    void encode_word(Range range) {
        const std::string_view word =
            std::string_view(normalized_.text).substr(range.first, range.second - range.first);
        const BpeModel& model = impl_.model;
        const WordTokens* tokens = nullptr;
        if (model.ignore_merges) {
            std::string chars;
            for (const char c : word) {
                chars += byte_alphabet().byte_chars[static_cast<unsigned char>(c)];
            }
            const auto found = model.vocab.find(chars);
            if (found != model.vocab.end()) {
                single_.assign(1, {found->second, static_cast<std::uint32_t>(word.size())});
                tokens = &single_;
            }
        }
        if (tokens == nullptr) {
            const auto cached = cache_.find(word);
            if (cached != cache_.end()) {
                tokens = &cached->second;
            } else {
                merge_word(model, word, merged_);
                tokens = &merged_;
                if (word.size() <= max_cached_word && cache_.size() < max_cache_entries) {
                    tokens = &cache_.emplace(std::string(word), merged_).first->second;
                }
            }
        }
        std::size_t pos = range.first;
        for (const auto& [id, length] : *tokens) {
            push(id, origin_of(pos, pos + length), impl_.id_tokens[static_cast<std::size_t>(id)]);
            pos += length;
        }
    }

    // `value` is the token's string, which the ByteLevel post-processor trims offsets by.
    void push(std::int32_t id, ByteSpan span, std::string_view value) {
        if (impl_.trim_offsets) {
            trim(span, value);
        }
        encoding_.ids.push_back(id);
        encoding_.offsets.push_back(span);
    }

    // HuggingFace's ByteLevel trim_offsets: it moves byte offsets by a count of characters
    // (spaces, in practice).
    void trim(ByteSpan& span, std::string_view value) const {
        const auto is_space = [](char32_t cp) {
            return cp == 0x120 || unicode::is_white_space(cp);
        };
        std::uint32_t leading = 0;
        for (std::size_t pos = 0; pos < value.size();) {
            if (!is_space(unicode::next_code_point(value, pos))) {
                break;
            }
            ++leading;
        }
        std::uint32_t trailing = 0;
        for (std::size_t end = value.size(); end > 0;) {
            if (!is_space(unicode::previous_code_point(value, end))) {
                break;
            }
            ++trailing;
        }
        if (leading > 0) {
            const bool is_first = encoding_.ids.empty() || span.first == 0;
            if (!(is_first && impl_.trim_add_prefix_space && leading == 1)) {
                span.first = std::min(span.first + leading, span.second);
            }
        }
        if (trailing > 0 && span.second >= trailing) {
            span.second = std::max(span.second - trailing, span.first);
        }
    }

    const TokenizerData& impl_;
    std::string_view text_;
    Encoding encoding_;
    AlignedText normalized_;
    MatchData match_data_;
    std::vector<Range> ranges_;
    std::vector<Range> next_ranges_;
    std::vector<Range> matches_;
    WordTokens merged_;
    WordTokens single_;
    StringMap<WordTokens> cache_;
};

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
    const std::string origin = tokenizer_json.string();
    std::error_code error;
    if (!std::filesystem::is_regular_file(tokenizer_json, error)) {
        fail_in(origin, std::filesystem::exists(tokenizer_json, error)
                            ? "not a regular file"
                            : "tokenizer file not found");
    }
    std::ifstream in(tokenizer_json, std::ios::binary);
    if (!in) {
        fail_in(origin, std::string("cannot open the tokenizer file: ") + std::strerror(errno));
    }
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad()) {
        fail_in(origin, "cannot read the tokenizer file");
    }
    return from_json(content.str(), origin);
}

Tokenizer Tokenizer::from_json(std::string_view json_text, std::string_view origin) {
    const JsonReader reader(origin);
    Json root;
    try {
        root = Json::parse(json_text.begin(), json_text.end());
    } catch (const Json::exception& error) {
        fail_in(origin, describe_json_error(error.what()));
    }
    if (!root.is_object()) {
        fail_in(origin, "malformed tokenizer: expected a JSON object at the top");
    }
    auto impl = std::make_unique<Impl>();
    impl->origin = std::string(origin);
    try {
        read_model(reader, root, *impl);
        read_normalizer(reader, root.value("normalizer", Json()), "normalizer", *impl);
        const auto pre = root.find("pre_tokenizer");
        if (pre == root.end() || pre->is_null()) {
            reader.fail("pre_tokenizer", "missing; byte-level BPE needs a ByteLevel pre-tokenizer");
        }
        bool byte_level = false;
        read_pre_tokenizer(reader, *pre, "pre_tokenizer", *impl, byte_level);
        if (!byte_level) {
            reader.fail("pre_tokenizer",
                        "has no ByteLevel step; only byte-level BPE tokenizers are supported");
        }
        read_post_processor(reader, root.value("post_processor", Json()), "post_processor", *impl);
        read_decoder(reader, root.value("decoder", Json()), "decoder", *impl);
        read_added_tokens(reader, root, *impl);
        index_ids(reader, *impl);
    } catch (const Json::exception& error) {
        // Type mismatches that the checks above did not anticipate.
        fail_in(origin, "malformed tokenizer: " + describe_json_error(error.what()));
    }
    return Tokenizer(std::move(impl));
}

Encoding Tokenizer::encode(std::string_view text) const {
    if (text.size() >= std::numeric_limits<std::uint32_t>::max()) {
        throw Error("tokenizer: text of " + std::to_string(text.size()) +
                    " bytes is too long (offsets are 32-bit)");
    }
    const std::size_t invalid = unicode::find_invalid_utf8(text);
    if (invalid != std::string_view::npos) {
        throw Error("tokenizer: the text is not valid UTF-8 (byte " + std::to_string(invalid) +
                    "); sanitize it first");
    }
    if (text.empty()) {
        return {};
    }
    EncodeRun run(*impl_, text);
    return run.run();
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids, bool skip_special) const {
    std::string out;
    bool first = true;
    for (const std::int32_t id : ids) {
        // Ids without a token are skipped, as HuggingFace does.
        if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_kinds.size()) {
            continue;
        }
        const TokenKind kind = impl_->id_kinds[static_cast<std::size_t>(id)];
        if (kind == TokenKind::none || (skip_special && kind == TokenKind::special)) {
            continue;
        }
        if (!impl_->byte_level_decoder && !first) {
            out.push_back(' ');
        }
        out += impl_->id_bytes[static_cast<std::size_t>(id)];
        first = false;
    }
    return out;
}

std::string Tokenizer::token_text(std::int32_t id) const {
    return unicode::to_valid_utf8(decode({id}));
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
    if (const auto added = impl_->added_ids.find(token); added != impl_->added_ids.end()) {
        return added->second;
    }
    if (const auto found = impl_->model.vocab.find(token); found != impl_->model.vocab.end()) {
        return found->second;
    }
    return std::nullopt;
}

std::int64_t Tokenizer::vocab_size() const {
    return static_cast<std::int64_t>(impl_->id_kinds.size());
}

}  // namespace l2a
