// The remote protocol's messages (engine.proto) from and to the study's types.
#pragma once

#include <string>
#include <vector>

#include "engine.pb.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/whatif.h"
#include "l2a/profiler/study.h"

namespace l2a::wire {

// A repeated protobuf field as a vector, and a vector into a repeated field.
template <typename To, typename From>
std::vector<To> vec(const From& from) {
    return std::vector<To>(from.begin(), from.end());
}

template <typename Field, typename From>
void fill(Field& to, const From& from) {
    to.Clear();
    to.Reserve(static_cast<int>(from.size()));
    for (const auto& v : from) to.Add(v);
}

void put(const RunOptions& from, remote::RunOptions& to);
RunOptions get(const remote::RunOptions& from);  // throws l2a::Error for a bad routing text

void put(const ModelSpec& from, remote::ModelSpec& to);
ModelSpec get(const remote::ModelSpec& from);

void put(const DocumentSpec& from, remote::DocumentSpec& to);
DocumentSpec get(const remote::DocumentSpec& from);

void put(const StudyRunSpec& from, remote::RunRequest& to);
StudyRunSpec get(const remote::RunRequest& from);

void put(const ModelSummary& from, remote::ModelSummary& to);
ModelSummary get(const remote::ModelSummary& from);

void put(const RunReport& from, remote::RunReport& to);
RunReport get(const remote::RunReport& from);

void put(const TtftMeasurement& from, remote::Ttft& to);
TtftMeasurement get(const remote::Ttft& from);

void put(const WhatIfComparison& from, remote::Comparison& to);
WhatIfComparison get(const remote::Comparison& from);

void put(const PruneSuggestion& from, remote::PruneSuggestion& to);
PruneSuggestion get(const remote::PruneSuggestion& from);

void put(const StudyExplanation& from, remote::Explained& to);
StudyExplanation get(const remote::Explained& from);

// A profile as the bytes of its .l2a file, and back (errors name `origin`).
std::string profile_bytes(const Profile& profile);
Profile profile_from_bytes(const std::string& bytes, const std::string& origin);

}  // namespace l2a::wire
