// The study service across a network: `l2a serve` runs a StudyServer on the machine with the
// GPU, and connect_study() gives a client a Study that runs there (gRPC over TCP, optionally
// TLS, or a Unix socket). The result of every call is what a local study returns: profiles
// travel back as .l2a bytes. Builds without gRPC report that the remote engine is missing.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/profiler/study.h"

namespace l2a {

// What a call on a remote study throws when the connection to the engine is gone (the server
// died, the network dropped, or an earlier call found it so): the study is of no more use.
class ConnectionLost : public Error {
public:
    explicit ConnectionLost(const std::string& message) : Error(message) {}
};

// Whether this build has the remote engine (gRPC was found when it was built).
bool remote_engine_built();

struct ServeOptions {
    // "HOST:PORT" (port 0: any free port), or "unix:PATH".
    std::string listen = "127.0.0.1:7787";
    // Clients must send it ("Bearer <token>"); may be empty only on loopback or a Unix socket.
    std::string token;
    // Model folders clients may open (relative names under it); empty: only the demo model and
    // --shape models.
    std::filesystem::path models_root;
    // Documents clients may name on the server (relative names under it); empty: clients send
    // their documents.
    std::filesystem::path docs_root;
    // Published shapes with random weights clients may open ("qwen3-8b").
    std::vector<std::string> shapes;
    // PEM text of a certificate and its key: TLS instead of plain TCP.
    std::string tls_cert_pem;
    std::string tls_key_pem;
    std::int64_t checkpoint_budget_bytes = kDefaultCheckpointBudgetBytes;
    // The largest message a client may send (documents, profiles to adopt).
    std::int64_t max_message_bytes = std::int64_t{256} << 20;
    // One line per event worth a log line (client connected, run started, failures).
    std::function<void(const std::string& line)> log;
    // Tensor parallel: this server is rank 0 of the group; the other ranks run
    // follow_study_server. Every session's study is split across the group, every request is
    // sent to the other ranks before it runs (one at a time, as always), and a client's cancel
    // takes effect once the running request is done (the ranks must stay in step). A request
    // for another kind of device than the group's (the CPU for a Gloo group, CUDA for an NCCL
    // one) is refused to its client with an error naming both.
    ProcessGroup* group = nullptr;
};

// What StudyServer checks before it listens, without listening: the --listen form, a token for
// a non-loopback address, and that HOST:PORT can be bound now (address in use, a port below
// 1024 without privileges, not this machine's address). Throws l2a::Error naming --listen. A
// tensor-parallel `l2a serve` calls it before it starts its other ranks.
void check_serve_address(const ServeOptions& options);

class StudyServer {
public:
    // Starts listening; throws l2a::Error (address in use, a non-loopback address without a
    // token, unreadable TLS files, no remote engine in this build).
    explicit StudyServer(ServeOptions options);
    ~StudyServer();  // shuts down: running calls are cancelled
    StudyServer(const StudyServer&) = delete;
    StudyServer& operator=(const StudyServer&) = delete;

    // The port bound (the chosen one when asked for 0); 0 for a Unix socket.
    int port() const;
    // Blocks until shutdown() (from another thread or a signal handler's thread).
    void wait();
    void shutdown();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Rank 1.. of a tensor-parallel `l2a serve`: makes the same study calls as rank 0's server, as
// rank 0 sends them, until rank 0 stops (returns) or the group fails (throws l2a::Error).
// `options` as rank 0's (models, documents, shapes, budget); it does not listen.
void follow_study_server(const ServeOptions& options, ProcessGroup& group);

struct EngineAddress {
    // "tcp://HOST:PORT", "tls://HOST:PORT", "unix:PATH", or
    // "ssh://[USER@]HOST[:PORT][/PATH/TO/l2a][?models=DIR&docs=DIR&shape=NAME]": `l2a serve`
    // started on HOST through the user's own ssh (their keys, agent and ~/.ssh/config; L2A_SSH
    // replaces the ssh program and its options), on a Unix socket of the host that ssh forwards
    // to a private local one; the server ends with the connection.
    std::string url;
    std::string token;
    std::string tls_ca_pem;  // tls://: the certificate authority to trust ("": the system's)
};

// A token file's token: its first line without surrounding white space. Throws l2a::Error
// naming the file when it cannot be read, holds no token, or a byte other than printable ASCII
// (a token is sent as a header value).
std::string read_engine_token(const std::filesystem::path& path);

// A PEM file's text (a server's certificate and key, a client's certificate authority): throws
// l2a::Error naming the file when it cannot be read or holds no "-----BEGIN ...<label>-----"
// line (`what`: "a PEM certificate").
std::string read_pem_file(const std::filesystem::path& path, const std::string& label,
                          const std::string& what);

// The certificate authority a client trusts for `url` (tls:// only: any other scheme is an
// error naming the file), read with read_pem_file.
std::string read_tls_ca_file(const std::filesystem::path& path, const std::string& url);

// Parses and checks an --engine value (as EngineAddress::url says); throws l2a::Error naming
// it otherwise.
void check_engine_url(const std::string& url);

// Connects (within `timeout_seconds`) and checks the token; throws l2a::Error naming the
// engine and the problem (unreachable, wrong token, another protocol). A lost connection later
// makes the running call throw l2a::Error "<url>: connection lost: ...".
// `cancel`: a flag of the caller's (a signal handler's, a worker's); while a call runs, its
// becoming true cancels the call on the engine as cancel() does.
std::unique_ptr<Study> connect_study(const EngineAddress& address, double timeout_seconds = 10.0,
                                     const std::atomic<bool>* cancel = nullptr);

// What a server offers, as Hello answers it.
struct EngineInfo {
    std::string version;
    std::string devices;
    std::vector<std::string> models;
    std::vector<std::string> shapes;
    bool documents = false;
};
EngineInfo engine_info(const EngineAddress& address, double timeout_seconds = 10.0);

}  // namespace l2a
