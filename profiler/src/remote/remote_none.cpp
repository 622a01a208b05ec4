// Builds without gRPC: the remote engine says it is missing.
#include "l2a/engine/error.h"
#include "l2a/profiler/remote.h"
#include "remote_common.h"

namespace l2a {
namespace {

[[noreturn]] void missing(const std::string& what) {
    fail(what,
         "this build has no remote engine (gRPC was not found when it was built; scripts/setup "
         "installs libgrpc++-dev and protobuf-compiler-grpc)");
}

}  // namespace

struct StudyServer::Impl {};

bool remote_engine_built() { return false; }

StudyServer::StudyServer(ServeOptions options) { missing("l2a serve " + options.listen); }
StudyServer::~StudyServer() = default;
int StudyServer::port() const { return 0; }
void StudyServer::wait() {}
void StudyServer::shutdown() {}
void follow_study_server(const ServeOptions&, ProcessGroup&) { missing("l2a serve"); }

void check_engine_url(const std::string& url) {
    if (url.rfind("ssh://", 0) == 0) return;
    bool tls = false;
    remote::grpc_target(url, tls);
}

std::unique_ptr<Study> connect_study(const EngineAddress& address, double,
                                     const std::atomic<bool>*) {
    missing("--engine " + address.url);
}

EngineInfo engine_info(const EngineAddress& address, double) { missing("--engine " + address.url); }

}  // namespace l2a
