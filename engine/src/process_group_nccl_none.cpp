// Builds without CUDA or without the NCCL headers: no process groups on GPUs.
#include "l2a/engine/error.h"
#include "process_group_backends.h"

namespace l2a {

bool nccl_backend_built() { return false; }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>&,
                                                    const GroupOptions&, std::chrono::milliseconds,
                                                    int) {
    fail("",
         "tensor parallel on GPUs needs c10d NCCL, and this build has none (a CUDA build "
         "finds the NCCL headers of the torch wheel's nvidia-nccl package)");
}

}  // namespace l2a
