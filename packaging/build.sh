#!/usr/bin/env bash
# Builds the one-folder app with PyInstaller into dist/harapp/ and smoke-checks the built binary headless:
# `harapp --version`, then `harapp --smoke-test` (opens and closes the real main window offscreen).
# Usage: packaging/build.sh [--no-build]   (--no-build only re-runs the checks on an existing dist/)
# HARAPP_DIST_DIR / HARAPP_BUILD_DIR move the output and work folders (default dist/, build/pyinstaller/).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
dist=${HARAPP_DIST_DIR:-dist}
work=${HARAPP_BUILD_DIR:-build/pyinstaller}
app=$dist/harapp/harapp

if [ "${1:-}" != "--no-build" ]; then
  "$python" -m PyInstaller --version >/dev/null 2>&1 || {
    echo "build: PyInstaller is missing; install the dev extras: .venv/bin/pip install -e '.[dev]'" >&2
    exit 2
  }
  start=$(date +%s)
  "$python" -m PyInstaller --noconfirm --log-level WARN --distpath "$dist" --workpath "$work" \
    packaging/harapp.spec
  echo "build: built in $(( $(date +%s) - start )) s; size $(du -sh "$dist/harapp" | cut -f1)"
fi

[ -x "$app" ] || { echo "build: $app not found" >&2; exit 1; }
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
# Keep the smoke check away from the user's real settings and caches.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HARAPP_CONFIG_DIR="$tmp/config" HARAPP_CACHE_DIR="$tmp/cache" HARAPP_DATA_DIR="$tmp/data"
"$app" --version
timeout 300 "$app" --smoke-test
echo "build: smoke check passed"
