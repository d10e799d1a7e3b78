#!/usr/bin/env bash
# Start or stop the headless desktop stack the tests use: Xvfb, a tray host (trayer),
# a user-space PulseAudio with a null sink and a microphone remapped from its monitor, and
# speech-dispatcher. Every process is stopped by the PID we recorded, never by name.
#
#   scripts/services.sh start DIR   # writes DIR/env (source it) and DIR/*.pid
#   scripts/services.sh stop DIR
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?state folder}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

wait_for() {  # wait_for SECONDS COMMAND...
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

start() {
  local disp=99
  while [ -e "/tmp/.X11-unix/X$disp" ] || [ -e "/tmp/.X$disp-lock" ]; do disp=$((disp + 1)); done
  export DISPLAY=":$disp"
  Xvfb "$DISPLAY" -screen 0 1920x1080x24 -nolisten tcp >"$dir/xvfb.log" 2>&1 &
  echo $! >"$dir/xvfb.pid"
  wait_for 10 xdpyinfo -display "$DISPLAY" || { echo "Xvfb did not start" >&2; cat "$dir/xvfb.log" >&2; exit 1; }

  if command -v trayer >/dev/null; then
    trayer --edge top --align right --widthtype pixel --width 200 --height 24 >"$dir/trayer.log" 2>&1 &
    echo $! >"$dir/trayer.pid"
  fi

  export XDG_RUNTIME_DIR="$dir/run"
  mkdir -p "$XDG_RUNTIME_DIR/pulse"; chmod 700 "$XDG_RUNTIME_DIR"
  export PULSE_SERVER="unix:$XDG_RUNTIME_DIR/pulse/native"
  pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no --system=false \
    -L "module-native-protocol-unix socket=$XDG_RUNTIME_DIR/pulse/native auth-anonymous=1" \
    -L "module-null-sink sink_name=vsink rate=48000" \
    -L "module-remap-source master=vsink.monitor source_name=vmic" \
    -L "module-always-sink" >"$dir/pulse.log" 2>&1 &
  echo $! >"$dir/pulse.pid"
  wait_for 10 pactl info || { echo "PulseAudio did not start" >&2; cat "$dir/pulse.log" >&2; exit 1; }
  pactl set-default-sink vsink
  pactl set-default-source vmic

  if command -v speech-dispatcher >/dev/null; then
    speech-dispatcher -s -t 0 >"$dir/speechd.log" 2>&1 &
    echo $! >"$dir/speechd.pid"
  fi

  cat >"$dir/env" <<ENV
export DISPLAY=$DISPLAY
export XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR
export PULSE_SERVER=$PULSE_SERVER
export SIGHTLINE_TEST_SERVICES=$dir
ENV
  echo "services up: DISPLAY=$DISPLAY PULSE_SERVER=$PULSE_SERVER"
}

stop() {
  for name in speechd trayer pulse xvfb; do
    local f="$dir/$name.pid"
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
