// Chrome Trace Event JSON ("JSON Object Format"): opens in Perfetto and chrome://tracing.
// Viewers draw a track's complete events as a flame chart and mis-draw partial overlaps, so each
// track is laid out to nest properly before it is written.
#include <algorithm>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "export_support.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/profiler/export.h"

namespace l2a {
namespace {

using json = nlohmann::ordered_json;

constexpr int kHostPid = 1;
constexpr int kHostTid = 1;
constexpr int kFirstGpuPid = 2;

double micros(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

// One complete event before it is placed on a track.
struct Span {
    std::int64_t begin = 0;
    std::int64_t end = 0;
    int depth = 0;  // orders a parent before a child that starts and ends with it
    json event;     // everything but pid and tid
};

// Splits `spans` into lanes in which every pair of events is either disjoint or nested; the
// first lane gets whatever fits, so well-formed input stays on one lane.
std::vector<std::vector<Span>> nest_into_lanes(std::vector<Span> spans) {
    std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
        return std::tuple(a.begin, -a.end, a.depth) < std::tuple(b.begin, -b.end, b.depth);
    });
    std::vector<std::vector<Span>> lanes;
    std::vector<std::vector<std::int64_t>> open_ends;  // per lane: ends of the enclosing events
    for (Span& span : spans) {
        std::size_t lane = 0;
        for (; lane < lanes.size(); ++lane) {
            auto& ends = open_ends[lane];
            while (!ends.empty() && ends.back() <= span.begin) ends.pop_back();
            if (ends.empty() || ends.back() >= span.end) break;
        }
        if (lane == lanes.size()) {
            lanes.emplace_back();
            open_ends.emplace_back();
        }
        open_ends[lane].push_back(span.end);
        lanes[lane].push_back(std::move(span));
    }
    return lanes;
}

json metadata_event(const char* name, int pid, int tid, json args) {
    return {{"name", name}, {"ph", "M"},  {"ts", 0},
            {"pid", pid},   {"tid", tid}, {"args", std::move(args)}};
}

// The name of the range a kernel or memory operation lies in ("" for none).
std::string launching_range_name(const Profile& p, std::int64_t range) {
    return range >= 0 && range < static_cast<std::int64_t>(p.ranges.size())
               ? range_name(p.ranges[static_cast<std::size_t>(range)])
               : std::string();
}

}  // namespace

std::string profile_to_chrome_trace(const Profile& p) {
    export_support::check_arrays(p, "chrome trace");
    json events = json::array();
    json metadata = json::array();

    auto write_lanes = [&](std::vector<Span> spans, int pid, int& next_tid,
                           const std::string& track_name, int sort_index) {
        auto lanes = nest_into_lanes(std::move(spans));
        for (std::size_t lane = 0; lane < lanes.size(); ++lane) {
            const int tid = next_tid++;
            const std::string name =
                lane == 0 ? track_name : track_name + " (overlap " + std::to_string(lane) + ")";
            metadata.push_back(metadata_event("thread_name", pid, tid, {{"name", name}}));
            metadata.push_back(
                metadata_event("thread_sort_index", pid, tid,
                               {{"sort_index", sort_index + static_cast<int>(lane)}}));
            for (Span& span : lanes[lane]) {
                span.event["pid"] = pid;
                span.event["tid"] = tid;
                events.push_back(std::move(span.event));
            }
        }
    };

    // Host ranges.
    metadata.push_back(metadata_event("process_name", kHostPid, 0, {{"name", "L2A host"}}));
    metadata.push_back(metadata_event("process_sort_index", kHostPid, 0, {{"sort_index", 0}}));
    // Rank 0's on the "ranges" track; in a tensor-parallel run each other rank's on its own
    // ("rank 1", ...), below it.
    std::map<std::int32_t, std::vector<Span>> host;
    for (std::size_t i = 0; i < p.ranges.size(); ++i) {
        const TimedRange& r = p.ranges[i];
        json args = {{"depth", r.depth}, {"index", i}};
        if (p.tensor_parallel > 1) args["rank"] = r.rank;
        host[r.rank].push_back({r.begin_ns,
                                r.end_ns,
                                r.depth,
                                {{"name", range_name(r)},
                                 {"cat", r.phase == Phase::AllReduce ? "collective" : "range"},
                                 {"ph", "X"},
                                 {"ts", micros(r.begin_ns)},
                                 {"dur", micros(r.end_ns - r.begin_ns)},
                                 {"args", std::move(args)}}});
    }
    int host_tid = kHostTid;
    int host_sort = 0;
    for (auto& [rank, spans] : host) {
        write_lanes(std::move(spans), kHostPid, host_tid,
                    rank == 0 ? std::string("ranges") : "rank " + std::to_string(rank), host_sort);
        host_sort += 100;
    }

    // The routed fraction of each layer, from the moment the layer starts.
    std::vector<std::int64_t> layer_start(static_cast<std::size_t>(p.num_layers), -1);
    for (const TimedRange& r : p.ranges) {
        if (r.rank != 0 || !is_layer_phase(r.phase) || r.layer < 0 || r.layer >= p.num_layers)
            continue;
        auto& start = layer_start[static_cast<std::size_t>(r.layer)];
        if (start < 0 || r.begin_ns < start) start = r.begin_ns;
    }
    std::vector<std::pair<std::int64_t, json>> counters;
    for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
        // Without ranges the samples are spread 1 µs apart so that each layer still has its own.
        std::int64_t ts = layer_start[static_cast<std::size_t>(layer)];
        if (ts < 0) ts = layer * 1000;
        const double fraction = export_support::global_fraction(p, layer);
        counters.emplace_back(
            ts, json{{"name", "routed fraction"},
                     {"cat", "routing"},
                     {"ph", "C"},
                     {"ts", micros(ts)},
                     {"pid", kHostPid},
                     {"tid", 0},
                     {"args", {{"routed", std::isfinite(fraction) ? fraction : 0.0}}}});
    }
    std::stable_sort(counters.begin(), counters.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [ts, event] : counters) events.push_back(std::move(event));

    // Kernels and memory operations: a process per GPU (in a tensor-parallel run, per rank and
    // its GPU), a track per stream.
    const bool ranked = p.tensor_parallel > 1;
    std::map<std::tuple<std::int32_t, std::int32_t, std::int32_t>, std::vector<Span>> streams;
    for (const KernelRecord& k : p.kernels) {
        json args = {{"range", launching_range_name(p, k.range)}, {"stream", k.stream_id}};
        if (ranked) args["rank"] = k.rank;
        streams[{k.rank, k.device_id, k.stream_id}].push_back(
            {k.begin_ns,
             k.end_ns,
             0,
             {{"name", k.name},
              {"cat", "kernel"},
              {"ph", "X"},
              {"ts", micros(k.begin_ns)},
              {"dur", micros(k.end_ns - k.begin_ns)},
              {"args", std::move(args)}}});
    }
    for (const MemoryOpRecord& m : p.memory_ops) {
        const bool set = m.kind == MemoryOpKind::Set;
        json args = {{"bytes", m.bytes}, {"range", launching_range_name(p, m.range)}};
        if (ranked) args["rank"] = m.rank;
        streams[{m.rank, m.device_id, m.stream_id}].push_back(
            {m.begin_ns,
             m.end_ns,
             0,
             {{"name", memory_op_kind_name(m.kind)},
              {"cat", set ? "memset" : "memcpy"},
              {"ph", "X"},
              {"ts", micros(m.begin_ns)},
              {"dur", micros(m.end_ns - m.begin_ns)},
              {"args", std::move(args)}}});
    }
    std::map<std::pair<std::int32_t, std::int32_t>, int> device_pid;  // (rank, device) -> pid
    std::map<int, int> next_tid;
    int sort_index = 0;
    for (auto& [key, spans] : streams) {
        const auto [rank, device, stream] = key;
        auto [it, added] = device_pid.try_emplace(
            {rank, device}, kFirstGpuPid + static_cast<int>(device_pid.size()));
        const int pid = it->second;
        if (added) {
            std::string label = "GPU " + std::to_string(device);
            if (ranked) label = "rank " + std::to_string(rank) + ", " + label;
            if (!p.device.empty() && p.device != "cpu") label += ": " + p.device;
            metadata.push_back(metadata_event("process_name", pid, 0, {{"name", label}}));
            metadata.push_back(metadata_event("process_sort_index", pid, 0, {{"sort_index", pid}}));
            next_tid[pid] = 1;
        }
        write_lanes(std::move(spans), pid, next_tid[pid], "stream " + std::to_string(stream),
                    sort_index);
        sort_index += 1000;
    }

    for (json& event : events) metadata.push_back(std::move(event));
    json trace;
    trace["traceEvents"] = std::move(metadata);
    trace["displayTimeUnit"] = "ns";
    trace["otherData"] = {
        {"tool", "l2a " + p.tool_version},
        {"created_at", p.created_at},
        {"model", p.model.path},
        {"document", p.document_path},
        {"tokens", p.num_tokens()},
        {"device", p.device},
        {"backend", p.options.backend},
        {"routing", p.options.routing.to_string()},
        {"timeline_source", p.timeline_source},
        {"tensor_parallel", p.tensor_parallel},
    };
    return trace.dump(-1, ' ', false, json::error_handler_t::replace);
}

void export_chrome_trace(const Profile& profile, const std::filesystem::path& path) {
    write_text_atomically(path, profile_to_chrome_trace(profile) + "\n");
}

}  // namespace l2a
