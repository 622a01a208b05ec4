# LibTorch from the `torch` Python package in the project's virtual environment.
#
# An interface target over the wheel's libraries, not TorchConfig.cmake: the latter probes for
# an installed GPU at configure time and fails on build machines that have none.

set(L2A_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python interpreter whose torch package provides LibTorch")
if(NOT EXISTS "${L2A_PYTHON}")
  message(FATAL_ERROR "No Python at ${L2A_PYTHON}. Run scripts/setup first (it creates .venv "
                      "with torch), or pass -DL2A_PYTHON=/path/to/python with torch installed.")
endif()

execute_process(
  COMMAND "${L2A_PYTHON}" -c "import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _l2a_torch_out RESULT_VARIABLE _l2a_torch_rc ERROR_VARIABLE _l2a_torch_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _l2a_torch_rc EQUAL 0)
  message(FATAL_ERROR "${L2A_PYTHON} cannot import torch: ${_l2a_torch_err}\n"
                      "Run scripts/setup to install torch==2.11.0 into .venv.")
endif()
string(REPLACE "\n" ";" _l2a_torch_out "${_l2a_torch_out}")
list(GET _l2a_torch_out 0 L2A_TORCH_DIR)
list(GET _l2a_torch_out 1 L2A_TORCH_VERSION)
list(GET _l2a_torch_out 2 L2A_TORCH_CXX11_ABI)
message(STATUS "LibTorch ${L2A_TORCH_VERSION} from ${L2A_TORCH_DIR}")

add_library(l2a_torch INTERFACE)
target_include_directories(l2a_torch SYSTEM INTERFACE
  "${L2A_TORCH_DIR}/include" "${L2A_TORCH_DIR}/include/torch/csrc/api/include")
target_link_libraries(l2a_torch INTERFACE
  "${L2A_TORCH_DIR}/lib/libtorch_cpu.so" "${L2A_TORCH_DIR}/lib/libc10.so")
if(L2A_WITH_CUDA)
  # --no-as-needed keeps libtorch_cuda loaded so that its CUDA backend registers itself.
  target_link_libraries(l2a_torch INTERFACE
    "-Wl,--no-as-needed,${L2A_TORCH_DIR}/lib/libtorch_cuda.so,--as-needed"
    "${L2A_TORCH_DIR}/lib/libc10_cuda.so")
endif()
target_compile_definitions(l2a_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${L2A_TORCH_CXX11_ABI})
# Binaries find LibTorch (and, through its own run path, the CUDA runtime wheels) at run time.
target_link_options(l2a_torch INTERFACE "-Wl,-rpath,${L2A_TORCH_DIR}/lib")
add_library(l2a::torch ALIAS l2a_torch)
