// The remote engine on loopback: a server in this process, clients that must get what a local
// study gives; tokens, queueing, cancellation, bad bytes and oversized messages.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/demo.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/profiler/remote.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::int32_t> some_tokens(std::size_t n) {
    std::vector<std::int32_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>((i * 53 + 7) % 256);
    return ids;
}

l2a::StudyRunSpec run_of(std::vector<std::int32_t> ids) {
    l2a::StudyRunSpec r;
    r.document.token_ids = std::move(ids);
    r.document.label = "ids";
    return r;
}

class Remote : public l2a::test::ScratchDirTest {
protected:
    Remote() : ScratchDirTest("remote") {}

    void SetUp() override {
        ScratchDirTest::SetUp();
        if (!l2a::remote_engine_built()) GTEST_SKIP() << "this build has no remote engine";
        models_ = dir_ / "models";
        l2a::ensure_untrained_model(models_ / "tiny");
    }

    void serve(l2a::ServeOptions options = {}) {
        options.listen = "127.0.0.1:0";
        options.models_root = models_;
        options.log = [this](const std::string& line) {
            std::lock_guard lock(log_mutex_);
            log_.push_back(line);
        };
        server_ = std::make_unique<l2a::StudyServer>(options);
    }

    l2a::EngineAddress address(std::string token = "") const {
        return {"tcp://127.0.0.1:" + std::to_string(server_->port()), std::move(token), ""};
    }

    l2a::ModelSpec tiny() const {
        l2a::ModelSpec spec;
        spec.folder = "tiny";
        return spec;
    }

    fs::path models_;
    std::unique_ptr<l2a::StudyServer> server_;
    std::mutex log_mutex_;
    std::vector<std::string> log_;
};

TEST_F(Remote, ARemoteRunAndWhatIfEqualLocalOnes) {
    serve();
    auto remote = l2a::connect_study(address());
    auto local = l2a::make_local_study();
    const l2a::ModelSummary r = remote->open_model(tiny());
    l2a::ModelSpec local_spec;
    local_spec.folder = models_ / "tiny";
    const l2a::ModelSummary l = local->open_model(local_spec);
    EXPECT_EQ(r.config_hash, l.config_hash);
    EXPECT_EQ(r.parameter_count, l.parameter_count);
    EXPECT_EQ(remote->where().rfind(address().url + ": cpu", 0), 0u) << remote->where();

    const auto a = remote->run(run_of(some_tokens(96))).profile;
    const auto b = local->run(run_of(some_tokens(96))).profile;
    EXPECT_EQ(a->decisions, b->decisions);
    ASSERT_EQ(a->token_nll.size(), b->token_nll.size());
    for (std::size_t t = 1; t < a->token_nll.size(); ++t) {
        EXPECT_NEAR(a->token_nll[t], b->token_nll[t], 1e-6) << t;
    }
    EXPECT_EQ(a->dtype, "fp32");
    EXPECT_EQ(a->model.path, b->model.path);

    l2a::RunOptions pruned = a->options;
    pruned.prune = {3};
    const auto wa = remote->whatif(pruned, 1);
    const auto wb = local->whatif(pruned, 1);
    EXPECT_EQ(wa.variant->decisions, wb.variant->decisions);
    EXPECT_NEAR(wa.comparison->delta_mean_nll, wb.comparison->delta_mean_nll, 1e-9);
    EXPECT_EQ(wa.comparison->start_layer, 3);
    EXPECT_EQ(wa.comparison->base_ttft.samples.size(), 1u);
    EXPECT_EQ(wa.comparison->delta_nll.size(), 96u);
    EXPECT_TRUE(std::isnan(wa.comparison->delta_nll[0]));

    const auto sa = remote->suggest_prune(1e9);
    const auto sb = local->suggest_prune(1e9);
    EXPECT_EQ(sa.suggestion.plan, sb.suggestion.plan);
    EXPECT_EQ(sa.base_kv_bytes, sb.base_kv_bytes);

    // The lens and the oracle cross the wire whole.
    const l2a::StudyExplanation ea = remote->explain(95, 2);
    const l2a::StudyExplanation eb = local->explain(95, 2);
    ASSERT_EQ(ea.lens.weights.size(), eb.lens.weights.size());
    for (std::size_t i = 0; i < ea.lens.weights.size(); ++i) {
        EXPECT_NEAR(ea.lens.weights[i], eb.lens.weights[i], 1e-6) << i;
    }
    EXPECT_EQ(ea.lens.local_weights.size(), eb.lens.local_weights.size());
    EXPECT_EQ(ea.decision, eb.decision);
    EXPECT_EQ(ea.lens.heads, eb.lens.heads);
    const auto oa = remote->oracle(0.4);
    const auto ob = local->oracle(0.4);
    ASSERT_EQ(oa->distant_mass.size(), ob->distant_mass.size());
    EXPECT_DOUBLE_EQ(oa->oracle_min_mass, 0.4);

    // A saved profile adopted by another session, with its recorded model.
    auto other = l2a::connect_study(address());
    other->adopt(a, "a.l2a", std::nullopt, {});
    EXPECT_EQ(other->whatif(pruned).variant->decisions, wa.variant->decisions);
}

TEST_F(Remote, EventsAndErrorsCrossTheWire) {
    serve();
    auto remote = l2a::connect_study(address());
    std::vector<std::string> steps;
    std::vector<double> job;
    l2a::StudyEvents events;
    events.step = [&](const std::string& s) { steps.push_back(s); };
    events.progress = [&](double j, double, const std::string&) { job.push_back(j); };
    remote->open_model(tiny(), events);
    remote->run(run_of(some_tokens(24)), events);
    EXPECT_EQ(steps, (std::vector<std::string>{"loading the model", "prefill of 24 tokens"}));
    ASSERT_FALSE(job.empty());
    EXPECT_TRUE(std::is_sorted(job.begin(), job.end()));
    EXPECT_DOUBLE_EQ(job.back(), 1.0);

    // The engine's message, said to come from there; the session goes on.
    EXPECT_CONTAINS(l2a::test::message_of([&] {
                        remote->run(run_of({1, 2, 99999}));
                    }),
                    "ids: token id 99999 at position 2 is outside the model's vocabulary");
    EXPECT_CONTAINS(l2a::test::message_of([&] {
                        remote->run(run_of({1, 2, 99999}));
                    }),
                    "(on " + address().url + ")");
    // Folders outside --models, and documents on the server without --docs, are refused.
    l2a::ModelSpec outside;
    outside.folder = "../../";
    EXPECT_CONTAINS(l2a::test::message_of([&] { remote->open_model(outside); }),
                    "not a model folder under this server's --models");
    l2a::StudyRunSpec named;
    named.document.path = "/etc/passwd";
    EXPECT_CONTAINS(l2a::test::message_of([&] { remote->run(named); }),
                    "this server reads no documents of its own");
    EXPECT_EQ(remote->run(run_of(some_tokens(8))).profile->num_tokens(), 8);
}

TEST_F(Remote, TheTokenIsRequiredWhenTheServerHasOne) {
    l2a::ServeOptions options;
    options.token = "s3cret";
    serve(options);
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::connect_study(address()); }), "token");
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::connect_study(address("wrong")); }),
                    "refused the token");
    auto study = l2a::connect_study(address("s3cret"));
    EXPECT_EQ(study->open_model(tiny()).num_layers, 6);
}

TEST_F(Remote, ANonLoopbackAddressNeedsAToken) {
    l2a::ServeOptions options;
    options.listen = "0.0.0.0:0";
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::StudyServer server(options); }),
                    "needs a token");
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::check_engine_url("http://x:1"); }),
                    "expected tcp://HOST:PORT");
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::check_engine_url("tcp://host"); }),
                    "HOST:PORT");
}

TEST_F(Remote, CancelStopsTheRunAndTheSessionGoesOn) {
    serve();
    auto remote = l2a::connect_study(address());
    remote->open_model(tiny());
    l2a::StudyEvents events;
    std::atomic<bool> asked{false};
    events.progress = [&](double job, double, const std::string&) {
        if (job > 0.2 && !asked.exchange(true)) remote->cancel();
    };
    EXPECT_THROW(remote->run(run_of(some_tokens(512)), events), l2a::Cancelled);
    EXPECT_EQ(remote->run(run_of(some_tokens(16))).profile->num_tokens(), 16);
}

TEST_F(Remote, TwoClientsTakeTurnsAndTheSecondIsToldItWaits) {
    serve();
    auto first = l2a::connect_study(address());
    auto second = l2a::connect_study(address());
    first->open_model(tiny());
    second->open_model(tiny());
    std::promise<void> started;
    std::atomic<bool> said{false};
    l2a::StudyEvents first_events;
    first_events.progress = [&](double, double, const std::string&) {
        if (!said.exchange(true)) started.set_value();
        // Hold the engine (the server waits on this client's flow of events only briefly).
    };
    auto a = std::async(std::launch::async, [&] {
        return first->run(run_of(some_tokens(4096)), first_events).profile->num_tokens();
    });
    started.get_future().wait();
    std::vector<std::string> steps;
    l2a::StudyEvents second_events;
    second_events.step = [&](const std::string& s) { steps.push_back(s); };
    EXPECT_EQ(second->run(run_of(some_tokens(32)), second_events).profile->num_tokens(), 32);
    EXPECT_EQ(a.get(), 4096);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front(), "waiting for the engine: 1 run ahead");
}

// TLS: a server with a certificate (self-signed, made here with openssl) answers a tls://
// client that trusts it, and refuses a plain-TCP one.
TEST_F(Remote, TlsWithACertificateTheClientTrusts) {
    const fs::path cert = dir_ / "cert.pem";
    const fs::path key = dir_ / "key.pem";
    const std::string make =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost -keyout " +
        l2a::test::shell_quote(key.string()) + " -out " + l2a::test::shell_quote(cert.string()) +
        " >/dev/null 2>&1";
    if (std::system(make.c_str()) != 0) GTEST_SKIP() << "openssl could not make a certificate";
    l2a::ServeOptions options;
    options.tls_cert_pem = l2a::test::read_file(cert);
    options.tls_key_pem = l2a::test::read_file(key);
    serve(options);
    const std::string port = std::to_string(server_->port());
    l2a::EngineAddress tls{"tls://localhost:" + port, "", options.tls_cert_pem};
    auto study = l2a::connect_study(tls);
    study->open_model(tiny());
    EXPECT_EQ(study->run(run_of(some_tokens(16))).profile->num_tokens(), 16);
    // Plain TCP to a TLS server, and TLS without trusting the certificate: refused.
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::connect_study(address(), 3.0); }),
                    address().url);
    l2a::EngineAddress untrusted{"tls://localhost:" + port, "", ""};
    EXPECT_CONTAINS(l2a::test::message_of([&] { l2a::connect_study(untrusted, 3.0); }),
                    "tls://localhost:" + port);
}

// Bytes that are not HTTP/2, and a message over the server's limit: refused, and the server
// keeps serving.
TEST_F(Remote, GarbageAndOversizedMessagesLeaveTheServerServing) {
    l2a::ServeOptions options;
    options.max_message_bytes = 64 << 10;
    serve(options);
    std::mt19937 rng(7);
    for (int attempt = 0; attempt < 5; ++attempt) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_GE(fd, 0);
        sockaddr_in where{};
        where.sin_family = AF_INET;
        where.sin_port = htons(static_cast<std::uint16_t>(server_->port()));
        where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&where), sizeof where), 0);
        std::string junk(4096, '\0');
        for (char& c : junk) c = static_cast<char>(rng());
        if (attempt == 0) junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        ASSERT_GT(::write(fd, junk.data(), junk.size()), 0);
        ::close(fd);
    }
    auto study = l2a::connect_study(address());
    study->open_model(tiny());
    l2a::StudyRunSpec big;
    big.document.text = std::string(200 << 10, 'a');
    const std::string refused = l2a::test::message_of([&] { study->run(big); });
    EXPECT_CONTAINS(refused, "too large");
    auto fresh = l2a::connect_study(address());
    fresh->open_model(tiny());
    EXPECT_EQ(fresh->run(run_of(some_tokens(8))).profile->num_tokens(), 8);
}

}  // namespace
