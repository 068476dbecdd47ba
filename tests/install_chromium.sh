#!/usr/bin/env sh
# Install Debian's chromium for the report's browser test (tests/test_report_browser.py) when it is
# missing. Called by `make test` before pytest and by the test's fixture; does nothing when a
# chromium is already on PATH. Needs root (or sudo) and apt-get; says what to do otherwise.
set -eu
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no chromium on PATH and no apt-get here; install Chromium (Debian/Ubuntu: apt-get install chromium) for the report's browser test" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_chromium: chromium is missing and installing it needs root; run: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi
echo "install_chromium: installing Debian's chromium (once) for the report's browser test ..." >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1
