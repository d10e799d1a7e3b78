#!/usr/bin/env bash
# Build the Light .deb, install it, run the installed `sightline`, remove it, and check that nothing
# is left behind. Runs as root on Debian or Ubuntu, from a checkout whose .venv is set up
# (scripts/bootstrap.sh). Prints the build time, bundle size and .deb size.
#
#   installer/ci_deb_test.sh            # full build
#   SIGHTLINE_DEB_REUSE=1 installer/ci_deb_test.sh   # keep an unchanged bundle from an earlier run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=sightline

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run this as root: it installs and removes a package"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is missing: this test runs on Debian or Ubuntu"
[ -x .venv/bin/python ] || fail "no .venv: run scripts/bootstrap.sh first"
.venv/bin/python -m PyInstaller --version >/dev/null 2>&1 || .venv/bin/pip install -q "pyinstaller==6.22.3"

work=$(mktemp -d /tmp/sightline-deb.XXXXXX)
cleanup() {
    # Never leave the package on the machine, whatever failed.
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "installed\|config-files"; then
        dpkg -P "$PKG" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A package from an earlier, interrupted run would hide what this one installs.
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "installed\|config-files"; then
    dpkg -P "$PKG" >/dev/null
fi

echo "== build the Light edition and its .deb"
t0=$(date +%s)
reuse=()
[ "${SIGHTLINE_DEB_REUSE:-}" = 1 ] && reuse=(--reuse)
.venv/bin/python installer/build.py --edition light --deb "${reuse[@]}"
t1=$(date +%s)
deb=$(ls -t build/deb/${PKG}_*.deb | head -n 1)
[ -f "$deb" ] || fail "no .deb was built"

echo "== render a screen to read"
QT_QPA_PLATFORM=offscreen .venv/bin/python - "$work/screen.png" <<'PY'
import sys
from PIL import Image
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
from tests.fixtures.screens_layout import render_screen
Image.fromarray(render_screen(0)).save(sys.argv[1])
PY

echo "== install $deb"
t2=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "$ROOT/$deb"; then
    apt-get update -qq
    apt-get install -y --no-install-recommends "$ROOT/$deb"
fi
t3=$(date +%s)

echo "== every library the bundle links to is bundled or declared in Depends"
internal=/opt/sightline/_internal
# The bootloader puts _internal on the library path; Qt's plugins find Qt's libraries the same way.
# Only Qt's GTK theme plugin may miss its libraries (Qt then skips it).
missing=$(find /opt/sightline -type f -name '*.so*' -print0 \
    | LD_LIBRARY_PATH="$internal:$internal/PySide6/Qt/lib" xargs -0 ldd 2>/dev/null \
    | grep 'not found' | grep -v -e 'libgtk-3\.so' -e 'libgdk-3\.so' | sort -u || true)
[ -z "$missing" ] || fail "libraries the package does not bring: $missing"

echo "== run the installed command"
# A clean environment: nothing from the checkout or its virtualenv may help the installed program.
run() {
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" \
        SIGHTLINE_HOME="$work/home/sightline" LANG=C.UTF-8 "$@"
}
mkdir -p "$work/home"
[ "$(run sh -c 'command -v sightline')" = /usr/bin/sightline ] || fail "sightline is not on PATH"
version=$(run sightline --version)
echo "$version"
[ "$version" = "Sightline $(.venv/bin/python -c 'import app; print(app.__version__)')" ] \
    || fail "unexpected version: $version"
run sightline read --image "$work/screen.png" >"$work/read.txt" 2>"$work/read.err" \
    || { cat "$work/read.err" >&2; fail "sightline read failed"; }
for phrase in "quarterly report is ready" "Battery is low" "Printer on the second floor"; do
    grep -qi "$phrase" "$work/read.txt" || { cat "$work/read.txt" >&2; fail "the text read back lacks: $phrase"; }
done
echo "read back $(wc -w <"$work/read.txt") words"
set +e
run sightline describe --image "$work/screen.png" --backend local >/dev/null 2>"$work/local.err"
code=$?
set -e
cat "$work/local.err"
[ "$code" = 5 ] || fail "the local backend should be unavailable in Light (exit 5), got $code"
grep -q "local AI runtime is not installed" "$work/local.err" || fail "no sentence about the local AI runtime"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate /usr/share/applications/sightline.desktop
    desktop-file-validate /etc/xdg/autostart/sightline.desktop
fi
if command -v appstreamcli >/dev/null; then
    appstreamcli validate --no-net /usr/share/metainfo/org.sightline.Sightline.metainfo.xml
fi

echo "== remove"
installed_files=$(dpkg -L "$PKG" | grep -v '^/\.$')
dpkg -r "$PKG"
[ -f /etc/xdg/autostart/sightline.desktop ] || fail "dpkg -r should keep the autostart entry (a conffile) until purge"
dpkg -P "$PKG"
dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "installed" && fail "the package is still registered"
left=()
for path in /opt/sightline /usr/bin/sightline /usr/share/applications/sightline.desktop \
    /etc/xdg/autostart/sightline.desktop /usr/share/metainfo/org.sightline.Sightline.metainfo.xml \
    /usr/share/icons/hicolor/scalable/apps/sightline.svg /usr/share/icons/hicolor/48x48/apps/sightline.png \
    /usr/share/doc/$PKG; do
    [ -e "$path" ] || [ -L "$path" ] && left+=("$path")
done
while IFS= read -r path; do
    case "$path" in /opt/*|/usr/share/applications/*|/usr/share/metainfo/*|*/sightline*) ;; *) continue ;; esac
    { [ -e "$path" ] || [ -L "$path" ]; } && [ ! -d "$path" ] && left+=("$path")
done <<<"$installed_files"
[ ${#left[@]} = 0 ] || fail "left behind after purge: ${left[*]}"

bundle_mib=$(du -sm build/dist-light/sightline | cut -f1)
deb_mib=$(( $(stat -c %s "$deb") / 1048576 ))
echo "Light .deb test passed: build $((t1 - t0)) s, install $((t3 - t2)) s," \
     "bundle ${bundle_mib} MiB, .deb ${deb_mib} MiB ($(basename "$deb"))"
