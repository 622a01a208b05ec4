#include "l2a/engine/error.h"

#include <string>

namespace l2a {

void fail(std::string_view path, std::string_view message) {
    if (path.empty()) {
        throw Error(std::string(message));
    }
    std::string text;
    text.reserve(path.size() + 2 + message.size());
    text.append(path).append(": ").append(message);
    throw Error(text);
}

}  // namespace l2a
