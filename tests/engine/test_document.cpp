// Documents (UTF-8 repair, loading) and the atomic file writes that every saved file relies on.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "test_support.h"

namespace fs = std::filesystem;
using l2a::test::message_of;
using l2a::test::write_file;

namespace {

fs::path scratch_dir() { return l2a::test::scratch_dir("document"); }

std::vector<std::string> folder_entries(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
        names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

struct Utf8Case {
    std::string input;
    std::string expected;  // what Python's bytes.decode("utf-8", errors="replace") produces
    std::size_t replaced;
};

const std::string fffd = "\xEF\xBF\xBD";

}  // namespace

TEST(SanitizeUtf8, ValidTextIsUnchanged) {
    // The first and last code points of every sequence length, and the edges of the surrogate
    // gap, all of which are valid.
    const std::string valid = std::string("a\0b", 3) +
                              "\x7F"
                              "\xC2\x80\xDF\xBF"
                              "\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
                              "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"
                              "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80";
    std::string out = "stale";
    EXPECT_EQ(l2a::sanitize_utf8(valid, out), 0u);
    EXPECT_EQ(out, valid);
    EXPECT_EQ(l2a::sanitize_utf8("", out), 0u);
    EXPECT_EQ(out, "");
}

TEST(SanitizeUtf8, ReplacesMaximalSubpartsLikePython) {
    // clang-format off
    const std::vector<Utf8Case> cases = {
        {"\x80", fffd, 1},                                    // lone continuation byte
        {"\xBF\x80", fffd + fffd, 2},                         // each continuation on its own
        {"\xC0\xAF", fffd + fffd, 2},                         // overlong '/': C0 never leads
        {"\xC1\xBF", fffd + fffd, 2},                         // overlong, C1 never leads
        {"\xE0\x80\x80", fffd + fffd + fffd, 3},              // overlong 3-byte form
        {"\xE0\x9F\xBF", fffd + fffd + fffd, 3},              // overlong, top of the range
        {"\xED\xA0\x80", fffd + fffd + fffd, 3},              // surrogate U+D800
        {"\xED\xBF\xBF", fffd + fffd + fffd, 3},              // surrogate U+DFFF
        {"\xF0\x80\x80\x80", fffd + fffd + fffd + fffd, 4},   // overlong 4-byte form
        {"\xF4\x90\x80\x80", fffd + fffd + fffd + fffd, 4},   // U+110000, past the last
        {"\xF5\x80\x80\x80", fffd + fffd + fffd + fffd, 4},   // F5 never leads
        {"\xFF", fffd, 1},
        {"\xFE\xFF", fffd + fffd, 2},
        {"\xC2", fffd, 1},                                    // truncated at the end
        {"\xE2\x82", fffd, 1},                                // truncated 3-byte: one subpart
        {"\xE2\x82" "A", fffd + "A", 1},                      // interrupted by ASCII
        {"\xF0\x9F\x98", fffd, 1},                            // truncated 4-byte
        {"\xF0\x9F\x98" "A\xF0\x9F\x98\x80", fffd + "A\xF0\x9F\x98\x80", 1},
        {"\xC2\xC2\xA9", fffd + "\xC2\xA9", 1},               // the breaking byte starts anew
        {"\xED\xA0\x80\xED\xB0\x80", fffd + fffd + fffd + fffd + fffd + fffd, 6},  // CESU-8
        {"\xF4\x8F\xBF\xBF\xF4\x90", "\xF4\x8F\xBF\xBF" + fffd + fffd, 2},
        {"\xE1\x80\xE2\xF0\x91\x92\xF1\xBF" "A", fffd + fffd + fffd + fffd + "A", 4},
        // The example of the Unicode Standard, chapter 3 ("U+FFFD substitution of maximal
        // subparts"): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
        {"a\xF1\x80\x80\xE1\x80\xC2" "b\x80" "c\x80\xBF" "d",
         "a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d", 6},
    };
    // clang-format on
    for (const Utf8Case& c : cases) {
        std::string out;
        const std::size_t replaced = l2a::sanitize_utf8(c.input, out);
        std::string hex;
        for (const char ch : c.input) {
            char buffer[4];
            std::snprintf(buffer, sizeof buffer, "%02X ", static_cast<unsigned char>(ch));
            hex += buffer;
        }
        EXPECT_EQ(out, c.expected) << "input bytes: " << hex;
        EXPECT_EQ(replaced, c.replaced) << "input bytes: " << hex;
    }
}

TEST(LoadDocument, ReadsTextAndStripsByteOrderMark) {
    const fs::path dir = scratch_dir();
    write_file(dir / "doc.txt", "\xEF\xBB\xBFHello \xE2\x80\x94 world\n");
    const l2a::Document doc = l2a::load_document(dir / "doc.txt");
    EXPECT_EQ(doc.text, "Hello \xE2\x80\x94 world\n");
    EXPECT_EQ(doc.replaced_sequences, 0u);
    EXPECT_EQ(doc.path, dir / "doc.txt");
}

TEST(LoadDocument, OnlyALeadingByteOrderMarkIsRemoved) {
    const fs::path dir = scratch_dir();
    write_file(dir / "doc.txt", "a\xEF\xBB\xBF");
    EXPECT_EQ(l2a::load_document(dir / "doc.txt").text, "a\xEF\xBB\xBF");
}

TEST(LoadDocument, ReplacesAndCountsInvalidBytes) {
    const fs::path dir = scratch_dir();
    write_file(dir / "doc.txt", "ok \xFF\xFE then \xE2\x82 end");
    const l2a::Document doc = l2a::load_document(dir / "doc.txt");
    EXPECT_EQ(doc.text, "ok " + fffd + fffd + " then " + fffd + " end");
    EXPECT_EQ(doc.replaced_sequences, 3u);
}

TEST(LoadDocument, EmptyFileIsAnError) {
    const fs::path dir = scratch_dir();
    write_file(dir / "doc.txt", "");
    EXPECT_EQ(message_of([&] { l2a::load_document(dir / "doc.txt"); }),
              (dir / "doc.txt").string() + ": the document is empty");
    write_file(dir / "bom.txt", "\xEF\xBB\xBF");
    EXPECT_EQ(message_of([&] { l2a::load_document(dir / "bom.txt"); }),
              (dir / "bom.txt").string() + ": the document is empty");
}

TEST(LoadDocument, MissingFileAndFolderAreErrors) {
    const fs::path dir = scratch_dir();
    const std::string missing = message_of([&] { l2a::load_document(dir / "nope.txt"); });
    EXPECT_NE(missing.find("nope.txt"), std::string::npos) << missing;
    EXPECT_NE(missing.find("No such file"), std::string::npos) << missing;

    fs::create_directory(dir / "folder.txt");
    const std::string folder = message_of([&] { l2a::load_document(dir / "folder.txt"); });
    EXPECT_NE(folder.find("folder.txt"), std::string::npos) << folder;
    EXPECT_NE(folder.find("folder, not a file"), std::string::npos) << folder;
}

// With a byte budget only the beginning is read, never ending inside a character.
TEST(LoadDocument, PrefixStopsAtAWholeCharacter) {
    const fs::path dir = scratch_dir();
    write_file(dir / "doc.txt",
               "ab\xE2\x82\xAC"
               "cd");  // "ab€cd", 7 bytes
    l2a::Document doc = l2a::load_document(dir / "doc.txt", 3);
    EXPECT_EQ(doc.text, "ab");  // not "ab" + U+FFFD for the cut euro sign
    EXPECT_EQ(doc.replaced_sequences, 0u);
    EXPECT_FALSE(doc.complete);
    EXPECT_EQ(doc.file_bytes, 7u);
    doc = l2a::load_document(dir / "doc.txt", 5);
    EXPECT_EQ(doc.text, "ab\xE2\x82\xAC");
    EXPECT_FALSE(doc.complete);
    doc = l2a::load_document(dir / "doc.txt", 7);
    EXPECT_EQ(doc.text,
              "ab\xE2\x82\xAC"
              "cd");
    EXPECT_TRUE(doc.complete);
    EXPECT_TRUE(l2a::load_document(dir / "doc.txt").complete);
}

// A device or pipe has no size to check first: reading stops at a cap with a clear error.
TEST(LoadDocument, PipesAndDevicesHaveASizeCap) {
    const std::string zero = message_of([&] { l2a::load_document("/dev/zero"); });
    EXPECT_EQ(zero,
              "/dev/zero: is not a regular file (a pipe or device) and gives more than 64 MiB; "
              "save the document to a file, or give --max-tokens");
    // A budget within the cap reads just that much.
    const l2a::Document head = l2a::load_document("/dev/urandom", 4096);
    EXPECT_FALSE(head.complete);
    EXPECT_LE(head.file_bytes, 4096u);

    // A FIFO that ends is read like a file.
    const fs::path dir = scratch_dir();
    const fs::path fifo = dir / "pipe";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::thread writer([&] {
        std::FILE* f = std::fopen(fifo.c_str(), "w");
        if (f) {
            std::fputs("Hello through a pipe.", f);
            std::fclose(f);
        }
    });
    const l2a::Document piped = l2a::load_document(fifo);
    writer.join();
    EXPECT_EQ(piped.text, "Hello through a pipe.");
    EXPECT_TRUE(piped.complete);
}

TEST(AtomicFile, WritesAndReplacesText) {
    const fs::path dir = scratch_dir();
    l2a::write_text_atomically(dir / "out.txt", "first");
    EXPECT_EQ(l2a::read_text_file(dir / "out.txt"), "first");
    l2a::write_text_atomically(dir / "out.txt", std::string("second\0x", 8));
    EXPECT_EQ(l2a::read_text_file(dir / "out.txt"), std::string("second\0x", 8));
    EXPECT_EQ(folder_entries(dir), std::vector<std::string>{"out.txt"});
}

TEST(AtomicFile, CallbackWritesThroughStream) {
    const fs::path dir = scratch_dir();
    l2a::write_file_atomically(dir / "out.bin", [](std::FILE* f) {
        std::fputs("abc", f);
        std::fputc('\n', f);
    });
    EXPECT_EQ(l2a::read_text_file(dir / "out.bin"), "abc\n");
}

TEST(AtomicFile, FailingWriterKeepsPreviousContentAndLeavesNoTemporaryFile) {
    const fs::path dir = scratch_dir();
    const fs::path target = dir / "keep.txt";
    l2a::write_text_atomically(target, "previous content");

    const std::string from_error = message_of([&] {
        l2a::write_file_atomically(target, [](std::FILE* f) {
            std::fputs("half of the new", f);
            throw l2a::Error("encoding failed");
        });
    });
    EXPECT_EQ(from_error, target.string() + ": encoding failed");
    EXPECT_EQ(l2a::read_text_file(target), "previous content");
    EXPECT_EQ(folder_entries(dir), std::vector<std::string>{"keep.txt"});

    // Other exceptions become l2a::Error naming the file, with the same clean-up.
    const std::string from_std = message_of([&] {
        l2a::write_file_atomically(target, [](std::FILE* f) {
            std::fputs("partial", f);
            throw std::runtime_error("out of range");
        });
    });
    EXPECT_EQ(from_std, target.string() + ": out of range");
    EXPECT_EQ(l2a::read_text_file(target), "previous content");
    EXPECT_EQ(folder_entries(dir), std::vector<std::string>{"keep.txt"});
}

TEST(AtomicFile, ErrorThatNamesTheFileIsNotPrefixedTwice) {
    const fs::path dir = scratch_dir();
    const fs::path target = dir / "x.txt";
    const std::string message = message_of([&] {
        l2a::write_file_atomically(target, [&](std::FILE*) { l2a::fail(target.string(), "bad"); });
    });
    EXPECT_EQ(message, target.string() + ": bad");
    EXPECT_FALSE(fs::exists(target));
    EXPECT_TRUE(folder_entries(dir).empty());
}

TEST(AtomicFile, UnfinishedAtomicFileIsRemoved) {
    const fs::path dir = scratch_dir();
    fs::path temp;
    {
        l2a::AtomicFile file(dir / "streamed.bin");
        file.write("data", 4);
        temp = file.temp_path();
        EXPECT_TRUE(fs::exists(temp));
        EXPECT_EQ(temp.parent_path(), dir);
    }
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_TRUE(folder_entries(dir).empty());
}

TEST(AtomicFile, ReplacingKeepsPermissions) {
    const fs::path dir = scratch_dir();
    const fs::path target = dir / "private.txt";
    l2a::write_text_atomically(target, "secret");
    fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
    l2a::write_text_atomically(target, "new secret");
    EXPECT_EQ(fs::status(target).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(l2a::read_text_file(target), "new secret");
}

TEST(AtomicFile, MissingFolderIsAnErrorNamingTheFile) {
    const fs::path dir = scratch_dir();
    const fs::path target = dir / "no-such-folder" / "out.txt";
    const std::string message = message_of([&] { l2a::write_text_atomically(target, "x"); });
    EXPECT_EQ(message.rfind(target.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find("No such file"), std::string::npos) << message;
}

TEST(ReadTextFile, ErrorsNameTheFile) {
    const fs::path dir = scratch_dir();
    const std::string message = message_of([&] { l2a::read_text_file(dir / "absent.json"); });
    EXPECT_EQ(message.rfind((dir / "absent.json").string() + ": cannot open", 0), 0u) << message;
    // A device that never ends (a config or token file given as /dev/zero) stops with a line.
    EXPECT_EQ(message_of([&] { l2a::read_text_file("/dev/zero"); }),
              "/dev/zero: is not a regular file (a pipe or device) and gives more than 256 MiB");
}
