# Tensor parallel: LibTorch's c10d process groups, with the Gloo backend on the CPU and the NCCL
# backend on GPUs.
#
# The torch wheel has c10d and Gloo compiled into libtorch_cpu and ships
# torch/csrc/distributed/c10d/ProcessGroupGloo.hpp, but not the Gloo headers that it includes.
# Those come from the system (Debian and Ubuntu: libgloo-dev). Only its headers are used: the
# code that runs is the wheel's, and the classes used hold Gloo's types through pointers only,
# so a Gloo release older than the wheel's is fine.
#
# Defines l2a::c10d_gloo (include dirs and the definitions that enable ProcessGroupGloo.hpp) when
# both headers are found; without them the build goes on and process groups throw at run time.
#
# NCCL (CUDA builds): the torch wheel has ProcessGroupNCCL compiled into libtorch_cuda and ships
# its header; nccl.h comes from the wheel's nvidia-nccl package (site-packages/nvidia/nccl). The
# header must be the NCCL version the wheel was built with (torch.cuda.nccl.version()): the class
# layout depends on NCCL's version macros. Defines l2a::c10d_nccl when both match.
# Needs cmake/LibTorch.cmake (L2A_TORCH_DIR) first.

option(L2A_WITH_C10D_GLOO "Tensor parallel on the CPU through c10d Gloo, when its headers are found"
       ON)

find_path(L2A_GLOO_INCLUDE_DIR gloo/algorithm.h
          DOC "Folder with the Gloo headers (gloo/algorithm.h; Debian: libgloo-dev)")
find_path(L2A_C10D_INCLUDE_DIR torch/csrc/distributed/c10d/ProcessGroupGloo.hpp
          PATHS "${L2A_TORCH_DIR}/include" NO_DEFAULT_PATH
          DOC "The torch wheel's include folder with c10d's ProcessGroupGloo.hpp")

if(NOT L2A_WITH_C10D_GLOO)
  set(_l2a_gloo_why "L2A_WITH_C10D_GLOO=OFF")
elseif(NOT L2A_C10D_INCLUDE_DIR)
  set(_l2a_gloo_why "torch ${L2A_TORCH_VERSION} has no torch/csrc/distributed/c10d/ProcessGroupGloo.hpp")
elseif(NOT L2A_GLOO_INCLUDE_DIR)
  set(_l2a_gloo_why "no gloo/algorithm.h: install libgloo-dev (scripts/setup does) and reconfigure")
else()
  set(_l2a_gloo_why "Gloo headers in ${L2A_GLOO_INCLUDE_DIR}")
  add_library(l2a_c10d_gloo INTERFACE)
  target_include_directories(l2a_c10d_gloo SYSTEM INTERFACE "${L2A_GLOO_INCLUDE_DIR}")
  # What TorchConfig.cmake would add for a build with c10d and Gloo; ProcessGroupGloo.hpp is
  # empty without USE_C10D_GLOO.
  target_compile_definitions(l2a_c10d_gloo INTERFACE USE_DISTRIBUTED USE_C10D_GLOO)
  target_link_libraries(l2a_c10d_gloo INTERFACE l2a::torch)
  add_library(l2a::c10d_gloo ALIAS l2a_c10d_gloo)
endif()

if(TARGET l2a::c10d_gloo)
  message(STATUS "L2A: tensor parallel on CPU (c10d Gloo): ON (${_l2a_gloo_why})")
else()
  message(STATUS "L2A: tensor parallel on CPU (c10d Gloo): OFF (${_l2a_gloo_why})")
endif()

option(L2A_WITH_C10D_NCCL "Tensor parallel on GPUs through c10d NCCL (CUDA builds), when its headers are found"
       ON)
set(_l2a_nccl_why "")
if(NOT L2A_WITH_CUDA)
  set(_l2a_nccl_why "not a CUDA build")
elseif(NOT L2A_WITH_C10D_NCCL)
  set(_l2a_nccl_why "L2A_WITH_C10D_NCCL=OFF")
else()
  find_package(CUDAToolkit REQUIRED)
  find_path(L2A_NCCL_INCLUDE_DIR nccl.h
            PATHS "${L2A_TORCH_DIR}/../nvidia/nccl/include" NO_DEFAULT_PATH
            DOC "nccl.h of the torch wheel's nvidia-nccl package")
  find_path(L2A_C10D_NCCL_INCLUDE_DIR torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp
            PATHS "${L2A_TORCH_DIR}/include" NO_DEFAULT_PATH)
  execute_process(
    COMMAND "${L2A_PYTHON}" -c "import torch; v = torch.cuda.nccl.version(); print(v[0] * 10000 + v[1] * 100 + v[2] if v[0] * 100 + v[1] > 208 else v[0] * 1000 + v[1] * 100 + v[2])"
    OUTPUT_VARIABLE _l2a_torch_nccl OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _l2a_torch_nccl_rc ERROR_QUIET)
  if(NOT L2A_C10D_NCCL_INCLUDE_DIR)
    set(_l2a_nccl_why "torch ${L2A_TORCH_VERSION} has no ProcessGroupNCCL.hpp")
  elseif(NOT L2A_NCCL_INCLUDE_DIR)
    set(_l2a_nccl_why "no nccl.h beside the torch wheel (the nvidia-nccl package)")
  elseif(NOT _l2a_torch_nccl_rc EQUAL 0 OR NOT _l2a_torch_nccl MATCHES "^[0-9]+$")
    set(_l2a_nccl_why "torch.cuda.nccl.version() did not answer")
  else()
    file(STRINGS "${L2A_NCCL_INCLUDE_DIR}/nccl.h" _l2a_nccl_code REGEX "^#define NCCL_VERSION_CODE ")
    string(REGEX REPLACE "^#define NCCL_VERSION_CODE ([0-9]+).*" "\\1" _l2a_nccl_code "${_l2a_nccl_code}")
    if(NOT _l2a_nccl_code STREQUAL _l2a_torch_nccl)
      set(_l2a_nccl_why "nccl.h is version ${_l2a_nccl_code}, the wheel was built with ${_l2a_torch_nccl}")
    else()
      set(_l2a_nccl_why "NCCL ${_l2a_nccl_code} headers in ${L2A_NCCL_INCLUDE_DIR}")
      add_library(l2a_c10d_nccl INTERFACE)
      target_include_directories(l2a_c10d_nccl SYSTEM INTERFACE "${L2A_NCCL_INCLUDE_DIR}")
      target_compile_definitions(l2a_c10d_nccl INTERFACE USE_DISTRIBUTED USE_C10D_NCCL
                                 L2A_TORCH_NCCL_VERSION_CODE=${_l2a_torch_nccl})
      target_link_libraries(l2a_c10d_nccl INTERFACE l2a::torch CUDA::cudart)
      add_library(l2a::c10d_nccl ALIAS l2a_c10d_nccl)
    endif()
  endif()
endif()
if(TARGET l2a::c10d_nccl)
  message(STATUS "L2A: tensor parallel on GPUs (c10d NCCL): ON (${_l2a_nccl_why})")
else()
  message(STATUS "L2A: tensor parallel on GPUs (c10d NCCL): OFF (${_l2a_nccl_why})")
endif()
