#!/bin/sh
# Installs what the browser end-to-end tests (`cargo test --test browser`) need: Debian's
# chromium and chromium-driver (one source package, so their versions always match) and an
# emoji font for screenshots. Idempotent: does nothing when both binaries are already there.
set -eu

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver are already installed."
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: run this script as root or install sudo." >&2
    exit 1
fi

$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver fonts-noto-color-emoji

echo "Installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null || echo chromedriver)"
