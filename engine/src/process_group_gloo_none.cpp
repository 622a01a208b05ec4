// Builds without the Gloo headers: no process groups on the CPU.
#include "l2a/engine/error.h"
#include "process_group_backends.h"

namespace l2a {

bool gloo_backend_built() { return false; }

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>&,
                                                    const GroupOptions&,
                                                    std::chrono::milliseconds) {
    fail("",
         "tensor parallel on the CPU needs c10d Gloo, and this build has none (install "
         "libgloo-dev and reconfigure)");
}

}  // namespace l2a
