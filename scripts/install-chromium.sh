#!/usr/bin/env bash
# Installs Debian's chromium for the storage browser's end-to-end test
# (e2e/browser) when no Chromium is on PATH. It needs root or password-less
# sudo and apt-get; where it cannot install, it says why and the test
# skips with the same message. Bounded: 15 minutes at most.
set -uo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if [ -n "${CHROMIUM:-}" ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get here; install Chromium yourself to run e2e/browser (it will skip)"; exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "install-chromium: not root and no password-less sudo; e2e/browser will skip"; exit 0
  fi
fi
echo "install-chromium: installing Debian's chromium for e2e/browser (once per machine)"
export DEBIAN_FRONTEND=noninteractive
install() { timeout 900 "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >/tmp/install-chromium.log 2>&1; }
if ! install; then
  timeout 300 "${as_root[@]}" apt-get update -q >>/tmp/install-chromium.log 2>&1
  if ! install; then
    echo "install-chromium: apt-get could not install chromium (last lines of /tmp/install-chromium.log below); e2e/browser will skip"
    tail -5 /tmp/install-chromium.log
    exit 0
  fi
fi
echo "install-chromium: $(chromium --version 2>/dev/null || echo installed)"
