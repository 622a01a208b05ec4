// Handbook-style long documents: plain English prose of a technical handbook for an imaginary
// workplace (a machine shop, an observatory, a rail yard, a library or a kitchen, one per seed).
// Like the synthetic style, the writer keeps a queue of facts stated so far and, once a fact is
// old enough, writes a sentence whose ending can only be completed by remembering it:
// - "key": a named part ("the east pump") with a part number, a rating, a room or a keeper,
//   stated once and recalled later ("Replace the east pump (part P-4471) if it runs hot.");
// - "term": a defined term ("A *limit lever* is the brass lever that ...") whose definition is
//   restated later ("Remember that the limit lever is the brass lever that ...");
// - "section": a numbered section ("### 4.2 Cleaning the filters") cited later by its number
//   ("as described in Section 4.2, Cleaning the filters") or by its title;
// - "repeat": a warning or procedure repeated verbatim far later (the reference is what
//   follows its first words).
// Values are drawn at random (part numbers, ratings, rooms, people, definitions assembled from
// parts), so nothing nearby predicts them; every word comes from the fixed vocabulary below.
#include "handbook_docs.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "doc_random.h"

namespace l2a {
namespace {

// ---- the vocabulary -----------------------------------------------------------------------

struct Item {
    const char* noun;  // "coolant pump"
    const char* unit;  // "litres a minute"
    int lo, hi, step;  // its rating: lo, lo + step, ..., hi
};

struct Setting {
    const char* name;                     // "machine shop"
    const char* title;                    // "Machine Shop"
    std::vector<const char*> nouns;       // things in the place, for filler, warnings, definitions
    std::vector<Item> items;              // named parts with ratings
    std::vector<const char*> activities;  // "a tool change": "... during a tool change"
};

const std::vector<Setting>& settings() {
    static const std::vector<Setting> all = {
        {"machine shop",
         "Machine Shop",
         {"work bench", "tool board", "coolant tank", "chip tray", "main switch", "parts rack",
          "floor drain", "extraction fan", "oil store", "bench vice"},
         {{"lathe", "turns a minute", 200, 2400, 50},
          {"drill press", "turns a minute", 300, 3000, 50},
          {"band saw", "metres a minute", 20, 90, 1},
          {"grinder", "watts", 250, 1500, 50},
          {"air compressor", "bar", 6, 12, 1},
          {"coolant pump", "litres a minute", 10, 60, 1},
          {"milling machine", "turns a minute", 100, 2000, 50},
          {"dust extractor", "watts", 500, 2500, 100}},
         {"a tool change", "cleaning", "a long cut", "the weekly service", "setting up a job"}},
        {"observatory",
         "Observatory",
         {"dome shutter", "eyepiece case", "chart table", "control desk", "mirror cover",
          "finder scope", "dew heater", "dark room", "lens drawer", "weather station"},
         {{"dome motor", "watts", 200, 900, 10},
          {"clock drive", "volts", 12, 48, 12},
          {"camera cooler", "watts", 20, 120, 5},
          {"tracking mount", "kilograms", 20, 80, 5},
          {"dehumidifier", "litres a day", 10, 40, 1},
          {"shutter winch", "kilograms", 50, 300, 10},
          {"backup battery", "amp hours", 40, 200, 10},
          {"space heater", "watts", 500, 2000, 100}},
         {"an observing run", "cleaning", "a camera change", "the monthly check", "bad weather"}},
        {"rail yard",
         "Rail Yard",
         {"lever frame", "points heater", "track circuit", "wheel chock", "lamp room",
          "ballast store", "yard office", "water tower", "coupling hook", "buffer stop"},
         {{"points motor", "volts", 24, 120, 2},
          {"water pump", "litres a minute", 20, 200, 5},
          {"brake compressor", "bar", 5, 10, 1},
          {"yard crane", "tonnes", 2, 20, 1},
          {"signal lamp", "watts", 10, 60, 5},
          {"shunting engine", "kilometres an hour", 10, 40, 5},
          {"track heater", "watts", 500, 3000, 100},
          {"wagon hoist", "tonnes", 5, 40, 1}},
         {"shunting", "a track inspection", "a night shift", "coupling", "snow clearing"}},
        {"library",
         "Library",
         {"returns trolley", "reading room", "card index", "map case", "rare book store",
          "front desk", "study desk", "reference desk", "loading door", "book trolley"},
         {{"book lift", "kilograms", 50, 250, 10},
          {"photocopier", "pages a minute", 20, 80, 5},
          {"dehumidifier", "litres a day", 10, 40, 1},
          {"reading lamp", "watts", 40, 100, 5},
          {"shelf ladder", "kilograms", 100, 150, 5},
          {"scanner", "pages a minute", 10, 60, 5},
          {"binding press", "tonnes", 1, 5, 1},
          {"air cleaner", "cubic metres an hour", 100, 400, 10}},
         {"opening time", "a stock check", "moving shelves", "cleaning", "closing time"}},
        {"kitchen",
         "Kitchen",
         {"cold room", "dish rack", "stock pot", "spice shelf", "prep table", "grease trap",
          "bread store", "knife block", "fire blanket", "chopping board"},
         {{"oven", "degrees", 180, 300, 10},
          {"dishwasher", "degrees", 60, 90, 5},
          {"fryer", "litres", 8, 30, 1},
          {"mixer", "watts", 300, 1500, 50},
          {"extractor hood", "cubic metres an hour", 300, 1200, 50},
          {"fridge", "litres", 200, 800, 50},
          {"grill", "watts", 1000, 4000, 100},
          {"ice machine", "kilograms a day", 20, 150, 5}},
         {"service", "a deep clean", "the morning prep", "a delivery", "closing time"}},
    };
    return all;
}

constexpr const char* kPlaces[] = {"Harbor Street", "Elm Hill",    "North Bridge", "Stone Lane",
                                   "Ash Grove",     "Mill Road",   "River Gate",   "Oak Field",
                                   "Market Square", "Church Lane", "High Street",  "Station Road"};
constexpr const char* kQualifiers[] = {"east",  "west", "north",  "south", "upper", "lower",
                                       "main",  "side", "small",  "large", "old",   "new",
                                       "front", "back", "corner", "middle"};
constexpr const char* kFirstNames[] = {"Ada",   "Ben",   "Clara", "David", "Emma", "Frank", "Grace",
                                       "Henry", "Iris",  "James", "Kate",  "Leo",  "Mary",  "Noah",
                                       "Olive", "Peter", "Rose",  "Sam",   "Tom",  "Vera"};
constexpr const char* kSurnames[] = {"Baker",  "Carter", "Fisher", "Hill", "Hunter", "Mason",
                                     "Miller", "Parker", "Porter", "Reed", "Shaw",   "Stone",
                                     "Turner", "Walker", "Ward",   "Wood"};
constexpr const char* kRoomKinds[] = {"Room", "Bay", "Cabinet", "Store", "Shelf"};
constexpr const char* kPartLetters = "ABCDEFGHKLMNPRSTW";

// Defined terms: "<modifier> <object>", defined as "the <material> <object> that <clause>".
constexpr const char* kTermModifiers[] = {"tail",   "safety", "drop",  "lock",   "check", "cross",
                                          "stop",   "guard",  "lift",  "spring", "quick", "service",
                                          "return", "reset",  "limit", "master"};
constexpr const char* kTermObjects[] = {"pin",    "plate",   "ring",  "lever", "clip",   "switch",
                                        "valve",  "bracket", "cover", "gauge", "handle", "cap",
                                        "spring", "strap",   "tag",   "flap",  "bar",    "catch"};
constexpr const char* kMaterials[] = {"steel",  "brass",   "rubber", "wooden",
                                      "copper", "plastic", "iron",   "aluminium"};
// {A}, {B}: things of the place; {E}: a machine; {V}: an activity.
constexpr const char* kTermClauses[] = {
    "that holds the {A} in place during {V}",
    "that keeps the {A} from moving while the {E} is being cleaned",
    "that shows whether the {A} is ready for use",
    "that covers the {A} when nobody is working on it",
    "that lets air out of the {E} before {V}",
    "that marks the safe limit for the {A}",
    "that stops the {E} if the {A} gets too warm",
    "that connects the {E} to the {A}",
    "that must be pulled before the {A} can be moved",
    "that is fitted to the {A} only during {V}"};
constexpr const char* kTermStatements[] = {
    "A *{T}* is {D}.", "In this handbook, a *{T}* means {D}.", "By a *{T}* we mean {D}.",
    "The word *{T}* is used here for {D}."};
constexpr const char* kTermRecalls[] = {
    "Before you begin, check the {T}, {D}.", "Remember that the {T} is {D}.",
    "Here the {T} matters again: it is {D}.", "If you cannot find the {T}, look for {D}.",
    "The {T} mentioned earlier is {D}."};

// Named parts. {I} the part, {P} its part number, {R} its rating, {L} its room, {O} its keeper.
struct KeyTemplate {
    const char* slots;  // the attributes the sentence states
    const char* text;
};
constexpr KeyTemplate kKeyStatements[] = {
    {"PR", "The {I}, part {P}, is rated at {R}."},
    {"PR", "Part {P} is the {I}; it is rated at {R}."},
    {"RL", "The {I} in {L} is rated at {R}."},
    {"RL", "The {I} is rated at {R} and stands in {L}."},
    {"PO", "The {I} (part {P}) is looked after by {O}."},
    {"PO", "{O} looks after the {I}, part {P}."},
    {"LO", "The {I} is kept in {L}, and {O} is in charge of it."},
    {"LO", "{O} keeps the {I} in {L}."},
    {"PL", "The {I}, part {P}, is kept in {L}."},
    {"P", "The {I} has the part number {P}."},
    {"P", "Spares for the {I} are ordered as part {P}."},
    {"R", "The {I} is rated at {R}."},
    {"R", "Under normal load, the {I} runs at {R}."},
    {"L", "The {I} is kept in {L}."},
    {"L", "You will find the {I} in {L}."},
    {"O", "{O} is responsible for the {I}."},
    {"O", "The {I} is looked after by {O}."}};
constexpr KeyTemplate kKeyRecalls[] = {
    {"P", "When the {I} wears out, order a new one as part {P}."},
    {"P", "Replace the {I} (part {P}) if it {F}."},
    {"P", "The spare for the {I} is listed as part {P}."},
    {"P", "Check the label on the {I}; it should read {P}."},
    {"R", "Do not run the {I} above {R}."},
    {"R", "A healthy {I} should reach {R}."},
    {"R", "If the {I} falls well short of {R}, clean it and test it again."},
    {"R", "The {I} is still rated at {R}, so plan the work around that."},
    {"L", "Return the {I} to {L} when you are done."},
    {"L", "If the {I} is not in {L}, ask the person on duty."},
    {"L", "Spare parts for the {I} are also kept in {L}."},
    {"L", "After each use, the {I} goes back to {L}."},
    {"O", "Report any fault with the {I} to {O}."},
    {"O", "For the {I}, ask {O} first."},
    {"O", "Questions about the {I} go to {O}, who looks after it."},
    {"O", "Repairs on the {I} are signed off by {O}."}};

// Sections. {N} the number, {T} the title.
constexpr const char* kChapterTitles[] = {"Getting started",
                                          "Daily care",
                                          "Safety",
                                          "Tools and parts",
                                          "Repairs",
                                          "Records",
                                          "Opening and closing",
                                          "Emergencies",
                                          "Cleaning",
                                          "Storage",
                                          "Training",
                                          "Visitors",
                                          "Inspections",
                                          "Care of equipment"};
constexpr const char* kSectionVerbs[] = {
    "Cleaning",  "Checking",   "Inspecting", "Storing",    "Testing",       "Moving",
    "Labelling", "Caring for", "Replacing",  "Setting up", "Looking after", "Working near"};
constexpr const char* kSectionByNumber[] = {  // the title is the reference
    "Follow the steps in Section {N}, {T}, before you start.",
    "This is done as described in Section {N}, {T}.", "For the details, see Section {N}, {T}.",
    "The same rule appears in Section {N}, {T}, and it applies here too."};
constexpr const char* kSectionByTitle[] = {  // the number is the reference
    "The steps under {T} (Section {N}) apply here as well.",
    "See {T} in Section {N} for the tools you will need.", "{T}, in Section {N}, explains why."};

// Warnings and procedures, repeated verbatim. {A}, {B} things, {E}, {Y} machines, {C} a colour,
// {G} protective gear, {M} a number, {K} a count.
struct WarningTemplate {
    const char* label;
    const char* text;
};
constexpr WarningTemplate kWarnings[] = {
    {"Warning: ",
     "Never open the {A} while the {E} is still running; wait until the {C} lamp goes out."},
    {"Warning: ",
     "Always wear {G} when you work near the {E}, and keep loose clothing away from the {Y}."},
    {"Warning: ", "Do not leave the {E} running unattended for more than {M} minutes."},
    {"Warning: ",
     "If the {E} smells of burning, switch it off at once and tell the person on duty."},
    {"Warning: ", "Before you clean the {A}, switch off the {E} and hang a {C} tag on its handle."},
    {"Warning: ", "Never lift the {A} alone; ask for help and keep the {B} clear."},
    {"Procedure: ",
     "To reset the {E}, switch it off, wait {M} seconds, press the {C} button {K}, and switch it "
     "back on."},
    {"Procedure: ",
     "At closing time, empty the {A}, cover the {B}, and write the time in the log book."},
    {"Procedure: ",
     "To start the {E}, check the {A} first, then turn the {C} key a quarter turn and wait {M} "
     "seconds."}};
constexpr const char* kColours[] = {"red", "green", "yellow", "blue", "black", "white"};
constexpr const char* kGear[] = {"safety glasses", "gloves",   "ear protection",
                                 "a dust mask",    "an apron", "sturdy boots"};
constexpr const char* kCounts[] = {"once", "twice", "three times"};

// Filler: sentences assembled from parts; none needs anything far back.
// {A} a thing, {E} a machine.
constexpr const char* kFillerTemplates[] = {"{W}, {V} the {A}{X}.",
                                            "{J} should {V} the {A}{X}.",
                                            "Keep the {A} {C}.",
                                            "If the {E} {F}, {H}.",
                                            "{G}",
                                            "{W}, {V} the {E}{X}."};
constexpr const char* kTimes[] = {"At the start of each shift",
                                  "Before you leave",
                                  "Once a week",
                                  "At the end of the day",
                                  "Every morning",
                                  "After each job",
                                  "On the first day of each month",
                                  "Twice a year",
                                  "Before {V}",
                                  "After {V}"};
constexpr const char* kFillerVerbs[] = {"check", "clean",       "wipe down", "inspect",
                                        "test",  "dust",        "look over", "tidy",
                                        "label", "sweep around"};
constexpr const char* kSubjects[] = {"New staff",
                                     "Staff on the late shift",
                                     "Whoever opens up",
                                     "The person on duty",
                                     "Anyone who is unsure",
                                     "Each team",
                                     "The last person out",
                                     "Trainees"};
constexpr const char* kTails[] = {"",
                                  "",
                                  " and note anything unusual in the log book",
                                  " and put everything back where it belongs",
                                  " so that the next person finds it ready",
                                  " and report any damage",
                                  " carefully"};
constexpr const char* kConditions[] = {
    "clean and dry",    "free of dust", "locked when not in use",    "clear of loose tools",
    "covered at night", "well lit",     "out of the way of visitors"};
constexpr const char* kFaults[] = {"makes an unusual noise", "runs hot", "will not start",
                                   "shows a warning light",  "leaks",    "smells of burning"};
constexpr const char* kActions[] = {
    "switch it off and tell the person on duty", "stop work and write it in the log book",
    "leave it alone and put a sign on it", "call for help before you touch it",
    "unplug it and set it aside for repair"};
constexpr const char* kGeneral[] = {
    "Most of the work described here is routine and takes only a few minutes.",
    "Ask the person on duty if anything in this handbook is unclear.",
    "The log book is kept on the desk by the door.",
    "Write the date and your name next to every entry in the log book.",
    "Nothing in this part of the handbook replaces common sense.",
    "A tidy room is a safe room.",
    "Tools that are damaged should be set aside and labelled.",
    "Good light makes every job easier and safer.",
    "When in doubt, stop and ask.",
    "Short breaks help you stay careful during long jobs.",
    "The rules in this part apply to staff and visitors alike.",
    "Small problems are easier to fix when they are reported early."};
constexpr const char* kIntro[] = {
    "This handbook describes how the {S} is run from day to day.",
    "Keep a copy near the {A}, and read the warnings before you start work.",
    "Parts, terms and sections are named once and then used throughout, so read it in order."};

// Words the writer adds outside the tables above.
constexpr const char* kGlue[] = {"The Handbook Section part"};

// ---- writing ------------------------------------------------------------------------------

using Slots = std::map<char, std::string>;

struct Rendered {
    std::string text;
    std::map<char, std::pair<std::size_t, std::size_t>> at;  // where each slot's value went
};

// Fills {X} slots (one letter); a sentence starting with a lowercase letter is capitalized.
Rendered render(std::string_view pattern, const Slots& slots, bool capitalize = true) {
    Rendered out;
    for (std::size_t i = 0; i < pattern.size();) {
        if (pattern[i] == '{' && i + 2 < pattern.size() && pattern[i + 2] == '}') {
            const std::string& value = slots.at(pattern[i + 1]);
            const std::size_t begin = out.text.size();
            out.text += value;
            out.at[pattern[i + 1]] = {begin, out.text.size()};
            i += 3;
        } else {
            out.text += pattern[i++];
        }
    }
    if (capitalize && !out.text.empty() && std::islower(static_cast<unsigned char>(out.text[0])))
        out.text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out.text[0])));
    return out;
}

struct Fact {
    std::string kind;     // "key", "term", "section", "repeat"
    char slot = 0;        // key: 'P', 'R', 'L' or 'O'
    std::string subject;  // key: the part; term: the term; section: the number; repeat: the cue
    std::string title;    // section: the title
    std::string answer;   // the bytes the reference repeats (section: the title)
    std::size_t source_begin = 0, source_end = 0;
    std::size_t number_begin = 0, number_end = 0;  // section: where its number is
    std::size_t stated_at = 0;                     // byte offset where the statement ends
};

class HandbookWriter {
public:
    explicit HandbookWriter(const SyntheticDocOptions& o)
        : o_(o), r_(o.seed ^ 0x48616E64626F6F6Bull), s_(settings()[r_.below(settings().size())]) {
        for (const char* n : s_.nouns) things_.push_back(n);
        for (const Item& item : s_.items) {
            things_.push_back(item.noun);
            machines_.push_back(item.noun);
        }
    }

    SyntheticDoc write() {
        const std::string place = r_.pick(kPlaces);
        add("# The " + place + " " + s_.title + " Handbook\n\n");
        for (const char* sentence : kIntro) {
            Slots slots{{'S', s_.name}, {'A', thing()}};
            add_sentence(render(sentence, slots).text);
        }
        close_paragraph();
        int chapter = 0;
        while (!full()) {
            ++chapter;
            add("## " + std::to_string(chapter) + " " + chapter_title() + "\n\n");
            const std::size_t sections = 2 + r_.below(3);
            for (std::size_t section = 1; section <= sections && !full(); ++section) {
                section_heading(chapter, static_cast<int>(section));
                const std::size_t paragraphs = 1 + r_.below(3);
                // Near the end: no new heading that would stay empty, more paragraphs here.
                for (std::size_t p = 0; !full() && (p < paragraphs || near_end()); ++p) paragraph();
            }
        }
        return std::move(doc_);
    }

private:
    bool full() const { return doc_.text.size() >= o_.target_bytes; }
    bool near_end() const { return doc_.text.size() + 600 >= o_.target_bytes; }
    void add(std::string_view s) { doc_.text += s; }
    std::string thing() { return things_[r_.below(things_.size())]; }
    std::string machine() { return machines_[r_.below(machines_.size())]; }
    std::string activity() { return s_.activities[r_.below(s_.activities.size())]; }

    // A sentence in the open paragraph; returns the offset where it begins.
    std::size_t add_sentence(const std::string& sentence) {
        if (paragraph_open_) add(" ");
        paragraph_open_ = true;
        const std::size_t begin = doc_.text.size();
        add(sentence);
        sentences_.insert(sentence);
        return begin;
    }
    void close_paragraph() {
        if (paragraph_open_) add("\n\n");
        paragraph_open_ = false;
    }

    std::string chapter_title() {
        for (int tries = 0; tries < 16; ++tries) {
            const std::string title = r_.pick(kChapterTitles);
            if (headings_.insert(title).second) return title;
        }
        return r_.pick(kChapterTitles);  // very long documents: titles come again
    }

    void section_heading(int chapter, int section) {
        std::string title;
        for (int tries = 0; tries < 32; ++tries) {
            title = std::string(r_.pick(kSectionVerbs)) + " the " + thing();
            if (headings_.insert(title).second) break;
        }
        const std::string number = std::to_string(chapter) + "." + std::to_string(section);
        add("### ");
        Fact f;
        f.kind = "section";
        f.subject = number;
        f.number_begin = doc_.text.size();
        add(number);
        f.number_end = doc_.text.size();
        add(" ");
        f.title = f.answer = title;
        f.source_begin = doc_.text.size();
        add(title);
        f.source_end = doc_.text.size();
        add("\n\n");
        f.stated_at = doc_.text.size();
        facts_.push_back(std::move(f));
    }

    void paragraph() {
        const std::size_t sentences = 2 + r_.below(4);
        for (std::size_t i = 0; i < sentences && !full(); ++i) sentence();
        close_paragraph();
    }

    void sentence() {
        const std::size_t roll = r_.below(100);
        if (can_refer() && roll < (o_.dense ? 60u : 30u)) {
            refer_back();
        } else if (roll < (o_.dense ? 100u : 55u)) {
            state_fact();
        } else {
            filler();
        }
    }

    bool can_refer() const {
        return !facts_.empty() && facts_.front().stated_at + o_.min_distance <= doc_.text.size();
    }

    void state_fact() {
        // A warning and a term early in every document, so that every kind gets recalled.
        if (!stated_warning_ && state_warning()) {
            stated_warning_ = true;
            return;
        }
        if (!stated_term_ && state_term()) {
            stated_term_ = true;
            return;
        }
        const std::size_t roll = r_.below(20);
        if (roll < 11) {
            if (!state_key()) filler();
        } else if (roll < 17) {
            if (!state_term()) filler();
        } else {
            if (!state_warning()) filler();
        }
    }

    bool state_key() {
        std::string item;
        const Item* base = nullptr;
        for (int tries = 0; tries < 16 && item.empty(); ++tries) {
            base = &s_.items[r_.below(s_.items.size())];
            const std::string name = std::string(r_.pick(kQualifiers)) + " " + base->noun;
            if (!used_.count(name)) item = name;
        }
        if (item.empty()) return false;
        used_.insert(item);
        const KeyTemplate& t = r_.pick(kKeyStatements);
        Slots slots{{'I', item}};
        for (const char* c = t.slots; *c; ++c) slots[*c] = key_value(*c, *base);
        const Rendered sentence = render(t.text, slots);
        const std::size_t begin = add_sentence(sentence.text);
        for (const char* c = t.slots; *c; ++c) {
            Fact f;
            f.kind = "key";
            f.slot = *c;
            f.subject = item;
            f.answer = slots[*c];
            f.source_begin = begin + sentence.at.at(*c).first;
            f.source_end = begin + sentence.at.at(*c).second;
            f.stated_at = doc_.text.size();
            facts_.push_back(std::move(f));
        }
        return true;
    }

    std::string key_value(char slot, const Item& item) {
        switch (slot) {
            case 'P': {
                std::string code;
                do {
                    code.clear();
                    const std::size_t letters = 1 + r_.below(2);
                    for (std::size_t i = 0; i < letters; ++i)
                        code += kPartLetters[r_.below(std::string_view(kPartLetters).size())];
                    code += '-';
                    for (int i = 0; i < 4; ++i) code += static_cast<char>('0' + r_.below(10));
                } while (used_.count(code));
                used_.insert(code);
                return code;
            }
            case 'R': {
                const int steps = (item.hi - item.lo) / item.step;
                const int value = item.lo + item.step * static_cast<int>(r_.below(steps + 1));
                return std::to_string(value) + " " + item.unit;
            }
            case 'L':
                return std::string(r_.pick(kRoomKinds)) + " " + std::to_string(1 + r_.below(99));
            default:
                return std::string(r_.pick(kFirstNames)) + " " + r_.pick(kSurnames);
        }
    }

    bool state_term() {
        std::string term, object;
        for (int tries = 0; tries < 16 && term.empty(); ++tries) {
            object = r_.pick(kTermObjects);
            const std::string name = std::string(r_.pick(kTermModifiers)) + " " + object;
            if (!used_.count(name)) term = name;
        }
        if (term.empty()) return false;
        used_.insert(term);
        const std::string a = thing();
        std::string b = thing();
        for (int tries = 0; tries < 8 && b == a; ++tries) b = thing();
        const std::string clause =
            render(r_.pick(kTermClauses), {{'A', a}, {'B', b}, {'E', machine()}, {'V', activity()}},
                   false)
                .text;
        const std::string definition =
            "the " + std::string(r_.pick(kMaterials)) + " " + object + " " + clause;
        const Rendered sentence =
            render(r_.pick(kTermStatements), {{'T', term}, {'D', definition}});
        const std::size_t begin = add_sentence(sentence.text);
        Fact f;
        f.kind = "term";
        f.subject = term;
        f.answer = definition;
        f.source_begin = begin + sentence.at.at('D').first;
        f.source_end = begin + sentence.at.at('D').second;
        f.stated_at = doc_.text.size();
        facts_.push_back(std::move(f));
        return true;
    }

    bool state_warning() {
        for (int tries = 0; tries < 8; ++tries) {
            const WarningTemplate& t = r_.pick(kWarnings);
            const std::string a = thing(), e = machine();
            std::string b = thing(), y = machine();
            for (int i = 0; i < 8 && b == a; ++i) b = thing();
            for (int i = 0; i < 8 && y == e; ++i) y = machine();
            const Rendered body = render(t.text, {{'A', a},
                                                  {'B', b},
                                                  {'E', e},
                                                  {'Y', y},
                                                  {'C', r_.pick(kColours)},
                                                  {'G', r_.pick(kGear)},
                                                  {'M', std::to_string(5 + r_.below(26))},
                                                  {'K', r_.pick(kCounts)}});
            // The cue: the label and the words up to the first filled slot (what the warning is
            // about); the rest is the reference.
            std::size_t earliest = body.text.size(), first_slot_end = body.text.size();
            for (const auto& [slot, at] : body.at) {
                if (at.first < earliest) {
                    earliest = at.first;
                    first_slot_end = at.second;
                }
            }
            const std::size_t split = body.text.find(' ', first_slot_end);
            if (split == std::string::npos) continue;
            const std::string cue = t.label + body.text.substr(0, split + 1);
            if (used_.count(cue)) continue;
            used_.insert(cue);
            close_paragraph();
            Fact f;
            f.kind = "repeat";
            f.subject = cue;
            f.answer = body.text.substr(split + 1);
            add(cue);
            f.source_begin = doc_.text.size();
            add(f.answer);
            f.source_end = doc_.text.size();
            add("\n\n");
            f.stated_at = doc_.text.size();
            facts_.push_back(std::move(f));
            return true;
        }
        return false;
    }

    void filler() {
        if (!o_.mix_texts.empty() && r_.below(2) == 0) {
            mix_chunk();
            return;
        }
        std::string sentence;
        for (int tries = 0; tries < 16; ++tries) {
            const Slots slots{{'W', render(r_.pick(kTimes), {{'V', activity()}}).text},
                              {'V', r_.pick(kFillerVerbs)},
                              {'A', thing()},
                              {'E', machine()},
                              {'X', r_.pick(kTails)},
                              {'J', r_.pick(kSubjects)},
                              {'C', r_.pick(kConditions)},
                              {'F', r_.pick(kFaults)},
                              {'H', r_.pick(kActions)},
                              {'G', r_.pick(kGeneral)}};
            sentence = render(r_.pick(kFillerTemplates), slots).text;
            if (!sentences_.count(sentence)) break;
        }
        add_sentence(sentence);  // very long documents: a sentence may come again
    }

    // The next chunk of natural text as a paragraph of its own, cut at a line or word boundary.
    void mix_chunk() {
        const std::optional<std::string> chunk = mix_.next(o_.mix_texts, r_);
        if (!chunk) return;
        close_paragraph();
        add(*chunk);
        add("\n\n");
    }

    void refer_back() {
        // Among the facts old enough, one of the kind recalled least so far, so that every kind
        // is recalled; a random one of that kind, so that recalls are not in statement order.
        std::size_t old = 0;
        while (old < facts_.size() && facts_[old].stated_at + o_.min_distance <= doc_.text.size())
            ++old;
        std::size_t fewest = SIZE_MAX;
        for (std::size_t i = 0; i < old; ++i) fewest = std::min(fewest, recalled_[facts_[i].kind]);
        std::vector<std::size_t> candidates;
        for (std::size_t i = 0; i < old; ++i)
            if (recalled_[facts_[i].kind] == fewest) candidates.push_back(i);
        const std::size_t i = candidates[r_.below(candidates.size())];
        Fact f = facts_[i];
        facts_.erase(facts_.begin() + static_cast<std::ptrdiff_t>(i));
        ++recalled_[f.kind];

        ReferenceSpan span;
        span.kind = f.kind;
        span.source_begin = f.source_begin;
        span.source_end = f.source_end;
        if (f.kind == "repeat") {
            close_paragraph();
            add(f.subject);
            span.begin = doc_.text.size();
            add(f.answer);
            span.end = doc_.text.size();
            add("\n\n");
            doc_.references.push_back(span);
            return;
        }
        Rendered sentence;
        char slot = 0;
        if (f.kind == "key") {
            std::vector<const KeyTemplate*> fitting;
            for (const KeyTemplate& t : kKeyRecalls)
                if (t.slots[0] == f.slot) fitting.push_back(&t);
            const KeyTemplate& t = *fitting[r_.below(fitting.size())];
            slot = f.slot;
            sentence =
                render(t.text, {{'I', f.subject}, {slot, f.answer}, {'F', r_.pick(kFaults)}});
        } else if (f.kind == "term") {
            slot = 'D';
            sentence = render(r_.pick(kTermRecalls), {{'T', f.subject}, {'D', f.answer}});
        } else if (r_.below(2) == 0) {  // a section, by its number: the title is the reference
            slot = 'T';
            sentence = render(r_.pick(kSectionByNumber), {{'N', f.subject}, {'T', f.title}});
        } else {  // by its title: the number is the reference
            slot = 'N';
            sentence = render(r_.pick(kSectionByTitle), {{'N', f.subject}, {'T', f.title}});
            span.source_begin = f.number_begin;
            span.source_end = f.number_end;
        }
        const std::size_t begin = add_sentence(sentence.text);
        span.begin = begin + sentence.at.at(slot).first;
        span.end = begin + sentence.at.at(slot).second;
        doc_.references.push_back(span);
    }

    const SyntheticDocOptions& o_;
    DocRandom r_;
    const Setting& s_;
    std::vector<std::string> things_;    // everything in the place, machines included
    std::vector<std::string> machines_;  // what runs, can be switched off and can break
    SyntheticDoc doc_;
    std::deque<Fact> facts_;
    std::set<std::string> used_;       // parts, part numbers, terms, warning cues
    std::set<std::string> headings_;   // chapter and section titles
    std::set<std::string> sentences_;  // sentences written so far
    std::map<std::string, std::size_t> recalled_;
    bool paragraph_open_ = false;
    bool stated_warning_ = false, stated_term_ = false;
    MixCursor mix_;
};

// The words of a table entry, lowercase; a template's slots ({A}, {T}, ...) are not words.
void add_words(std::set<std::string>& words, std::string_view text) {
    std::string word;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '{' && i + 2 < text.size() && text[i + 2] == '}') {
            i += 2;
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(c))) {
            word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else {
            if (!word.empty()) words.insert(word);
            word.clear();
        }
    }
    if (!word.empty()) words.insert(word);
}

template <typename T, std::size_t N>
void add_all(std::set<std::string>& words, const T (&table)[N]) {
    for (const auto& entry : table) add_words(words, entry);
}

}  // namespace

SyntheticDoc make_handbook_doc(const SyntheticDocOptions& options) {
    return HandbookWriter(options).write();
}

const std::set<std::string>& handbook_vocabulary() {
    static const std::set<std::string> words = [] {
        std::set<std::string> w;
        for (const Setting& s : settings()) {
            add_words(w, s.name);
            add_words(w, s.title);
            for (const char* n : s.nouns) add_words(w, n);
            for (const Item& item : s.items) {
                add_words(w, item.noun);
                add_words(w, item.unit);
            }
            for (const char* a : s.activities) add_words(w, a);
        }
        add_all(w, kPlaces);
        add_all(w, kQualifiers);
        add_all(w, kFirstNames);
        add_all(w, kSurnames);
        add_all(w, kRoomKinds);
        add_all(w, kTermModifiers);
        add_all(w, kTermObjects);
        add_all(w, kMaterials);
        add_all(w, kTermClauses);
        add_all(w, kTermStatements);
        add_all(w, kTermRecalls);
        for (const KeyTemplate& t : kKeyStatements) add_words(w, t.text);
        for (const KeyTemplate& t : kKeyRecalls) add_words(w, t.text);
        add_all(w, kChapterTitles);
        add_all(w, kSectionVerbs);
        add_all(w, kSectionByNumber);
        add_all(w, kSectionByTitle);
        for (const WarningTemplate& t : kWarnings) {
            add_words(w, t.label);
            add_words(w, t.text);
        }
        add_all(w, kColours);
        add_all(w, kGear);
        add_all(w, kCounts);
        add_all(w, kTimes);
        add_all(w, kFillerVerbs);
        add_all(w, kSubjects);
        add_all(w, kTails);
        add_all(w, kConditions);
        add_all(w, kFaults);
        add_all(w, kActions);
        add_all(w, kGeneral);
        add_all(w, kIntro);
        add_all(w, kGlue);
        return w;
    }();
    return words;
}

std::optional<SyntheticDocStyle> parse_synthetic_doc_style(std::string_view name) {
    if (name == "synthetic") return SyntheticDocStyle::synthetic;
    if (name == "handbook") return SyntheticDocStyle::handbook;
    return std::nullopt;
}

const char* synthetic_doc_style_name(SyntheticDocStyle style) {
    return style == SyntheticDocStyle::handbook ? "handbook" : "synthetic";
}

}  // namespace l2a
