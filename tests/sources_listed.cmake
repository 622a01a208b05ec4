# ctest `cmake_sources_listed`: the build names every source and test file. A glob, or an
# if(EXISTS ...) around a file of the source tree, lets a renamed or deleted file drop out of the
# build while the suite stays green; a file that is listed by name and missing fails the
# configure instead ("Cannot find source file"). Reads the CMakeLists.txt and cmake/*.cmake files
# git tracks and prints each offending line as FILE:LINE: TEXT.
#   cmake -DROOT=<source dir> -P tests/sources_listed.cmake
if(NOT ROOT)
  message(FATAL_ERROR "sources_listed.cmake: pass -DROOT=<source dir>")
endif()
execute_process(
  COMMAND git -C "${ROOT}" ls-files -- "CMakeLists.txt" "*/CMakeLists.txt" "cmake/*.cmake"
  OUTPUT_VARIABLE _files RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _rc EQUAL 0 OR _files STREQUAL "")
  message(FATAL_ERROR "sources_listed.cmake: cannot list the CMake files of ${ROOT} with git")
endif()
string(REPLACE "\n" ";" _files "${_files}")
set(_bad 0)
foreach(_file IN LISTS _files)
  file(STRINGS "${ROOT}/${_file}" _lines)
  set(_n 0)
  foreach(_line IN LISTS _lines)
    math(EXPR _n "${_n} + 1")
    if(_line MATCHES "file\\([ ]*GLOB" OR
       _line MATCHES "EXISTS[ ]+\"?\\\${(CMAKE_CURRENT_SOURCE_DIR|PROJECT_SOURCE_DIR|CMAKE_SOURCE_DIR)}")
      message("${_file}:${_n}: ${_line}")
      math(EXPR _bad "${_bad} + 1")
    endif()
  endforeach()
endforeach()
if(_bad GREATER 0)
  message(FATAL_ERROR "${_bad} line(s) pick source or test files by glob or existence: list them by name")
endif()
list(LENGTH _files _count)
message("all ${_count} CMake files list their sources and tests by name")
