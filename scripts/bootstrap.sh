#!/usr/bin/env bash
# Set up everything Sightline needs on a fresh Debian or Ubuntu machine, idempotently:
#   - system packages (apt-get when run as root; otherwise the exact command to run is printed),
#   - the project's virtual environment in .venv at the repository root,
#   - the Python packages (the app, plus the test tools with --test).
#   - with --local, the local AI runtime for Phi-4-multimodal (torch, transformers: several GB);
#     the tests need it, so --test includes it.
# Usage: scripts/bootstrap.sh [--test] [--local]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_local=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; want_local=1 ;;
    --local) want_local=1 ;;
    *) echo "usage: scripts/bootstrap.sh [--test] [--local]" >&2; exit 2 ;;
  esac
done

# Libraries Qt needs on X11, audio (PortAudio through PulseAudio), speech engines and OCR helpers.
APP_DEBS="libegl1 libgl1 libfontconfig1 fonts-dejavu-core libglib2.0-0 libdbus-1-3 libx11-xcb1
libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libpulse0 libportaudio2
libasound2-plugins espeak-ng libespeak-ng1 speech-dispatcher speech-dispatcher-espeak-ng libspeechd2
x11-utils xdotool python3-venv"
# The headless desktop the tests run on: virtual screen, tray host, PulseAudio null sink,
# recorded speech samples (alsa-utils), tesseract for the OCR benchmark, dbus-launch (dbus-x11) so the
# test that nothing the app starts outlives it has something to catch.
TEST_DEBS="xvfb trayer pulseaudio pulseaudio-utils alsa-utils tesseract-ocr desktop-file-utils appstream dbus-x11"

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

# Re-install only when pyproject.toml changed since the last successful install, or when more is
# wanted than was installed (levels: 0 the app, 1 with the local AI runtime, 2 with the test tools).
stamp=.venv/.sightline-installed
level=0
[ $want_local = 1 ] && level=1
[ $want_test = 1 ] && level=2
specs=(. ".[local]" ".[test]")
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
read -r had_hash had_spec 2>/dev/null <"$stamp" || true
had_level=-1
for i in 0 1 2; do [ "${had_spec:-}" = "${specs[$i]}" ] && had_level=$i; done
if [ "${had_hash:-}" = "$hash" ] && [ "$had_level" -ge "$level" ]; then
  :  # up to date
else
  [ "$had_level" -gt "$level" ] && level=$had_level  # never install less than was there
  spec=${specs[$level]}
  if [ $level -ge 1 ]; then
    echo "Installing Python packages into .venv (the local AI runtime, torch, is large: the first time takes a few minutes)"
  else
    echo "Installing Python packages into .venv"
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  if [ $level -ge 1 ]; then
    # torch and torchvision first, as a pair, so pip cannot pick mismatched builds.
    .venv/bin/python -m pip install -q "torch>=2.4" "torchvision>=0.19"
  fi
  .venv/bin/python -m pip install -q -e "$spec"
  echo "$hash $spec" >"$stamp"
fi
