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

}  // namespace l2a
