# l2a-studio's command-line mistakes: each is one line on the standard error and exit status 2,
# before any window opens (so it runs without a display). Run as
#   cmake -DSTUDIO=path/to/l2a-studio -DCONFIG_HOME=scratch/folder -P studio_command_line.cmake
set(cases
  "--tls-ca|ca.pem|--tls-ca goes with --engine tls://HOST:PORT"
  "--engine|tcp://gpu1:7787|--tls-ca|ca.pem|--tls-ca goes with --engine tls://HOST:PORT"
  "--token-file|token|--token-file goes with --engine URL"
  "--no-such-flag|Unknown option 'no-such-flag'")
foreach(case IN LISTS cases)
  string(REPLACE "|" ";" parts "${case}")
  list(POP_BACK parts expected)
  # Without a display and with settings of its own: a case that wrongly opens the window fails
  # instead of showing it, and touches no user's settings.
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env --unset=DISPLAY --unset=WAYLAND_DISPLAY
                          "XDG_CONFIG_HOME=${CONFIG_HOME}" "${STUDIO}" ${parts}
                  TIMEOUT 20
                  RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(FIND "${err}" "${expected}" at)
  string(REGEX MATCHALL "\n" lines "${err}")
  list(LENGTH lines line_count)
  if(NOT status EQUAL 2 OR at EQUAL -1 OR NOT line_count EQUAL 1)
    string(REPLACE ";" " " shown "${parts}")
    message(FATAL_ERROR "l2a-studio ${shown}: status ${status}, expected 2 and one line with "
                        "'${expected}'; the standard error was:\n${err}")
  endif()
endforeach()
message(STATUS "l2a-studio command-line mistakes: all refused with status 2")
