#!/usr/bin/env bash
# Set up (first time only), start the headless desktop stack (Xvfb + tray host, PulseAudio null
# sink, speech-dispatcher), run the whole test suite, and stop the stack by PID.
# Arguments go to pytest, e.g. scripts/test.sh tests/unit -k chunker
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test

state=$(mktemp -d /tmp/sightline-services.XXXXXX)
cleanup() { scripts/services.sh stop "$state" || true; rm -rf "$state"; }
trap cleanup EXIT INT TERM
scripts/services.sh start "$state"
# shellcheck disable=SC1091
source "$state/env"

export PYTHONUNBUFFERED=1
.venv/bin/python -m pytest "$@"
