# Dear ImGui from the system package (Debian/Ubuntu: libimgui-dev, a static library with the
# core and every backend; we use the core only and render with Qt's OpenGL functions).
if(TARGET l2a::imgui)
  return()
endif()
find_path(L2A_IMGUI_INCLUDE_DIR imgui.h PATH_SUFFIXES imgui)
find_library(L2A_IMGUI_LIBRARY imgui)
# Debian builds ImGui against the system stb (font rasterizer and rectangle packer).
find_library(L2A_STB_LIBRARY stb)
if(NOT L2A_IMGUI_INCLUDE_DIR OR NOT L2A_IMGUI_LIBRARY)
  message(FATAL_ERROR
    "Dear ImGui not found (the desktop app needs it): install libimgui-dev (scripts/setup does), "
    "or configure with -DL2A_WITH_GUI=OFF")
endif()
add_library(l2a::imgui UNKNOWN IMPORTED)
set_target_properties(l2a::imgui PROPERTIES
  IMPORTED_LOCATION "${L2A_IMGUI_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${L2A_IMGUI_INCLUDE_DIR}"
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${L2A_IMGUI_INCLUDE_DIR}")
if(L2A_STB_LIBRARY)
  set_property(TARGET l2a::imgui PROPERTY INTERFACE_LINK_LIBRARIES "${L2A_STB_LIBRARY}")
endif()
message(STATUS "Dear ImGui: ${L2A_IMGUI_LIBRARY}")
