#include "remote_common.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/units.h"
#include "l2a/profiler/remote.h"

namespace l2a::remote {
namespace {

// The longest path of a Unix socket (sockaddr_un's sun_path, less its terminating zero).
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;

// Why a Unix socket cannot have `path`, or "" when it can.
std::string socket_path_too_long(const std::string& path) {
    if (path.size() <= kMaxSocketPath) return "";
    return "the socket's path is " + std::to_string(path.size()) +
           " bytes long; a socket's path has at most " + std::to_string(kMaxSocketPath);
}

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

// The addresses of HOST:PORT for a stream socket (`passive`: to listen on), freed with it;
// none for text that is not HOST:PORT, and `why` for a host that does not resolve.
struct Resolved {
    Resolved(const std::string& text, bool passive) {
        std::string host;
        int port = 0;
        if (!split_host_port(text, host, port)) return;
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        if (passive) hints.ai_flags = AI_PASSIVE;
        const std::string service = std::to_string(port);
        if (const int error = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found)) {
            found = nullptr;
            why = "unknown host " + host + " (" + ::gai_strerror(error) + ")";
            // A name server that did not answer in time may answer later.
            temporary = error == EAI_AGAIN;
        }
    }
    ~Resolved() {
        if (found) ::freeaddrinfo(found);
    }
    Resolved(const Resolved&) = delete;
    Resolved& operator=(const Resolved&) = delete;
    addrinfo* found = nullptr;
    std::string why;
    bool temporary = false;  // the lookup failed for now (EAI_AGAIN), not for good
};

}  // namespace

void check_listen_address(const std::string& listen) {
    const std::string where = "--listen " + listen;
    if (listen.rfind("unix:", 0) == 0) {
        const std::filesystem::path path = listen.substr(5);
        if (path.empty()) fail(where, "the socket's path is empty (unix:PATH)");
        if (const std::string why = socket_path_too_long(path.string()); !why.empty()) {
            fail(where, why);
        }
        std::error_code error;
        if (std::filesystem::is_directory(path, error)) {
            fail(where, "is a folder; give the socket's file name in it");
        }
        const std::filesystem::path folder = path.parent_path();
        if (!folder.empty() && !std::filesystem::is_directory(folder, error)) {
            fail(where, "the folder " + folder.string() + " does not exist");
        }
        return;
    }
    std::string host;
    int port = 0;
    if (!split_host_port(listen, host, port)) {
        fail(where,
             "expected HOST:PORT with a port in 0..65535 (for example 127.0.0.1:7787; port 0: "
             "any free port) or unix:PATH");
    }
}

namespace {

// What one plain connection attempt at a gRPC target (HOST:PORT or unix:PATH) finds, waiting at
// most `wait_ms` for an answer. `definite`: nothing can answer there now (an unknown host, a
// refused connection, no socket), as opposed to silence or a port that accepts.
struct Reach {
    std::string why;
    bool definite = false;
    // Definite whatever a server does next (an unknown host, a path that is no socket): not
    // worth asking again.
    bool lasting = false;
};

// Waits up to `wait_ms` for a non-blocking connect on `fd` to end; its errno value (0: open,
// ETIMEDOUT: no answer in time).
int finish_connect(int fd, int wait_ms) {
    pollfd p{fd, POLLOUT, 0};
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
        if (ready == 1) {
            int error = 0;
            socklen_t size = sizeof error;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
            return error;
        }
        if (ready == 0 || errno != EINTR || left.count() <= 0) return ETIMEDOUT;
    }
}

Reach reach(const std::string& target, int wait_ms) {
    if (target.rfind("unix:", 0) == 0) {
        const std::string path = target.substr(5);
        // grpc_target refuses such a path before any connection; kept for sun_path's size.
        if (const std::string why = socket_path_too_long(path); !why.empty()) {
            return {why, true, true};
        }
        std::error_code error;
        const auto status = std::filesystem::status(path, error);
        if (!std::filesystem::exists(status))
            return {"no socket " + path + " (is l2a serve running?)", true};
        if (status.type() != std::filesystem::file_type::socket)
            return {path + " is not a socket", true, true};
        sockaddr_un where{};
        where.sun_family = AF_UNIX;
        std::memcpy(where.sun_path, path.c_str(), path.size() + 1);
        // Non-blocking: a listener whose queue is full would hold a blocking connect forever.
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return {"nothing answers on the socket " + path};
        int failure = 0;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&where), sizeof where) != 0) {
            failure = errno;
        }
        ::close(fd);
        if (failure == ECONNREFUSED)
            return {"nothing listens on the socket " + path + " (is l2a serve running?)", true};
        if (failure == EACCES || failure == EPERM)
            return {"no permission to connect to the socket " + path, true, true};
        if (failure != 0 && failure != EAGAIN && failure != EINPROGRESS) {
            return {"no connection to the socket " + path + " (" + std::strerror(failure) + ")"};
        }
        return {"nothing answers on the socket " + path};
    }
    const Resolved resolved(target, false);
    if (!resolved.why.empty()) return {resolved.why, true, !resolved.temporary};
    if (!resolved.found) return {};
    // Each address: open (done), refused, silent, or failed at once (no route, no such address
    // family here). Nothing can answer when no address is open or silent; a refusal is then the
    // reason to name, since it says a host is there.
    const std::string silent = target + " does not answer within " +
                               format_fixed(wait_ms / 1e3, wait_ms % 1000 ? 1 : 0) +
                               " s (the host is down, or a firewall)";
    bool any_silent = false;
    bool any_refused = false;
    std::string failed_at_once;
    for (addrinfo* a = resolved.found; a; a = a->ai_next) {
        const int fd =
            ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        int error = 0;
        if (fd < 0) {
            error = errno;
        } else {
            if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
                error = errno;
                if (error == EINPROGRESS) error = finish_connect(fd, wait_ms);
            }
            ::close(fd);
        }
        if (error == 0) {
            return {target +
                    " accepts connections, but no l2a engine answered there (a server too busy or "
                    "stopped, a server with TLS reached by tcp://, or another program's port)"};
        }
        if (error == ECONNREFUSED) {
            any_refused = true;
        } else if (error == ETIMEDOUT) {
            any_silent = true;
        } else if (failed_at_once.empty()) {
            failed_at_once = "no connection to " + target + " (" + std::strerror(error) + ")";
        }
    }
    if (any_silent) return {silent};
    if (any_refused) {
        return {"nothing listens on " + target + " (connection refused; is l2a serve running?)",
                true};
    }
    return {failed_at_once, true};
}

}  // namespace

std::string why_unreachable(const std::string& target) { return reach(target, 3000).why; }

std::string refused_now(const std::string& target, bool& lasting) {
    const Reach r = reach(target, 500);
    lasting = r.definite && r.lasting;
    return r.definite ? r.why : "";
}

std::string why_cannot_listen(const std::string& listen) {
    if (listen.rfind("unix:", 0) == 0) return "";
    const Resolved resolved(listen, true);
    if (!resolved.why.empty()) return resolved.why;
    // A port in use or forbidden at any of the addresses is refused (gRPC would listen on the
    // others and share the clients with the server there); an address this machine lacks (no
    // IPv6 on its loopback) is left out, as gRPC leaves it, as long as one address binds.
    std::string missing;
    bool any_bound = false;
    for (addrinfo* a = resolved.found; a; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            if (missing.empty()) missing = std::strerror(errno);
            continue;
        }
        const int on = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        const bool bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
        const int error = errno;
        ::close(fd);
        if (bound) {
            any_bound = true;
        } else if (error == EADDRINUSE) {
            return "address in use: another server listens there";
        } else if (error == EACCES) {
            return "permission denied: ports below 1024 need privileges";
        } else if (missing.empty()) {
            missing = error == EADDRNOTAVAIL ? "not an address of this machine"
                                             : std::string(std::strerror(error));
        }
    }
    return any_bound ? "" : missing;
}

}  // namespace l2a::remote

namespace l2a {

std::string read_pem_file(const std::filesystem::path& path, const std::string& label,
                          const std::string& what) {
    std::string text = read_text_file(path);
    // Any "-----BEGIN ...<label>-----" block: "CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY"
    // (after "EC PARAMETERS", as openssl ecparam writes them).
    const std::string_view view(text);
    for (std::size_t begin = view.find("-----BEGIN "); begin != std::string_view::npos;
         begin = view.find("-----BEGIN ", begin + 11)) {
        const std::size_t end = view.find("-----", begin + 11);
        if (end == std::string_view::npos) break;
        if (view.substr(begin + 11, end - begin - 11).ends_with(label)) return text;
    }
    fail(path.string(), "not " + what + " (no -----BEGIN ..." + label + "----- line)");
}

std::string read_tls_ca_file(const std::filesystem::path& path, const std::string& url) {
    if (url.rfind("tls://", 0) != 0) {
        fail(path.string(), "a certificate authority is for tls:// engines only, not " + url);
    }
    return read_pem_file(path, "CERTIFICATE", "a PEM certificate");
}

void check_serve_address(const ServeOptions& o) {
    remote::check_listen_address(o.listen);
    const bool unix_socket = o.listen.rfind("unix:", 0) == 0;
    if (!unix_socket && !remote::is_loopback_listen(o.listen) && o.token.empty()) {
        fail("--listen " + o.listen,
             "a non-loopback address needs a token (--token-file FILE): anyone who reaches the "
             "port could run models on this machine");
    }
    if (const std::string why = remote::why_cannot_listen(o.listen); !why.empty()) {
        fail("--listen " + o.listen, "could not listen there (" + why + ")");
    }
}

}  // namespace l2a

namespace l2a::remote {

bool is_loopback_listen(const std::string& listen) {
    std::string host;
    int port = 0;
    if (!split_host_port(listen, host, port)) return false;
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string grpc_target(const std::string& url, bool& tls) {
    tls = false;
    if (url.rfind("unix:", 0) == 0 && url.size() > 5) {
        if (const std::string why = socket_path_too_long(url.substr(5)); !why.empty()) {
            fail("--engine " + url, why);
        }
        return url;
    }
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
    std::string token = text.substr(first, last - first + 1);
    // The token travels as an HTTP/2 header value: printable ASCII only (gRPC stops the process
    // on any other byte, so it is refused here, on the server as on the client).
    for (std::size_t i = 0; i < token.size(); ++i) {
        const auto c = static_cast<unsigned char>(token[i]);
        if (c < 0x20 || c > 0x7e) {
            char byte[8];
            std::snprintf(byte, sizeof byte, "0x%02x", c);
            fail(path.string(), "the token holds a byte that cannot be sent (" + std::string(byte) +
                                    " at character " + std::to_string(i + 1) +
                                    "): a token is printable ASCII only");
        }
    }
    return token;
}

}  // namespace l2a
