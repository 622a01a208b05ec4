# PCRE2 (the tokenizer's pre-tokenizer regex) and ICU (NFC normalization) as two targets,
# l2a::pcre2 and l2a::icu. Found through pkg-config where it knows them, else by header and
# library search under CMAKE_PREFIX_PATH: headless GPU machines may carry the two libraries in a
# prefix folder of their own, without pkg-config files.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
  pkg_check_modules(ICU QUIET IMPORTED_TARGET icu-uc)
endif()

add_library(l2a_pcre2 INTERFACE)
add_library(l2a::pcre2 ALIAS l2a_pcre2)
if(TARGET PkgConfig::PCRE2)
  target_link_libraries(l2a_pcre2 INTERFACE PkgConfig::PCRE2)
else()
  find_path(L2A_PCRE2_INCLUDE_DIR pcre2.h)
  find_library(L2A_PCRE2_LIBRARY NAMES pcre2-8)
  if(NOT L2A_PCRE2_INCLUDE_DIR OR NOT L2A_PCRE2_LIBRARY)
    message(FATAL_ERROR "PCRE2 (8-bit) not found: install libpcre2-dev (scripts/setup does), or "
                        "point CMAKE_PREFIX_PATH at a folder with include/pcre2.h and "
                        "lib/libpcre2-8.so")
  endif()
  target_include_directories(l2a_pcre2 SYSTEM INTERFACE "${L2A_PCRE2_INCLUDE_DIR}")
  target_link_libraries(l2a_pcre2 INTERFACE "${L2A_PCRE2_LIBRARY}")
endif()

add_library(l2a_icu INTERFACE)
add_library(l2a::icu ALIAS l2a_icu)
if(TARGET PkgConfig::ICU)
  target_link_libraries(l2a_icu INTERFACE PkgConfig::ICU)
else()
  find_path(L2A_ICU_INCLUDE_DIR unicode/unorm2.h)
  find_library(L2A_ICU_UC_LIBRARY NAMES icuuc)
  find_library(L2A_ICU_DATA_LIBRARY NAMES icudata)
  if(NOT L2A_ICU_INCLUDE_DIR OR NOT L2A_ICU_UC_LIBRARY OR NOT L2A_ICU_DATA_LIBRARY)
    message(FATAL_ERROR "ICU not found: install libicu-dev (scripts/setup does), or point "
                        "CMAKE_PREFIX_PATH at a folder with include/unicode/ and "
                        "lib/libicuuc.so, lib/libicudata.so")
  endif()
  target_include_directories(l2a_icu SYSTEM INTERFACE "${L2A_ICU_INCLUDE_DIR}")
  target_link_libraries(l2a_icu INTERFACE "${L2A_ICU_UC_LIBRARY}" "${L2A_ICU_DATA_LIBRARY}")
endif()
