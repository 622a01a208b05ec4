// A Study that runs on a remote `l2a serve`: each call is one request on the session's stream,
// answered by events and one result.
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "engine.grpc.pb.h"
#include "grpc_logs.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/units.h"
#include "l2a/profiler/remote.h"
#include "remote_common.h"
#include "ssh_tunnel.h"
#include "wire.h"

namespace l2a {

namespace remote {
namespace {

std::mutex g_tls_error_mutex;
// gRPC's last "Handshake failed ..." line in a client process, for its error line (leaked: gRPC's
// threads may log after static destructors ran).
std::string& g_tls_error = *new std::string;
// Set once this process opens a channel to an engine: a server prints handshake failures (its
// operator's only sign of a client without TLS), a client keeps them for its error.
std::atomic<bool> g_client{false};

// gRPC's default format: severity letter, then file:line, then the message.
void print_grpc_log(gpr_log_func_args* args) {
    const std::string_view message = args->message ? args->message : "";
    if (message.find("keepalive_ping_end state error") != std::string_view::npos) return;
    // A failed TLS handshake is retried until the deadline, a line each time: kept for the one
    // error line that ends the attempt instead.
    if (g_client.load() && message.find("Handshake failed") != std::string_view::npos) {
        const std::lock_guard lock(g_tls_error_mutex);
        g_tls_error = std::string(message);
        return;
    }
    // A server that cannot bind says so in its own error line (the address, and why).
    if (message.find("No address added out of total") != std::string_view::npos) return;
    const char* severity = gpr_log_severity_string(args->severity);
    std::fprintf(stderr, "%c %s:%d] %s\n", severity && *severity ? severity[0] : '?',
                 args->file ? args->file : "?", args->line, args->message ? args->message : "");
}

}  // namespace

void filter_grpc_logs() {
    static std::once_flag once;
    std::call_once(once, [] { gpr_set_log_function(print_grpc_log); });
}

std::string take_tls_handshake_error() {
    const std::lock_guard lock(g_tls_error_mutex);
    return std::exchange(g_tls_error, std::string());
}

}  // namespace remote

namespace {

using Stream = grpc::ClientReaderWriter<remote::ClientMessage, remote::ServerMessage>;

std::shared_ptr<grpc::Channel> open_channel(const EngineAddress& address) {
    remote::filter_grpc_logs();
    remote::g_client = true;
    bool tls = false;
    const std::string target = remote::grpc_target(address.url, tls);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
    args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
    // A network that drops silently, or a host that stops answering, is noticed within 25 s, not
    // at TCP's pace (a server that dies closes its socket: that is noticed at once). The answer
    // to a ping may take 20 s: a server host busy for a few seconds (loading a model, all its
    // cores in a CPU run) is not taken for dead.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (tls) {
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = address.tls_ca_pem;
        credentials = grpc::SslCredentials(ssl);
    }
    return grpc::CreateCustomChannel(target, credentials, args);
}

void add_token(grpc::ClientContext& context, const EngineAddress& address) {
    if (!address.token.empty()) context.AddMetadata("authorization", "Bearer " + address.token);
}

[[noreturn]] void fail_status(const EngineAddress& address, const grpc::Status& status,
                              const std::string& doing) {
    switch (status.error_code()) {
        case grpc::StatusCode::UNAUTHENTICATED:
            fail(address.url, "the engine refused the token (" + status.error_message() +
                                  "); give its token with --token-file FILE");
        case grpc::StatusCode::UNAVAILABLE:
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            fail(address.url, doing + ": " + status.error_message());
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
            fail(address.url,
                 "a message was too large for the engine (" + status.error_message() + ")");
        default:
            fail(address.url, doing + ": " + status.error_message());
    }
}

remote::HelloReply hello(const EngineAddress& address, remote::Engine::Stub& stub,
                         double timeout_seconds) {
    // Nothing can answer (an unknown host, a refused connection, no socket): said after about
    // 2 s, not after the whole wait, which is for a server that is busy. A server just starting
    // gets those 2 s to begin listening; an unknown host is said at once.
    const auto start = std::chrono::system_clock::now();
    const auto deadline =
        start + std::chrono::milliseconds(static_cast<std::int64_t>(timeout_seconds * 1e3));
    // The channel was made from this URL, so it reads as a target.
    bool tls = false;
    const std::string target = remote::grpc_target(address.url, tls);
    {
        const auto grace = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(
                               static_cast<std::int64_t>(std::min(2.0, timeout_seconds) * 1e3));
        for (;;) {
            bool lasting = false;
            const std::string why = remote::refused_now(target, lasting);
            if (why.empty()) break;
            if (lasting || std::chrono::steady_clock::now() >= grace) {
                fail(address.url, "cannot reach the engine: " + why);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    grpc::ClientContext context;
    add_token(context, address);
    context.set_deadline(deadline);
    context.set_wait_for_ready(true);  // until the deadline, in case the server is busy
    remote::HelloReply reply;
    remote::take_tls_handshake_error();  // an earlier connection's
    const grpc::Status status = stub.Hello(&context, remote::HelloRequest{}, &reply);
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        // gRPC says only that the deadline passed; its handshake log or a plain connection
        // attempt says why.
        const std::string handshake = tls ? remote::take_tls_handshake_error() : "";
        const std::string why =
            !handshake.empty()
                ? "the TLS handshake failed (" + handshake +
                      "): a server without TLS, or a certificate not trusted (--tls-ca)"
                : remote::why_unreachable(target);
        if (!why.empty()) {
            fail(address.url, "cannot reach the engine within " + format_fixed(timeout_seconds, 0) +
                                  " s: " + why);
        }
    }
    if (!status.ok()) fail_status(address, status, "cannot reach the engine");
    return reply;
}

class RemoteStudy final : public Study {
public:
    RemoteStudy(EngineAddress address, double timeout_seconds, const std::atomic<bool>* cancel)
        : cancel_flag_(cancel),
          address_(std::move(address)),
          channel_(open_channel(address_)),
          stub_(remote::Engine::NewStub(channel_)) {
        const remote::HelloReply reply = hello(address_, *stub_, timeout_seconds);
        devices_ = reply.devices();
        add_token(context_, address_);
        stream_ = stub_->Session(&context_);
        if (cancel_flag_) watcher_ = std::thread([this] { watch(); });
    }

    ~RemoteStudy() override {
        if (watcher_.joinable()) {
            {
                std::lock_guard lock(watch_mutex_);
                stopping_ = true;
            }
            watch_wake_.notify_all();
            watcher_.join();
        }
        std::lock_guard lock(write_mutex_);
        if (stream_ && !finished_) {
            stream_->WritesDone();
            context_.TryCancel();
            stream_->Finish().ok();
        }
    }

    std::string where() const override {
        return address_.url + ": " + (device_.empty() ? devices_ : device_);
    }

    ModelSummary open_model(const ModelSpec& spec, const StudyEvents& events) override {
        remote::ClientMessage request;
        wire::put(spec, *request.mutable_open_model());
        const remote::ServerMessage reply = call(request, events, remote::ServerMessage::kOpened);
        device_ = reply.opened().where();
        return wire::get(reply.opened().summary());
    }

    StudyRunResult run(const StudyRunSpec& spec, const StudyEvents& events) override {
        if (events.logits) {
            fail(address_.url, "the logits of a run are not sent back by a remote engine");
        }
        remote::ClientMessage request;
        wire::put(spec, *request.mutable_run());
        const remote::ServerMessage reply = call(request, events, remote::ServerMessage::kRun);
        StudyRunResult result;
        result.profile = std::make_shared<const Profile>(wire::profile_from_bytes(
            reply.run().profile(), address_.url + " (profile of the run)"));
        result.report = wire::get(reply.run().report());
        result.transfer_bytes = static_cast<std::int64_t>(reply.run().profile().size());
        if (events.tokens) events.tokens(result.profile->num_tokens());
        return result;
    }

    void adopt(std::shared_ptr<const Profile> profile, const std::string& origin,
               const std::optional<ModelSpec>& model, const StudyEvents& events) override {
        if (!profile) fail(origin, "no profile");
        remote::ClientMessage request;
        remote::AdoptRequest& a = *request.mutable_adopt();
        a.set_profile(wire::profile_bytes(*profile));
        a.set_origin(origin);
        if (model) wire::put(*model, *a.mutable_model());
        call(request, events, remote::ServerMessage::kAdopted);
    }

    StudyWhatIfResult whatif(const RunOptions& variant, int ttft_repeats,
                             const StudyEvents& events) override {
        remote::ClientMessage request;
        wire::put(variant, *request.mutable_whatif()->mutable_variant());
        request.mutable_whatif()->set_ttft_repeats(ttft_repeats);
        const remote::ServerMessage reply = call(request, events, remote::ServerMessage::kWhatif);
        StudyWhatIfResult result;
        result.variant = std::make_shared<const Profile>(wire::profile_from_bytes(
            reply.whatif().variant(), address_.url + " (profile of the variant)"));
        result.comparison =
            std::make_shared<const WhatIfComparison>(wire::get(reply.whatif().comparison()));
        result.run_seconds = reply.whatif().run_seconds();
        return result;
    }

    std::pair<TtftMeasurement, TtftMeasurement> measure_ttft(const RunOptions& variant, int repeats,
                                                             const StudyEvents& events) override {
        remote::ClientMessage request;
        wire::put(variant, *request.mutable_measure_ttft()->mutable_variant());
        request.mutable_measure_ttft()->set_repeats(repeats);
        const remote::ServerMessage reply = call(request, events, remote::ServerMessage::kMeasured);
        return {wire::get(reply.measured().base()), wire::get(reply.measured().variant())};
    }

    StudyExplanation explain(std::int64_t token, int layer, const StudyEvents& events) override {
        remote::ClientMessage request;
        request.mutable_explain()->set_token(token);
        request.mutable_explain()->set_layer(layer);
        return wire::get(call(request, events, remote::ServerMessage::kExplained).explained());
    }

    std::shared_ptr<const Profile> oracle(double min_mass, const StudyEvents& events) override {
        remote::ClientMessage request;
        request.mutable_oracle()->set_min_mass(min_mass);
        const remote::ServerMessage reply = call(request, events, remote::ServerMessage::kOracle);
        return std::make_shared<const Profile>(wire::profile_from_bytes(
            reply.oracle().profile(), address_.url + " (profile with the routing oracle)"));
    }

    StudyPruneResult suggest_prune(double max_dnll, const StudyEvents& events) override {
        remote::ClientMessage request;
        request.mutable_suggest_prune()->set_max_dnll(max_dnll);
        const remote::ServerMessage reply = call(request, events, remote::ServerMessage::kPruned);
        StudyPruneResult result;
        result.suggestion = wire::get(reply.pruned().suggestion());
        result.base_kv_bytes = reply.pruned().base_kv_bytes();
        result.base_ttft_predicted = reply.pruned().base_ttft_predicted();
        return result;
    }

    void cancel() override {
        remote::ClientMessage message;
        message.mutable_cancel();
        std::lock_guard lock(write_mutex_);
        if (stream_ && !finished_) stream_->Write(message);
    }

private:
    // While a call runs, the caller's flag becoming true sends the engine a cancel (once). An
    // engine that has not confirmed it kCancelGrace later (busy in work it cannot stop at once)
    // is left: the call's stream is cancelled here and the call ends as cancelled, so that
    // Ctrl-C always returns.
    void watch() {
        std::unique_lock lock(watch_mutex_);
        bool sent = false;
        std::chrono::steady_clock::time_point sent_at;
        while (!stopping_) {
            watch_wake_.wait_for(lock, std::chrono::milliseconds(100));
            if (!in_call_) {
                sent = false;
                continue;
            }
            if (!sent && cancel_flag_->load()) {
                sent = true;
                sent_at = std::chrono::steady_clock::now();
                lock.unlock();
                cancel();
                lock.lock();
            } else if (sent && !abandoned_ &&
                       std::chrono::steady_clock::now() - sent_at > kCancelGrace) {
                abandoned_ = true;
                context_.TryCancel();
            }
        }
    }

    struct InCall {
        explicit InCall(RemoteStudy& s) : study(s) {
            std::lock_guard lock(study.watch_mutex_);
            study.in_call_ = true;
        }
        ~InCall() {
            std::lock_guard lock(study.watch_mutex_);
            study.in_call_ = false;
        }
        RemoteStudy& study;
    };

    // Sends `request` and reads events until its answer, which must be of kind `expected`.
    remote::ServerMessage call(const remote::ClientMessage& request, const StudyEvents& events,
                               remote::ServerMessage::KindCase expected) {
        if (cancel_flag_ && cancel_flag_->load()) throw Cancelled();
        const InCall in_call(*this);
        bool written = false;
        {
            std::lock_guard lock(write_mutex_);
            if (finished_) {
                throw ConnectionLost(address_.url + ": the connection to the engine is closed");
            }
            written = stream_->Write(request);
        }
        // lost() takes the write lock itself.
        if (!written) lost();
        remote::ServerMessage message;
        for (;;) {
            if (!stream_->Read(&message)) {
                if (abandoned()) {
                    {
                        std::lock_guard lock(write_mutex_);
                        finished_ = true;
                    }
                    if (events.warning) {
                        events.warning(address_.url +
                                       ": the engine did not confirm the cancel "
                                       "within " +
                                       std::to_string(kCancelGrace.count()) +
                                       " s; the connection was closed (the engine stops the "
                                       "run when it notices)");
                    }
                    throw Cancelled();
                }
                lost();
            }
            switch (message.kind_case()) {
                case remote::ServerMessage::kQueued:
                    if (events.step) {
                        const int ahead = message.queued().ahead();
                        events.step("waiting for the engine: " + std::to_string(ahead) +
                                    (ahead == 1 ? " run" : " runs") + " ahead");
                    }
                    continue;
                case remote::ServerMessage::kStep:
                    if (events.step) events.step(message.step().text());
                    continue;
                case remote::ServerMessage::kProgress:
                    if (events.progress) {
                        events.progress(message.progress().job(), message.progress().step(),
                                        message.progress().stage());
                    }
                    continue;
                case remote::ServerMessage::kWarning:
                    if (events.warning) events.warning(message.warning().text());
                    continue;
                case remote::ServerMessage::kFailure:
                    if (message.failure().cancelled()) throw Cancelled();
                    // The engine's own message names its file or input; say where it ran.
                    throw Error(message.failure().message() + " (on " + address_.url + ")");
                default:
                    break;
            }
            if (message.kind_case() != expected) {
                fail(address_.url, "the engine answered with another kind of message");
            }
            return message;
        }
    }

    [[noreturn]] void lost() {
        std::lock_guard lock(write_mutex_);
        finished_ = true;
        const grpc::Status status = stream_->Finish();
        const std::string why =
            status.ok() ? "the engine ended the session" : status.error_message();
        if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
            status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            fail_status(address_, status, "");
        }
        throw ConnectionLost(address_.url + ": connection lost: " + why);
    }

    bool abandoned() {
        std::lock_guard lock(watch_mutex_);
        return abandoned_;
    }

    static constexpr std::chrono::seconds kCancelGrace{10};

    const std::atomic<bool>* cancel_flag_;
    bool abandoned_ = false;  // guarded by watch_mutex_
    std::thread watcher_;
    std::mutex watch_mutex_;
    std::condition_variable watch_wake_;
    bool in_call_ = false;
    bool stopping_ = false;
    EngineAddress address_;
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<remote::Engine::Stub> stub_;
    grpc::ClientContext context_;
    std::unique_ptr<Stream> stream_;
    std::mutex write_mutex_;
    bool finished_ = false;
    std::string devices_;
    std::string device_;
};

}  // namespace

void check_engine_url(const std::string& url) {
    if (url.rfind("ssh://", 0) == 0) {
        remote::check_ssh_url(url);
        return;
    }
    bool tls = false;
    remote::grpc_target(url, tls);
}

std::unique_ptr<Study> connect_study(const EngineAddress& address, double timeout_seconds,
                                     const std::atomic<bool>* cancel) {
    check_engine_url(address.url);
    if (address.url.rfind("ssh://", 0) == 0) return remote::open_ssh_study(address.url, cancel);
    return std::make_unique<RemoteStudy>(address, timeout_seconds, cancel);
}

EngineInfo engine_info(const EngineAddress& address, double timeout_seconds) {
    check_engine_url(address.url);
    auto stub = remote::Engine::NewStub(open_channel(address));
    const remote::HelloReply reply = hello(address, *stub, timeout_seconds);
    EngineInfo info;
    info.version = reply.version();
    info.devices = reply.devices();
    info.models.assign(reply.models().begin(), reply.models().end());
    info.shapes.assign(reply.shapes().begin(), reply.shapes().end());
    info.documents = reply.documents();
    return info;
}

}  // namespace l2a
