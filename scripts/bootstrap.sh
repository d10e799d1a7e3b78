#!/usr/bin/env bash
# Set up everything Sightline needs on a fresh Debian or Ubuntu machine, idempotently:
#   - system packages (apt-get when run as root; otherwise the exact command to run is printed),
#   - the project's virtual environment in .venv at the repository root,
#   - the Python packages (the app, plus the test tools with --test).
# Usage: scripts/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Libraries Qt needs on X11, audio (PortAudio through PulseAudio), speech engines and OCR helpers.
APP_DEBS="libegl1 libgl1 libfontconfig1 fonts-dejavu-core libglib2.0-0 libdbus-1-3 libx11-xcb1
libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libpulse0 libportaudio2
libasound2-plugins espeak-ng libespeak-ng1 speech-dispatcher speech-dispatcher-espeak-ng libspeechd2
x11-utils xdotool python3-venv"
# The headless desktop the tests run on: virtual screen, tray host, PulseAudio null sink,
# recorded speech samples (alsa-utils), tesseract for the OCR benchmark.
TEST_DEBS="xvfb trayer pulseaudio pulseaudio-utils alsa-utils tesseract-ocr desktop-file-utils appstream"

debs="$APP_DEBS"
[ $want_test = 1 ] && debs="$debs $TEST_DEBS"

missing=()
for p in $debs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Sightline needs these system packages. Run:" >&2
    echo "  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    echo "then run this command again." >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Sightline needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating the virtual environment in .venv"
  "$PY" -m venv .venv
fi

# Re-install only when pyproject.toml changed since the last successful install.
stamp=.venv/.sightline-installed
spec="."
[ $want_test = 1 ] && spec=".[test]"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $spec"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing Python packages into .venv (torch is large: the first time takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch and torchvision first, as a pair, so pip cannot pick mismatched builds.
  .venv/bin/python -m pip install -q "torch>=2.4" "torchvision>=0.19"
  .venv/bin/python -m pip install -q -e "$spec"
  echo "$want" >"$stamp"
fi
