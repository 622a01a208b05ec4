// Builds without c10d Gloo (its headers were not found at configure time) have no process groups.
#include "l2a/engine/error.h"
#include "l2a/engine/process_group.h"

namespace l2a {

struct ProcessGroup::Impl {
    GroupOptions options;
};

bool process_groups_available() { return false; }

ProcessGroup ProcessGroup::open(const GroupOptions&) {
    fail("",
         "tensor parallel needs process groups, and this build has no c10d Gloo (install "
         "libgloo-dev and reconfigure)");
}

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;
ProcessGroup& ProcessGroup::operator=(ProcessGroup&&) noexcept = default;
ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->options.rank; }
int ProcessGroup::world() const { return impl_->options.world; }
void ProcessGroup::all_reduce_sum(std::span<float>) { fail("", "this build has no c10d Gloo"); }
void ProcessGroup::barrier() { fail("", "this build has no c10d Gloo"); }
std::vector<std::vector<std::byte>> ProcessGroup::all_gather_bytes(std::span<const std::byte>) {
    fail("", "this build has no c10d Gloo");
}

}  // namespace l2a
