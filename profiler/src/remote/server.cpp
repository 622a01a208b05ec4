// `l2a serve`: one Study per client session, one computation at a time across sessions (the
// others wait and are told how many are ahead), the session's base kept until it ends.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <thread>

#include "engine.grpc.pb.h"
#include "grpc_logs.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/run_choices.h"
#include "l2a/engine/shapes.h"
#include "l2a/profiler/remote.h"
#include "remote_common.h"
#include "wire.h"

namespace l2a {
namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using Stream = grpc::ServerReaderWriter<remote::ServerMessage, remote::ClientMessage>;

// Turns after one another: the engine (and its GPU) runs one request at a time.
class EngineQueue {
public:
    // Waits for this caller's turn; `waiting(ahead)` is told how many are ahead whenever that
    // changes. Throws Cancelled when `cancel` becomes true while waiting.
    void acquire(const std::atomic<bool>& cancel, const std::function<void(int)>& waiting) {
        std::unique_lock lock(mutex_);
        const std::uint64_t ticket = next_++;
        queue_.push_back(ticket);
        int told = -1;
        for (;;) {
            const auto at = std::find(queue_.begin(), queue_.end(), ticket);
            const int ahead = static_cast<int>(at - queue_.begin());
            if (ahead == 0) return;
            if (cancel.load()) {
                queue_.erase(at);
                changed_.notify_all();
                throw Cancelled();
            }
            if (ahead != told && waiting) {
                told = ahead;
                lock.unlock();
                waiting(ahead);
                lock.lock();
                continue;
            }
            changed_.wait_for(lock, std::chrono::milliseconds(100));
        }
    }
    void release() {
        std::lock_guard lock(mutex_);
        if (!queue_.empty()) queue_.pop_front();
        changed_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::uint64_t> queue_;
    std::uint64_t next_ = 0;
};

class Turn {
public:
    Turn(EngineQueue& queue, const std::atomic<bool>& cancel,
         const std::function<void(int)>& waiting)
        : queue_(queue) {
        queue_.acquire(cancel, waiting);
    }
    ~Turn() { queue_.release(); }
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;

private:
    EngineQueue& queue_;
};

// `path` inside `root` (both made absolute and normal): the path, else nothing.
std::optional<std::filesystem::path> inside(const std::filesystem::path& root,
                                            const std::filesystem::path& path) {
    if (root.empty()) return std::nullopt;
    std::error_code error;
    const std::filesystem::path base = std::filesystem::weakly_canonical(root, error);
    if (error) return std::nullopt;
    const std::filesystem::path full =
        std::filesystem::weakly_canonical(path.is_absolute() ? path : base / path, error);
    if (error) return std::nullopt;
    const auto [end, unused] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
    if (end != base.end()) return std::nullopt;
    return full;
}

std::string devices_text() {
    std::string text = "cpu";
    if (!cuda_built()) return text;
    for (int i = 0; i < cuda_device_count(); ++i) {
        text += ", cuda:" + std::to_string(i) + " " + cuda_device_info(i).name;
    }
    return text;
}

// Tensor parallel: what rank 0 tells the other ranks, in the order it runs things.
enum class FollowOp : std::uint8_t {
    Idle = 0,     // nothing (sent now and then, so that an idle group does not time out)
    Request = 1,  // a client's request (a ClientMessage) in a session
    Close = 2,    // a session ended
    Stop = 3,     // the server stops
};
constexpr std::size_t kFollowHeader = 9;  // op, then the session as 8 bytes
// How often an idle server tells the others it is still there (well within the group timeout).
constexpr auto kIdleInterval = std::chrono::seconds(10);

std::vector<std::byte> follow_message(FollowOp op, std::uint64_t session,
                                      const std::string& payload) {
    std::vector<std::byte> m(kFollowHeader + payload.size());
    m[0] = static_cast<std::byte>(op);
    std::memcpy(m.data() + 1, &session, sizeof session);
    std::memcpy(m.data() + kFollowHeader, payload.data(), payload.size());
    return m;
}

class Service final : public remote::Engine::Service {
public:
    explicit Service(const ServeOptions& options) : options_(options) {}

    // Rank 0 of a tensor-parallel server: tells the others `op`. Call only within a Turn, so
    // that the group sees one message at a time, in the order the requests run.
    void tell(FollowOp op, std::uint64_t session, const std::string& payload = {}) {
        if (!options_.group || stopped_) return;  // after Stop nobody listens
        options_.group->all_gather_bytes(follow_message(op, session, payload));
        if (op == FollowOp::Stop) stopped_ = true;
    }
    // The same within a turn of its own (a turn nothing cancels).
    void tell_in_turn(FollowOp op, std::uint64_t session) {
        const std::atomic<bool> never{false};
        const Turn turn(queue_, never, {});
        tell(op, session);
    }

    // Another rank's part of a request rank 0 runs: the same study call, nothing sent back
    // (rank 0 answers the client). Errors of the request itself (a missing file, a bad option,
    // a cancel) are rank 0's too, and this rank goes on with the next. A collective that failed
    // ("rank 1 of 2: all-reduce failed: ...") means the ranks are out of step: that ends this
    // rank with the error, and rank 0's next collective with it, rather than a confusing error
    // requests later.
    void follow(const remote::ClientMessage& request, Study& study) const {
        remote::ServerMessage reply;
        try {
            compute(request, study, {}, reply);
        } catch (const CollectiveFailed&) {
            throw;
        } catch (const std::exception&) {
        }
    }

    Status Hello(ServerContext* context, const remote::HelloRequest*,
                 remote::HelloReply* reply) override {
        if (Status s = authorize(*context); !s.ok()) return s;
        reply->set_version(tool_version());
        reply->set_devices(devices_text());
        for (const std::string& m : model_folders()) reply->add_models(m);
        for (const std::string& s : options_.shapes) reply->add_shapes(s);
        reply->set_documents(!options_.docs_root.empty());
        return Status::OK;
    }

    Status Session(ServerContext* context, Stream* stream) override {
        if (Status s = authorize(*context); !s.ok()) return s;
        const std::string peer = context->peer();
        log("session from " + peer + " opened");
        const std::uint64_t id = next_session_++;
        SessionState state(options_);
        // The reader: requests go to the queue; a Cancel (or the client going away) stops the
        // running request at once.
        std::thread reader([&] {
            remote::ClientMessage message;
            while (stream->Read(&message)) {
                if (message.has_cancel()) {
                    state.cancel = true;
                    continue;
                }
                std::lock_guard lock(state.mutex);
                state.requests.push_back(message);
                state.arrived.notify_all();
            }
            std::lock_guard lock(state.mutex);
            state.closed = true;
            state.cancel = true;
            state.arrived.notify_all();
        });
        for (;;) {
            remote::ClientMessage request;
            {
                std::unique_lock lock(state.mutex);
                state.arrived.wait(lock, [&] { return state.closed || !state.requests.empty(); });
                if (state.closed) break;
                request = std::move(state.requests.front());
                state.requests.pop_front();
                state.cancel = false;
            }
            if (!answer(request, state, *stream, peer, id)) break;
        }
        reader.join();
        if (options_.group) tell_in_turn(FollowOp::Close, id);
        log("session from " + peer + " closed");
        return Status::OK;
    }

private:
    struct SessionState {
        // Tensor parallel: the study never stops mid-request (the other ranks could not know).
        explicit SessionState(const ServeOptions& options)
            : study(make_local_study({.checkpoint_budget_bytes = options.checkpoint_budget_bytes,
                                      .cancel = options.group ? nullptr : &cancel,
                                      .group = options.group})) {}
        std::atomic<bool> cancel{false};
        std::unique_ptr<Study> study;
        std::mutex mutex;
        std::condition_variable arrived;
        std::deque<remote::ClientMessage> requests;
        bool closed = false;
    };

    Status authorize(const ServerContext& context) const {
        if (options_.token.empty()) return Status::OK;
        const auto& metadata = context.client_metadata();
        const auto found = metadata.find("authorization");
        if (found == metadata.end() ||
            std::string(found->second.data(), found->second.size()) != "Bearer " + options_.token) {
            log("refused " + context.peer() + ": wrong or missing token");
            return Status(StatusCode::UNAUTHENTICATED, "wrong or missing token");
        }
        return Status::OK;
    }

    std::vector<std::string> model_folders() const {
        std::vector<std::string> names;
        if (options_.models_root.empty()) return names;
        std::error_code error;
        for (const auto& entry :
             std::filesystem::recursive_directory_iterator(options_.models_root, error)) {
            if (entry.is_regular_file(error) && entry.path().filename() == "config.json") {
                names.push_back(
                    entry.path().parent_path().lexically_relative(options_.models_root).string());
            }
        }
        std::sort(names.begin(), names.end());
        return names;
    }

    // Tensor parallel: the group's collectives run where the server started them (Gloo on the
    // CPU; with --device cuda, NCCL with rank r on cuda:r), so a request for the other kind of
    // device cannot run: it is refused, naming both, and the server goes on serving.
    void check_device(const std::string& requested) const {
        const ProcessGroup* group = options_.group;
        if (!group || group->world() <= 1) return;
        const bool on_cpu = is_cpu_device(group->device());
        if (is_cpu_device(requested) == on_cpu) return;
        const std::string n = std::to_string(group->world());
        const std::string where = on_cpu
                                      ? std::string("the CPU")
                                      : "GPUs cuda:0 to cuda:" + std::to_string(group->world() - 1);
        fail("--device " + requested,
             "this server runs tensor parallel over " + n + " processes on " + where +
                 " (l2a serve --tensor-parallel " + n + (on_cpu ? "" : " --device cuda") +
                 "); ask for --device " + (on_cpu ? "cpu" : "cuda"));
    }

    // A client's model, as this server allows it: a folder under --models, the demo model, or
    // one of the --shape shapes, on the device kind of a tensor-parallel server's ranks.
    ModelSpec allowed(ModelSpec spec) const {
        check_device(spec.placement.device);
        if (!spec.shape.empty()) {
            if (std::find(options_.shapes.begin(), options_.shapes.end(), spec.shape) ==
                options_.shapes.end()) {
                fail(spec.shape,
                     "this server offers no such shape (it offers: " + join(options_.shapes) + ")");
            }
            return spec;
        }
        if (spec.folder.empty()) return spec;  // the demo model
        std::error_code error;
        const std::filesystem::path demo =
            std::filesystem::weakly_canonical(demo_model_dir(), error);
        if (!error && std::filesystem::weakly_canonical(spec.folder, error) == demo) {
            spec.folder.clear();
            return spec;
        }
        const std::optional<std::filesystem::path> found =
            inside(options_.models_root, spec.folder);
        if (!found) {
            fail(spec.folder.string(), options_.models_root.empty()
                                           ? "this server offers no model folders (no --models)"
                                           : "not a model folder under this server's --models");
        }
        spec.folder = *found;
        return spec;
    }

    DocumentSpec allowed(DocumentSpec document) const {
        if (document.path.empty()) return document;
        const std::optional<std::filesystem::path> found =
            inside(options_.docs_root, document.path);
        if (!found) {
            fail(document.path.string(),
                 options_.docs_root.empty()
                     ? "this server reads no documents of its own (no --docs): send the text"
                     : "not a document under this server's --docs");
        }
        if (document.label.empty()) document.label = document.path.string();
        document.path = *found;
        return document;
    }

    static std::string join(const std::vector<std::string>& items) {
        std::string text;
        for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
        return text.empty() ? "none" : text;
    }

    // Runs one request and writes its events and its answer. False when the client is gone.
    bool answer(const remote::ClientMessage& request, SessionState& state, Stream& stream,
                const std::string& peer, std::uint64_t session) {
        std::mutex write_mutex;
        const auto write = [&](const remote::ServerMessage& m) {
            std::lock_guard lock(write_mutex);
            return stream.Write(m);
        };
        StudyEvents events;
        events.step = [&](const std::string& text) {
            remote::ServerMessage m;
            m.mutable_step()->set_text(text);
            write(m);
        };
        events.progress = [&](double job, double step, const std::string& stage) {
            remote::ServerMessage m;
            m.mutable_progress()->set_job(job);
            m.mutable_progress()->set_step(step);
            m.mutable_progress()->set_stage(stage);
            write(m);
        };
        events.warning = [&](const std::string& text) {
            remote::ServerMessage m;
            m.mutable_warning()->set_text(text);
            write(m);
        };
        remote::ServerMessage reply;
        try {
            const Turn turn(queue_, state.cancel, [&](int ahead) {
                remote::ServerMessage m;
                m.mutable_queued()->set_ahead(ahead);
                write(m);
            });
            tell(FollowOp::Request, session, request.SerializeAsString());
            compute(request, *state.study, events, reply);
        } catch (const Cancelled&) {
            reply.mutable_failure()->set_message("run cancelled");
            reply.mutable_failure()->set_cancelled(true);
        } catch (const std::bad_alloc&) {
            reply.mutable_failure()->set_message(
                "out of host memory on the server: the run needs more than is free");
        } catch (const std::exception& e) {
            reply.mutable_failure()->set_message(e.what());
        }
        if (reply.has_failure() && !reply.failure().cancelled()) {
            log(peer + ": " + reply.failure().message());
        }
        return write(reply);
    }

    void compute(const remote::ClientMessage& request, Study& study, const StudyEvents& events,
                 remote::ServerMessage& reply) const {
        switch (request.kind_case()) {
            case remote::ClientMessage::kOpenModel: {
                const ModelSummary summary =
                    study.open_model(allowed(wire::get(request.open_model())), events);
                wire::put(summary, *reply.mutable_opened()->mutable_summary());
                reply.mutable_opened()->set_where(study.where());
                return;
            }
            case remote::ClientMessage::kRun: {
                StudyRunSpec spec = wire::get(request.run());
                check_device(spec.options.device);
                spec.document = allowed(std::move(spec.document));
                const StudyRunResult r = study.run(spec, events);
                reply.mutable_run()->set_profile(wire::profile_bytes(*r.profile));
                wire::put(r.report, *reply.mutable_run()->mutable_report());
                return;
            }
            case remote::ClientMessage::kAdopt: {
                const remote::AdoptRequest& a = request.adopt();
                auto profile = std::make_shared<const Profile>(
                    wire::profile_from_bytes(a.profile(), a.origin()));
                std::optional<ModelSpec> model;
                if (a.has_model()) {
                    model = allowed(wire::get(a.model()));
                } else {
                    // The folder the profile recorded, which must be one this server offers.
                    ModelSpec recorded;
                    recorded.folder = profile->model.path;
                    recorded.placement.device = profile->options.device;
                    if (!profile->dtype.empty()) recorded.placement.dtype = profile->dtype;
                    try {
                        model = allowed(recorded);
                    } catch (const Error& e) {
                        fail(a.origin(), std::string("was recorded with a model this server does "
                                                     "not offer (") +
                                             e.what() + "); give the model it was made with");
                    }
                }
                study.adopt(profile, a.origin(), model, events);
                reply.mutable_adopted();
                return;
            }
            case remote::ClientMessage::kWhatif: {
                const StudyWhatIfResult r = study.whatif(wire::get(request.whatif().variant()),
                                                         request.whatif().ttft_repeats(), events);
                reply.mutable_whatif()->set_variant(wire::profile_bytes(*r.variant));
                wire::put(*r.comparison, *reply.mutable_whatif()->mutable_comparison());
                reply.mutable_whatif()->set_run_seconds(r.run_seconds);
                return;
            }
            case remote::ClientMessage::kMeasureTtft: {
                const auto [base, variant] =
                    study.measure_ttft(wire::get(request.measure_ttft().variant()),
                                       request.measure_ttft().repeats(), events);
                wire::put(base, *reply.mutable_measured()->mutable_base());
                wire::put(variant, *reply.mutable_measured()->mutable_variant());
                return;
            }
            case remote::ClientMessage::kSuggestPrune: {
                const StudyPruneResult r =
                    study.suggest_prune(request.suggest_prune().max_dnll(), events);
                wire::put(r.suggestion, *reply.mutable_pruned()->mutable_suggestion());
                reply.mutable_pruned()->set_base_kv_bytes(r.base_kv_bytes);
                reply.mutable_pruned()->set_base_ttft_predicted(r.base_ttft_predicted);
                return;
            }
            case remote::ClientMessage::kExplain: {
                const StudyExplanation e =
                    study.explain(request.explain().token(), request.explain().layer(), events);
                wire::put(e, *reply.mutable_explained());
                return;
            }
            case remote::ClientMessage::kOracle: {
                const auto profile = study.oracle(request.oracle().min_mass(), events);
                reply.mutable_oracle()->set_profile(wire::profile_bytes(*profile));
                return;
            }
            case remote::ClientMessage::kCancel:
            case remote::ClientMessage::KIND_NOT_SET:
                break;
        }
        fail("request", "the server does not know this request (a newer client?)");
    }

    void log(const std::string& line) const {
        if (options_.log) options_.log(line);
    }

    const ServeOptions& options_;
    mutable EngineQueue queue_;
    std::atomic<std::uint64_t> next_session_{1};
    bool stopped_ = false;  // Stop was told (within a turn, like every tell)
};

}  // namespace

struct StudyServer::Impl {
    ServeOptions options;
    std::unique_ptr<Service> service;
    std::unique_ptr<grpc::Server> server;
    int port = 0;
    // Tensor parallel: the thread that keeps an idle group alive, and how it is stopped.
    std::thread idle;
    std::mutex idle_mutex;
    std::condition_variable idle_stop;
    bool stopping = false;
};

StudyServer::StudyServer(ServeOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = std::move(options);
    const ServeOptions& o = impl_->options;
    check_serve_address(o);
    const bool unix_socket = o.listen.rfind("unix:", 0) == 0;
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!o.tls_cert_pem.empty()) {
        grpc::SslServerCredentialsOptions ssl;
        ssl.pem_key_cert_pairs.push_back({o.tls_key_pem, o.tls_cert_pem});
        credentials = grpc::SslServerCredentials(ssl);
    }
    impl_->service = std::make_unique<Service>(impl_->options);
    remote::filter_grpc_logs();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(o.listen, credentials, unix_socket ? nullptr : &impl_->port);
    builder.RegisterService(impl_->service.get());
    builder.SetMaxReceiveMessageSize(static_cast<int>(
        std::clamp<std::int64_t>(o.max_message_bytes, 1024, std::numeric_limits<int>::max())));
    builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
    // Clients ping every few seconds so that a dead server is noticed; allow it.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // A client that vanished without closing its connection is noticed within 30 s; one busy
    // for a few seconds (the desktop app drawing, a client loading a model) keeps its session.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
    // A port another server holds is an error, not shared with it (gRPC sets SO_REUSEPORT by
    // default, and the kernel would split the clients between the two).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    const mode_t old_mask = unix_socket ? ::umask(077) : 0;
    impl_->server = builder.BuildAndStart();
    if (unix_socket) ::umask(old_mask);
    if (!impl_->server || (!unix_socket && impl_->port == 0)) {
        const std::string why = remote::why_cannot_listen(o.listen);
        fail("--listen " + o.listen,
             "could not listen there (" +
                 (why.empty() ? std::string("address in use, or not this machine's") : why) + ")");
    }
    if (o.group) {
        impl_->idle = std::thread([impl = impl_.get()] {
            std::unique_lock lock(impl->idle_mutex);
            while (
                !impl->idle_stop.wait_for(lock, kIdleInterval, [impl] { return impl->stopping; })) {
                lock.unlock();
                try {
                    impl->service->tell_in_turn(FollowOp::Idle, 0);
                } catch (const std::exception& e) {
                    if (impl->options.log)
                        impl->options.log(std::string("tensor parallel: ") + e.what());
                }
                lock.lock();
            }
        });
    }
}

StudyServer::~StudyServer() { shutdown(); }

int StudyServer::port() const { return impl_->port; }

void StudyServer::wait() {
    if (impl_->server) impl_->server->Wait();
}

void StudyServer::shutdown() {
    if (impl_->server) {
        // Running sessions see their stream cancelled, which cancels their run.
        impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
    if (impl_->idle.joinable()) {
        {
            std::lock_guard lock(impl_->idle_mutex);
            impl_->stopping = true;
        }
        impl_->idle_stop.notify_all();
        impl_->idle.join();
        // The other ranks end once the last request is done.
        try {
            impl_->service->tell_in_turn(FollowOp::Stop, 0);
        } catch (const std::exception& e) {
            if (impl_->options.log) impl_->options.log(std::string("tensor parallel: ") + e.what());
        }
    }
}

void follow_study_server(const ServeOptions& options, ProcessGroup& group) {
    Service service(options);
    std::map<std::uint64_t, std::unique_ptr<Study>> sessions;
    for (;;) {
        const std::vector<std::vector<std::byte>> all = group.all_gather_bytes({});
        const std::vector<std::byte>& m = all.front();
        if (m.size() < kFollowHeader) {
            fail("", "tensor parallel: rank 0 sent a message of " + std::to_string(m.size()) +
                         " bytes, not one of the server's");
        }
        std::uint64_t session = 0;
        std::memcpy(&session, m.data() + 1, sizeof session);
        switch (static_cast<FollowOp>(m[0])) {
            case FollowOp::Idle:
                break;
            case FollowOp::Stop:
                return;
            case FollowOp::Close:
                sessions.erase(session);
                break;
            case FollowOp::Request: {
                remote::ClientMessage request;
                if (!request.ParseFromArray(m.data() + kFollowHeader,
                                            static_cast<int>(m.size() - kFollowHeader))) {
                    fail("", "tensor parallel: rank 0 sent a request that does not parse");
                }
                std::unique_ptr<Study>& study = sessions[session];
                if (!study) {
                    study = make_local_study(
                        {.checkpoint_budget_bytes = options.checkpoint_budget_bytes,
                         .group = &group});
                }
                service.follow(request, *study);
                break;
            }
            default:
                fail("", "tensor parallel: rank 0 sent an unknown message (" +
                             std::to_string(static_cast<int>(m[0])) + ")");
        }
    }
}

bool remote_engine_built() { return true; }

}  // namespace l2a
