#include "remote_common.h"

#include <charconv>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/profiler/remote.h"

namespace l2a::remote {
namespace {

// HOST and PORT of "HOST:PORT" or "[V6]:PORT"; false when it is not that.
bool split_host_port(const std::string& text, std::string& host, int& port) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
    host = text.substr(0, colon);
    if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty() || host.find_first_of(" /") != std::string::npos) return false;
    const char* begin = text.data() + colon + 1;
    const char* end = text.data() + text.size();
    const auto [at, error] = std::from_chars(begin, end, port);
    return error == std::errc() && at == end && port >= 0 && port <= 65535;
}

}  // namespace

bool is_loopback_listen(const std::string& listen) {
    std::string host;
    int port = 0;
    if (!split_host_port(listen, host, port)) return false;
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string grpc_target(const std::string& url, bool& tls) {
    tls = false;
    if (url.rfind("unix:", 0) == 0 && url.size() > 5) return url;
    std::string rest;
    if (url.rfind("tcp://", 0) == 0) {
        rest = url.substr(6);
    } else if (url.rfind("tls://", 0) == 0) {
        rest = url.substr(6);
        tls = true;
    } else {
        fail("--engine " + url,
             "expected tcp://HOST:PORT, tls://HOST:PORT, ssh://[USER@]HOST[:PORT][/PATH/TO/l2a] "
             "or unix:PATH");
    }
    std::string host;
    int port = 0;
    if (!split_host_port(rest, host, port) || port == 0) {
        fail("--engine " + url,
             "expected HOST:PORT after the scheme (for example tcp://gpu1:7787)");
    }
    return rest;
}

}  // namespace l2a::remote

namespace l2a {

std::string read_engine_token(const std::filesystem::path& path) {
    std::string text = read_text_file(path);
    const std::size_t end = text.find_first_of("\r\n");
    if (end != std::string::npos) text.resize(end);
    const std::size_t first = text.find_first_not_of(" \t");
    const std::size_t last = text.find_last_not_of(" \t");
    if (first == std::string::npos) fail(path.string(), "the token file is empty");
    return text.substr(first, last - first + 1);
}

}  // namespace l2a
