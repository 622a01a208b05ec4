// The Gloo backend of ProcessGroup (CPU tensors), built where cmake/Distributed.cmake found the
// Gloo headers.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "process_group_backends.h"

namespace l2a {

bool gloo_backend_built() { return true; }

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    const GroupOptions& options,
                                                    std::chrono::milliseconds timeout) {
    auto group_options = c10d::ProcessGroupGloo::Options::create(timeout);
    group_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(options.host));
    group_options->threads = 2;
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, options.rank, options.world,
                                                       group_options);
}

}  // namespace l2a
