#include "l2a/profiler/rank_timeline.h"

#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "l2a/engine/error.h"

namespace l2a {
namespace {

// The part of one rank: int64 words and length-prefixed names, in this order:
//   started_ns, ranges, kernels, memory operations (the three counts), then
//   per range:  phase, layer, begin_ns, end_ns, depth, other_name length, its bytes
//   per kernel: stream, device, begin_ns, end_ns, range, name length, the name's bytes
//   per memory operation: kind, bytes, stream, device, begin_ns, end_ns, range
class Writer {
public:
    void word(std::int64_t v) {
        const auto* b = reinterpret_cast<const std::byte*>(&v);
        bytes_.insert(bytes_.end(), b, b + sizeof v);
    }
    void text(std::string_view s) {
        word(static_cast<std::int64_t>(s.size()));
        const auto* b = reinterpret_cast<const std::byte*>(s.data());
        bytes_.insert(bytes_.end(), b, b + s.size());
    }
    std::vector<std::byte> take() { return std::move(bytes_); }

private:
    std::vector<std::byte> bytes_;
};

class Reader {
public:
    Reader(const std::vector<std::byte>& bytes, std::size_t rank) : bytes_(bytes), rank_(rank) {}

    std::int64_t word() {
        need(sizeof(std::int64_t));
        std::int64_t v = 0;
        std::memcpy(&v, bytes_.data() + at_, sizeof v);
        at_ += sizeof v;
        return v;
    }
    std::string text() {
        const std::int64_t n = word();
        if (n < 0) damaged("a name of negative length");
        need(static_cast<std::size_t>(n));
        std::string s(reinterpret_cast<const char*>(bytes_.data() + at_),
                      static_cast<std::size_t>(n));
        at_ += static_cast<std::size_t>(n);
        return s;
    }
    // A count of records of at least `least` bytes each that the rest of the part can hold.
    std::size_t count(std::size_t least) {
        const std::int64_t n = word();
        if (n < 0 || static_cast<std::uint64_t>(n) > (bytes_.size() - at_) / least) {
            damaged("a count of " + std::to_string(n) + " records");
        }
        return static_cast<std::size_t>(n);
    }
    std::int32_t narrow(std::int64_t v, const char* what) {
        if (v < INT32_MIN || v > INT32_MAX) {
            damaged(std::string(what) + " " + std::to_string(v) + " out of range");
        }
        return static_cast<std::int32_t>(v);
    }
    // The next word as a value of the enumeration 0..last.
    template <typename Enum>
    Enum enumerated(Enum last, const char* what) {
        const std::int64_t v = word();
        if (v < 0 || v > static_cast<std::int64_t>(last)) {
            damaged(std::string(what) + " " + std::to_string(v));
        }
        return static_cast<Enum>(v);
    }
    bool done() const { return at_ == bytes_.size(); }
    [[noreturn]] void damaged(const std::string& what) const {
        fail("", "tensor parallel: the timeline rank " + std::to_string(rank_) +
                     " sent is damaged (" + what + ")");
    }

private:
    void need(std::size_t n) const {
        if (bytes_.size() - at_ < n) damaged("it ends early");
    }
    const std::vector<std::byte>& bytes_;
    std::size_t rank_;
    std::size_t at_ = 0;
};

constexpr std::size_t kWord = sizeof(std::int64_t);

}  // namespace

std::vector<std::byte> encode_rank_timeline(const Profile& profile, std::int64_t started_ns) {
    Writer w;
    w.word(started_ns);
    w.word(static_cast<std::int64_t>(profile.ranges.size()));
    w.word(static_cast<std::int64_t>(profile.kernels.size()));
    w.word(static_cast<std::int64_t>(profile.memory_ops.size()));
    for (const TimedRange& r : profile.ranges) {
        for (std::int64_t v :
             {static_cast<std::int64_t>(r.phase), static_cast<std::int64_t>(r.layer), r.begin_ns,
              r.end_ns, static_cast<std::int64_t>(r.depth)}) {
            w.word(v);
        }
        w.text(r.other_name);
    }
    for (const KernelRecord& k : profile.kernels) {
        for (std::int64_t v :
             {static_cast<std::int64_t>(k.stream_id), static_cast<std::int64_t>(k.device_id),
              k.begin_ns, k.end_ns, k.range}) {
            w.word(v);
        }
        w.text(k.name);
    }
    for (const MemoryOpRecord& m : profile.memory_ops) {
        for (std::int64_t v :
             {static_cast<std::int64_t>(m.kind), m.bytes, static_cast<std::int64_t>(m.stream_id),
              static_cast<std::int64_t>(m.device_id), m.begin_ns, m.end_ns, m.range}) {
            w.word(v);
        }
    }
    return w.take();
}

void merge_rank_timelines(Profile& profile, const std::vector<std::vector<std::byte>>& parts) {
    if (parts.empty()) fail("", "tensor parallel: no rank's timeline to merge");
    std::vector<TimedRange> ranges;
    std::vector<KernelRecord> kernels;
    std::vector<MemoryOpRecord> memory_ops;
    std::int64_t rank0_started = 0;
    for (std::size_t rank = 0; rank < parts.size(); ++rank) {
        Reader in(parts[rank], rank);
        const std::int64_t started = in.word();
        if (rank == 0) rank0_started = started;
        const std::int64_t shift = started - rank0_started;
        const std::size_t num_ranges = in.count(6 * kWord);
        const std::size_t num_kernels = in.count(6 * kWord);
        const std::size_t num_ops = in.count(7 * kWord);
        const auto first_range = static_cast<std::int64_t>(ranges.size());
        const auto rank32 = static_cast<std::int32_t>(rank);
        // A record's range: one of this rank's, moved to where it lands; -1 stays.
        auto moved_range = [&](std::int64_t range) {
            if (range < -1 || range >= static_cast<std::int64_t>(num_ranges)) {
                in.damaged("range index " + std::to_string(range) + " of " +
                           std::to_string(num_ranges) + " ranges");
            }
            return range < 0 ? range : range + first_range;
        };
        for (std::size_t i = 0; i < num_ranges; ++i) {
            TimedRange r;
            r.phase = in.enumerated(Phase::AllReduce, "phase");
            r.layer = in.narrow(in.word(), "layer");
            r.begin_ns = in.word() + shift;
            r.end_ns = in.word() + shift;
            r.depth = in.narrow(in.word(), "depth");
            r.other_name = in.text();
            r.rank = rank32;
            ranges.push_back(std::move(r));
        }
        for (std::size_t i = 0; i < num_kernels; ++i) {
            KernelRecord k;
            k.stream_id = in.narrow(in.word(), "stream");
            k.device_id = in.narrow(in.word(), "device");
            k.begin_ns = in.word() + shift;
            k.end_ns = in.word() + shift;
            k.range = moved_range(in.word());
            k.name = in.text();
            k.rank = rank32;
            kernels.push_back(std::move(k));
        }
        for (std::size_t i = 0; i < num_ops; ++i) {
            MemoryOpRecord m;
            m.kind = in.enumerated(MemoryOpKind::Set, "memory operation kind");
            m.bytes = in.word();
            m.stream_id = in.narrow(in.word(), "stream");
            m.device_id = in.narrow(in.word(), "device");
            m.begin_ns = in.word() + shift;
            m.end_ns = in.word() + shift;
            m.range = moved_range(in.word());
            m.rank = rank32;
            memory_ops.push_back(m);
        }
        if (!in.done()) in.damaged("bytes after its last record");
    }
    profile.ranges = std::move(ranges);
    profile.kernels = std::move(kernels);
    profile.memory_ops = std::move(memory_ops);
    profile.tensor_parallel = static_cast<std::int32_t>(parts.size());
}

}  // namespace l2a
