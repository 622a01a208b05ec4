# GoogleTest: the installed package, or built from a source tree (GPU machines may have none
# installed: pass -DL2A_GTEST_SOURCE_DIR=<googletest source tree>, e.g. a copy of
# /usr/src/googletest).
if(NOT TARGET GTest::gtest)
  find_package(GTest QUIET)
endif()
if(NOT TARGET GTest::gtest)
  set(L2A_GTEST_SOURCE_DIR "" CACHE PATH
      "googletest source tree, built when GoogleTest is not installed")
  if(NOT L2A_GTEST_SOURCE_DIR)
    message(FATAL_ERROR "GoogleTest not found; install it (scripts/setup does) or pass "
                        "-DL2A_GTEST_SOURCE_DIR=<googletest source tree>, e.g. /usr/src/googletest")
  endif()
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  add_subdirectory("${L2A_GTEST_SOURCE_DIR}" "${CMAKE_BINARY_DIR}/_deps/googletest"
                   EXCLUDE_FROM_ALL SYSTEM)
  # googletest 1.11 and newer define these aliases themselves.
  if(NOT TARGET GTest::gtest)
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
endif()
include(GoogleTest)
