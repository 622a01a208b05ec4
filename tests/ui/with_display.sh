#!/usr/bin/env bash
# Runs a GUI test with a display: the one there is, else a private Xvfb server (OpenGL through
# Mesa's software renderer), else Qt's offscreen platform (the OpenGL views then skip).
set -euo pipefail
if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
    exec "$@"
fi
if command -v xvfb-run >/dev/null 2>&1; then
    exec xvfb-run -a -s "-screen 0 1920x1200x24 -nolisten tcp" "$@"
fi
echo "with_display.sh: no display and no xvfb-run; using QT_QPA_PLATFORM=offscreen" >&2
export QT_QPA_PLATFORM=offscreen
exec "$@"
