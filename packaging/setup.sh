#!/usr/bin/env bash
# Sets up harapp in ./.venv: the system libraries Qt needs (Debian/Ubuntu, when run as root or with sudo),
# then the Python packages. `--dev` adds the test tools. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

# Qt's xcb and offscreen platforms load these at run time; a fresh Debian has none of them.
qt_libs="libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0 \
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 \
libxcb-xinerama0 libxcb-xfixes0 libx11-xcb1 xvfb xauth"
if command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $qt_libs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing system packages: $(echo $missing)"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras}"
echo "setup: harapp installed in .venv ($(.venv/bin/harapp --version))"
