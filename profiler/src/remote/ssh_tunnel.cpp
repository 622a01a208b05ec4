#include "ssh_tunnel.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/profiler/remote.h"

namespace l2a::remote {
namespace {

struct SshTarget {
    std::string destination;  // [USER@]HOST
    std::string port;         // "" for ssh's default
    std::string program = "l2a";
    std::string models, docs, shape;
};

std::string quoted(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

SshTarget parse(const std::string& url) {
    SshTarget t;
    std::string rest = url.substr(6);  // after "ssh://"
    if (const std::size_t q = rest.find('?'); q != std::string::npos) {
        std::stringstream query(rest.substr(q + 1));
        rest.resize(q);
        std::string item;
        while (std::getline(query, item, '&')) {
            const std::size_t eq = item.find('=');
            const std::string key = item.substr(0, eq);
            const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
            if (key == "models") {
                t.models = value;
            } else if (key == "docs") {
                t.docs = value;
            } else if (key == "shape") {
                t.shape = value;
            } else {
                fail("--engine " + url, "unknown setting '" + key + "' (models, docs, shape)");
            }
        }
    }
    if (const std::size_t slash = rest.find('/'); slash != std::string::npos) {
        t.program = rest.substr(slash);
        rest.resize(slash);
    }
    if (const std::size_t colon = rest.rfind(':'); colon != std::string::npos) {
        t.port = rest.substr(colon + 1);
        rest.resize(colon);
        if (t.port.empty() || t.port.find_first_not_of("0123456789") != std::string::npos) {
            fail("--engine " + url, "the port after ':' is not a number");
        }
    }
    if (rest.empty() || rest.back() == '@') fail("--engine " + url, "no host after ssh://");
    t.destination = rest;
    return t;
}

std::string random_hex(int digits) {
    std::random_device device;
    std::string text;
    for (int i = 0; i < digits; ++i) text += "0123456789abcdef"[device() % 16];
    return text;
}

// The ssh process and its local socket folder; ends both when destroyed.
class Tunnel {
public:
    Tunnel(const std::string& url, const SshTarget& t) : url_(url) {
        char folder[] = "/tmp/l2a-ssh-XXXXXX";
        if (!::mkdtemp(folder)) fail("--engine " + url, "cannot make a private socket folder");
        folder_ = folder;
        local_ = folder_ / "engine.sock";
        const std::string remote_socket = "/tmp/l2a-serve-" + random_hex(16) + ".sock";
        std::string command = "exec " + quoted(t.program) + " serve --listen " +
                              quoted("unix:" + remote_socket) +
                              " --until-stdin-closes --quiet >/dev/null";
        if (!t.models.empty()) command += " --models " + quoted(t.models);
        if (!t.docs.empty()) command += " --docs " + quoted(t.docs);
        if (!t.shape.empty()) command += " --shape " + quoted(t.shape);

        std::vector<std::string> argv;
        const char* custom = std::getenv("L2A_SSH");
        std::stringstream words(custom && *custom ? custom : "ssh");
        for (std::string w; words >> w;) argv.push_back(w);
        for (const char* option :
             {"-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes", "-o",
              "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"}) {
            argv.emplace_back(option);
        }
        if (!t.port.empty()) {
            argv.emplace_back("-p");
            argv.push_back(t.port);
        }
        argv.emplace_back("-L");
        argv.push_back(local_.string() + ":" + remote_socket);
        argv.push_back(t.destination);
        argv.push_back(command);

        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) fail("--engine " + url, "cannot make a pipe for ssh");
        pid_ = ::fork();
        if (pid_ < 0) fail("--engine " + url, "cannot start ssh");
        if (pid_ == 0) {
            ::dup2(fds[0], STDIN_FILENO);  // the server ends when this pipe closes
            std::vector<char*> args;
            for (std::string& a : argv) args.push_back(a.data());
            args.push_back(nullptr);
            ::execvp(args[0], args.data());
            ::_exit(127);
        }
        ::close(fds[0]);
        stdin_ = fds[1];
    }

    ~Tunnel() {
        if (stdin_ >= 0) ::close(stdin_);
        if (pid_ > 0) {
            // The server sees its stdin close and stops; ssh then ends on its own.
            for (int i = 0; i < 20 && !exited(); ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            if (!exited()) {
                ::kill(pid_, SIGTERM);
                ::waitpid(pid_, nullptr, 0);
            }
        }
        std::error_code ignored;
        std::filesystem::remove_all(folder_, ignored);
    }

    // Whether ssh has ended (its status then in status_).
    bool exited() {
        if (done_) return true;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            done_ = true;
            status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        return done_;
    }

    // Waits until the forwarded socket answers, or ssh ends, or `seconds` pass.
    std::unique_ptr<Study> connect(double seconds, const std::atomic<bool>* cancel) {
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1e3));
        EngineAddress address;
        address.url = "unix:" + local_.string();
        std::string last;
        while (std::chrono::steady_clock::now() < until) {
            if (exited()) {
                fail("--engine " + url_,
                     "ssh ended with status " + std::to_string(status_) +
                         (status_ == 127 ? " (ssh not found, or l2a not found on the host)"
                                         : " before the engine answered (its message is above)"));
            }
            std::error_code error;
            if (std::filesystem::exists(local_, error)) {
                try {
                    engine_info(address, 2.0);
                    return connect_study(address, 5.0, cancel);
                } catch (const Error& e) {
                    last = e.what();
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        fail("--engine " + url_, "the engine did not answer through ssh within " +
                                     std::to_string(static_cast<int>(seconds)) + " s" +
                                     (last.empty() ? "" : " (" + last + ")"));
    }

private:
    std::string url_;
    std::filesystem::path folder_;
    std::filesystem::path local_;
    pid_t pid_ = -1;
    int stdin_ = -1;
    bool done_ = false;
    int status_ = 0;
};

// The remote study and the tunnel it runs through, ended in that order.
class SshStudy final : public Study {
public:
    SshStudy(std::string url, std::unique_ptr<Tunnel> tunnel, std::unique_ptr<Study> inner)
        : url_(std::move(url)), tunnel_(std::move(tunnel)), inner_(std::move(inner)) {}
    ~SshStudy() override { inner_.reset(); }

    std::string where() const override {
        const std::string w = inner_->where();
        const std::size_t colon = w.find(": ");
        return url_ + (colon == std::string::npos ? "" : w.substr(colon));
    }
    ModelSummary open_model(const ModelSpec& s, const StudyEvents& e) override {
        return inner_->open_model(s, e);
    }
    StudyRunResult run(const StudyRunSpec& s, const StudyEvents& e) override {
        return inner_->run(s, e);
    }
    void adopt(std::shared_ptr<const Profile> p, const std::string& o,
               const std::optional<ModelSpec>& m, const StudyEvents& e) override {
        inner_->adopt(std::move(p), o, m, e);
    }
    StudyWhatIfResult whatif(const RunOptions& v, int r, const StudyEvents& e) override {
        return inner_->whatif(v, r, e);
    }
    std::pair<TtftMeasurement, TtftMeasurement> measure_ttft(const RunOptions& v, int r,
                                                             const StudyEvents& e) override {
        return inner_->measure_ttft(v, r, e);
    }
    StudyExplanation explain(std::int64_t t, int l, const StudyEvents& e) override {
        return inner_->explain(t, l, e);
    }
    std::shared_ptr<const Profile> oracle(double m, const StudyEvents& e) override {
        return inner_->oracle(m, e);
    }
    StudyPruneResult suggest_prune(double m, const StudyEvents& e) override {
        return inner_->suggest_prune(m, e);
    }
    void cancel() override { inner_->cancel(); }

private:
    std::string url_;
    std::unique_ptr<Tunnel> tunnel_;
    std::unique_ptr<Study> inner_;
};

}  // namespace

void check_ssh_url(const std::string& url) { parse(url); }

std::unique_ptr<Study> open_ssh_study(const std::string& url, const std::atomic<bool>* cancel) {
    const SshTarget target = parse(url);
    auto tunnel = std::make_unique<Tunnel>(url, target);
    std::unique_ptr<Study> inner = tunnel->connect(30.0, cancel);
    return std::make_unique<SshStudy>(url, std::move(tunnel), std::move(inner));
}

}  // namespace l2a::remote
