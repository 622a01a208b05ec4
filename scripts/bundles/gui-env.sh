# Source after: mkdir -p /tmp/gui && tar -xJf gui.tar.xz -C /tmp/gui
# shellcheck shell=bash
# (set GUI_ROOT first if you unpacked it elsewhere). Works in bash (uses arrays/functions).
GUI_ROOT="${GUI_ROOT:-/tmp/gui}"
export GUI_PREFIX="$GUI_ROOT/usr"
_gl="$GUI_PREFIX/lib/x86_64-linux-gnu"

# Generic system libraries (libX11, libxcb*, glvnd libGL/libGLX/libEGL, expat, glib, freetype,
# zstd, ...) are in $_gl/fallback; only those the system lacks are linked into fallback-active,
# so newer system copies always win over the bookworm ones.
_act="$GUI_ROOT/fallback-active"
mkdir -p "$_act" && rm -f "$_act"/*
_nl='
'
_have="$_nl$( { /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null; } | awk '{print $1}')$_nl"
_ldp_dirs="$(printf '%s' "${LD_LIBRARY_PATH:-}" | tr ':' ' ')"
while read -r _so; do
  [ -n "$_so" ] || continue
  # GUI_FORCE_FALLBACK=1 uses every carried library (for testing, or if a system one misbehaves)
  # (a pattern match, not `printf | grep -q`: that pipe fails under pipefail when grep exits early)
  if [ -z "${GUI_FORCE_FALLBACK:-}" ]; then
    case "$_have" in *"$_nl$_so$_nl"*) continue ;; esac
  fi
  _found=
  [ -n "${GUI_FORCE_FALLBACK:-}" ] || for _d in $_ldp_dirs; do [ -e "$_d/$_so" ] && { _found=1; break; }; done
  [ -n "$_found" ] || ln -s "$_gl/fallback/$_so" "$_act/$_so"
done < "$_gl/fallback/SONAMES"
unset _have _nl _ldp_dirs _so _d _found

export PATH="$GUI_PREFIX/bin:$GUI_PREFIX/lib/qt6/libexec:$GUI_PREFIX/lib/qt6/bin${PATH:+:$PATH}"
export LD_LIBRARY_PATH="$_gl:$_act${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="$GUI_PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export QT_PLUGIN_PATH="$_gl/qt6/plugins"
export QT_QPA_PLATFORM_PLUGIN_PATH="$_gl/qt6/plugins/platforms"
export XLOCALEDIR="$GUI_PREFIX/share/X11/locale"
export XKB_CONFIG_ROOT="$GUI_PREFIX/share/X11/xkb"      # libxkbcommon (Qt's xcb plugin)
export GUI_XKBDIR="$GUI_PREFIX/share/X11/xkb"           # Xvfb -xkbdir
# Mesa (software rasterizer only; libLLVM is a stub, so llvmpipe is unavailable: use softpipe).
# Xvfb loads swrast_dri.so from here for its GLX extension.
export LIBGL_DRIVERS_PATH="$_gl/dri"
export GALLIUM_DRIVER=softpipe DRAW_USE_LLVM=0
# fontconfig: a generated config that points at the carried fonts, cache in /tmp
mkdir -p "$GUI_ROOT/fontconfig-cache"
cat > "$GUI_ROOT/fonts.conf" <<FCEOF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <dir>$GUI_PREFIX/share/fonts</dir>
  <dir>/usr/share/fonts</dir>
  <cachedir>$GUI_ROOT/fontconfig-cache</cachedir>
  <include ignore_missing="yes">$GUI_ROOT/etc/fonts/conf.d</include>
</fontconfig>
FCEOF
export FONTCONFIG_FILE="$GUI_ROOT/fonts.conf" FONTCONFIG_PATH="$GUI_ROOT/etc/fonts"
unset _gl _act

# start_xvfb [display]: Xvfb on :99 (or $1), 1920x1200x24, no TCP, in the background; exports DISPLAY.
# Xvfb runs the keymap compiler as the hard-coded /usr/bin/xkbcomp: if that is missing, a small
# wrapper that runs the carried one is written there (needs root; the device runs as root).
start_xvfb() {
  local d="${1:-:99}"
  if [ ! -x /usr/bin/xkbcomp ]; then
    if [ -w /usr/bin ]; then
      printf '#!/bin/sh\nexec "%s/bin/xkbcomp" "$@"\n' "$GUI_PREFIX" > /usr/bin/xkbcomp && chmod 755 /usr/bin/xkbcomp
    else
      echo "start_xvfb: /usr/bin/xkbcomp missing and /usr/bin not writable: keyboard init will fail" >&2
    fi
  fi
  mkdir -p /tmp/.X11-unix 2>/dev/null; chmod 1777 /tmp/.X11-unix 2>/dev/null
  local n="${d#:}" lock="/tmp/.X${d#:}-lock" old
  if [ -e "$lock" ]; then
    old="$(tr -d ' ' < "$lock" 2>/dev/null)"
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
      echo "start_xvfb: an X server (pid $old) already runs on $d; using it" >&2
      XVFB_PID="$old"; export DISPLAY="$d"; return 0
    fi
    rm -f "$lock" "/tmp/.X11-unix/X$n"
  fi
  Xvfb "$d" -screen 0 1920x1200x24 -nolisten tcp -xkbdir "$GUI_XKBDIR" +extension GLX \
      >"$GUI_ROOT/xvfb$n.log" 2>&1 &
  XVFB_PID=$!
  export DISPLAY="$d"
  local i=0; while [ $((i += 1)) -le 100 ]; do
    if ! kill -0 "$XVFB_PID" 2>/dev/null; then
      echo "start_xvfb: Xvfb exited; its log ($GUI_ROOT/xvfb$n.log):" >&2; cat "$GUI_ROOT/xvfb$n.log" >&2; return 1
    fi
    if [ -S "/tmp/.X11-unix/X$n" ]; then sleep 0.3; kill -0 "$XVFB_PID" 2>/dev/null && return 0; fi
    sleep 0.1
  done
  echo "start_xvfb: no socket after 10 s; see $GUI_ROOT/xvfb$n.log" >&2; return 1
}
