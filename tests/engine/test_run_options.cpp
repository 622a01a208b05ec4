#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "l2a/engine/error.h"
#include "l2a/engine/run_options.h"
#include "test_support.h"

namespace l2a {
namespace {

// The message of the l2a::Error that `action` throws ("" when it does not throw).
template <typename Action>
std::string error_of(Action action) {
    return test::thrown_error(action).value_or("");
}

TEST(RunChoices, EveryNameParsesBackToItsValue) {
    for (Backend backend : kBackends) EXPECT_EQ(parse_backend(backend_name(backend)), backend);
    EXPECT_EQ(std::string(backend_name(Backend::Reference)), "reference");
    EXPECT_EQ(std::string(backend_name(Backend::Sdpa)), "sdpa");
    EXPECT_EQ(std::string(backend_name(Backend::Kernels)), "kernels");
    EXPECT_FALSE(parse_backend("Kernels").has_value());
    EXPECT_FALSE(parse_backend("").has_value());

    for (WeightDtype dtype :
         {WeightDtype::Auto, WeightDtype::Fp32, WeightDtype::Bf16, WeightDtype::Fp16}) {
        EXPECT_EQ(parse_weight_dtype(weight_dtype_name(dtype)), dtype);
    }
    EXPECT_EQ(parse_weight_dtype("bf16"), WeightDtype::Bf16);
    EXPECT_FALSE(parse_weight_dtype("bfloat16").has_value());
}

TEST(RunChoices, DevicesParseToKindAndIndex) {
    EXPECT_EQ(parse_device("cpu"), Device{});
    EXPECT_EQ(parse_device("cuda"), (Device{Device::Kind::Cuda, 0}));
    EXPECT_EQ(parse_device("cuda:3"), (Device{Device::Kind::Cuda, 3}));
    EXPECT_EQ(parse_device("cuda:1234"), (Device{Device::Kind::Cuda, 1234}));
    for (const char* bad :
         {"", "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:12345", "cuda0", "CPU"}) {
        EXPECT_FALSE(parse_device(bad).has_value()) << bad;
    }
    EXPECT_EQ(device_name(*parse_device("cuda")), "cuda:0");
    EXPECT_EQ(device_name(*parse_device("cuda:2")), "cuda:2");
    EXPECT_EQ(device_name(*parse_device("cpu")), "cpu");
    EXPECT_TRUE(is_cpu_device("cpu"));
    EXPECT_FALSE(is_cpu_device("cuda"));
}

TEST(RoutingPolicy, ParsesEveryKind) {
    EXPECT_EQ(RoutingPolicy::parse("learned").kind, RoutingKind::Learned);
    EXPECT_EQ(RoutingPolicy::parse("global").kind, RoutingKind::Global);
    EXPECT_EQ(RoutingPolicy::parse("local").kind, RoutingKind::Local);

    const RoutingPolicy random = RoutingPolicy::parse("random:0.2");
    EXPECT_EQ(random.kind, RoutingKind::Random);
    EXPECT_DOUBLE_EQ(random.fraction, 0.2);
    const RoutingPolicy top = RoutingPolicy::parse("top:0.05");
    EXPECT_EQ(top.kind, RoutingKind::Top);
    EXPECT_DOUBLE_EQ(top.fraction, 0.05);

    EXPECT_DOUBLE_EQ(RoutingPolicy::parse("random:0").fraction, 0.0);
    EXPECT_DOUBLE_EQ(RoutingPolicy::parse("random:1").fraction, 1.0);
    EXPECT_DOUBLE_EQ(RoutingPolicy::parse("top:1e-1").fraction, 0.1);
    EXPECT_DOUBLE_EQ(RoutingPolicy::parse(" top : 0.5 ").fraction, 0.5);
    EXPECT_FALSE(std::signbit(RoutingPolicy::parse("random:-0").fraction));
}

TEST(RoutingPolicy, DefaultIsLearned) {
    const RoutingPolicy policy;
    EXPECT_EQ(policy.kind, RoutingKind::Learned);
    EXPECT_EQ(policy.to_string(), "learned");
}

TEST(RoutingPolicy, RejectsBadText) {
    const std::string prefix = "--routing: ";
    for (const char* text : {"random", "random:1.5", "top:-1", "foo", "", "random:", "random:abc",
                             "random:0.2x", "random:nan", "top:inf", "learned:0.5", "global:1",
                             "Random:0.2", "top:0.1:0.2", "random:+0.2"}) {
        const std::string message = error_of([&] { RoutingPolicy::parse(text); });
        EXPECT_EQ(message.rfind(prefix, 0), 0u) << "'" << text << "' gave '" << message << "'";
    }
    EXPECT_NE(error_of([] { RoutingPolicy::parse("random"); }).find("needs a fraction"),
              std::string::npos);
    EXPECT_NE(error_of([] { RoutingPolicy::parse("random:1.5"); }).find("between 0 and 1"),
              std::string::npos);
    EXPECT_NE(error_of([] { RoutingPolicy::parse("top:-1"); }).find("between 0 and 1"),
              std::string::npos);
    EXPECT_NE(error_of([] { RoutingPolicy::parse("foo"); }).find("unknown policy 'foo'"),
              std::string::npos);
}

TEST(RoutingPolicy, ToStringRoundTrips) {
    EXPECT_EQ(RoutingPolicy::parse("random:0.2").to_string(), "random:0.2");
    EXPECT_EQ(RoutingPolicy::parse("top:0.05").to_string(), "top:0.05");
    EXPECT_EQ(RoutingPolicy::parse("top:1").to_string(), "top:1");
    EXPECT_EQ(RoutingPolicy::parse("global").to_string(), "global");
    EXPECT_EQ(RoutingPolicy::parse("local").to_string(), "local");
    for (double fraction : {0.0, 0.1, 1.0 / 3.0, 0.123456789012345, 1.0}) {
        for (RoutingKind kind : {RoutingKind::Random, RoutingKind::Top}) {
            RoutingPolicy policy;
            policy.kind = kind;
            policy.fraction = fraction;
            EXPECT_EQ(RoutingPolicy::parse(policy.to_string()), policy) << policy.to_string();
        }
    }
}

TEST(PruningPlan, ParsesSortsAndRemovesDuplicates) {
    EXPECT_EQ(parse_pruning_plan("0,5,7"), (PruningPlan{0, 5, 7}));
    EXPECT_EQ(parse_pruning_plan("7, 0 ,5"), (PruningPlan{0, 5, 7}));
    EXPECT_EQ(parse_pruning_plan("3,3,1,3"), (PruningPlan{1, 3}));
    EXPECT_EQ(parse_pruning_plan("12"), (PruningPlan{12}));
    EXPECT_EQ(parse_pruning_plan(""), PruningPlan{});
    EXPECT_EQ(parse_pruning_plan("   "), PruningPlan{});
}

TEST(PruningPlan, RejectsBadNumbers) {
    const std::string prefix = "--prune: ";
    for (const char* text : {"-1", "1,-2", "a", "1,b", "1.5", "1,,2", "1,", ",1", "1 2", "+3",
                             "99999999999999999999", "0x10"}) {
        const std::string message = error_of([&] { parse_pruning_plan(text); });
        EXPECT_EQ(message.rfind(prefix, 0), 0u) << "'" << text << "' gave '" << message << "'";
    }
    EXPECT_NE(error_of([] { parse_pruning_plan("4,-1"); }).find("negative"), std::string::npos);
    EXPECT_NE(error_of([] { parse_pruning_plan("x"); }).find("'x' is not a layer index"),
              std::string::npos);
}

TEST(PruningPlan, Formats) {
    EXPECT_EQ(format_pruning_plan({0, 5, 7}), "0,5,7");
    EXPECT_EQ(format_pruning_plan({}), "");
    EXPECT_EQ(format_pruning_plan({3}), "3");
    const PruningPlan plan = {1, 2, 30};
    EXPECT_EQ(parse_pruning_plan(format_pruning_plan(plan)), plan);
}

TEST(RunOptions, DefaultsAndEquality) {
    RunOptions a;
    EXPECT_EQ(a.max_tokens, 0);
    EXPECT_EQ(a.chunk_size, 256);
    EXPECT_EQ(a.kv_bytes_per_element, 2);
    EXPECT_EQ(a.routing.kind, RoutingKind::Learned);
    RunOptions b = a;
    EXPECT_EQ(a, b);
    b.prune = {3};
    EXPECT_NE(a, b);
}

}  // namespace
}  // namespace l2a
