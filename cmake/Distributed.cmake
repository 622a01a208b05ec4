# Tensor parallel on the CPU: LibTorch's c10d process groups with the Gloo backend.
#
# The torch wheel has c10d and Gloo compiled into libtorch_cpu and ships
# torch/csrc/distributed/c10d/ProcessGroupGloo.hpp, but not the Gloo headers that it includes.
# Those come from the system (Debian and Ubuntu: libgloo-dev). Only its headers are used: the
# code that runs is the wheel's, and the classes used hold Gloo's types through pointers only,
# so a Gloo release older than the wheel's is fine.
#
# Defines l2a::c10d_gloo (include dirs and the definitions that enable ProcessGroupGloo.hpp) when
# both headers are found; without them the build goes on and process groups throw at run time.
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
