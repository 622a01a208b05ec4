// The engine's one error type. Every failure that reaches a user says which file (or input)
// and what was wrong with it; callers print what() on one line.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace l2a {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "path: message", or just the message when there is no path.
[[noreturn]] void fail(std::string_view path, std::string_view message);

// A JSON library error (its what()) in words for a user: "malformed JSON at line 3, column 7:
// syntax error while parsing object - unexpected '}'; expected string literal", or "unexpected
// JSON content: key 'step' not found". The library's own tags ("[json.exception.parse_error.101]")
// are dropped, the text is clipped to one short line and bytes that are not printable ASCII or
// UTF-8 letters are shown as '?'.
std::string describe_json_error(std::string_view what);

// describe_json_error for messages that come from the JSON library; others unchanged.
std::string without_library_tags(std::string_view what);

}  // namespace l2a
