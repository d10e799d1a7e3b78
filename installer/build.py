"""Build a Sightline edition with PyInstaller (one folder), and on Linux its .deb package.

    python installer/build.py --edition light            # build/dist-light/sightline/
    python installer/build.py --edition local --deb      # also build/deb/sightline-local_<v>_<arch>.deb
    python installer/build.py --edition light --deb --reuse   # skip PyInstaller if nothing changed

Run it with the Python of the environment whose packages go in (the project's .venv): PyInstaller
bundles what that interpreter imports. The Light edition is checked for the local AI runtime after the
build and refused if any of it got in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "installer"
BUILD = ROOT / "build"
sys.path.insert(0, str(INSTALLER))

import editions  # noqa: E402

MARKER = "sightline-edition.json"
INSTALL_PREFIX = "/opt/sightline"


def bundle_dir(edition: str) -> Path:
    return BUILD / f"dist-{edition}" / "sightline"


def deb_dir() -> Path:
    return BUILD / "deb"


def app_version() -> str:
    text = (ROOT / "app" / "__init__.py").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise SystemExit("app/__init__.py has no __version__.")


def fingerprint(edition: str) -> str:
    """A hash of everything that decides the bundle's content (except the installed packages' files)."""
    digest = hashlib.sha256(edition.encode())
    files = sorted(
        [
            *ROOT.joinpath("app").rglob("*.py"),
            *ROOT.joinpath("resources").rglob("*"),
            ROOT / "models" / "manifest.json",
            INSTALLER / "sightline.spec",
            INSTALLER / "editions.py",
            INSTALLER / "entry.py",
        ]
    )
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=False
    ).stdout
    digest.update(freeze.encode())
    return digest.hexdigest()


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


# ---------------------------------------------------------------- the bundle


def forbidden_content(folder: Path, names: tuple[str, ...]) -> list[str]:
    """Paths in the bundle that belong to any of these packages (folders, metadata, their libraries)."""
    found = []
    lowered = tuple(n.lower() for n in names)
    for path in folder.rglob("*"):
        part = path.name.lower()
        for name in lowered:
            if (
                part == name
                or (part.startswith(f"{name}-") and part.endswith((".dist-info", ".egg-info")))
                or part.startswith(f"lib{name}")
                or part.startswith(f"{name}.")
            ):
                found.append(str(path.relative_to(folder)))
                break
    return sorted(found)


def run_pyinstaller(edition: editions.Edition, clean: bool) -> Path:
    out = bundle_dir(edition.name)
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(out.parent),
        "--workpath",
        str(BUILD / f"pyinstaller-{edition.name}"),
    ]
    if clean:
        cmd.append("--clean")
    cmd += [str(INSTALLER / "sightline.spec"), "--", "--edition", edition.name]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out


def program_path(folder: Path) -> Path:
    """The bundle's main program (Sightline.exe on Windows, sightline elsewhere)."""
    for name in ("sightline", "Sightline.exe", "sightline-cmd.exe"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no Sightline program in {folder}")


def bundled_modules(folder: Path) -> set[str]:
    """Every Python module in the program's archive (pure-Python packages live there, not as files)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(program_path(folder)))
    pyz = next(name for name in archive.toc if name.endswith(".pyz"))
    return set(archive.open_embedded_archive(pyz).toc)


def local_runtime_in(folder: Path) -> list[str]:
    """Files and modules of the local AI runtime found in a bundle (empty for a good Light build)."""
    runtime = editions.LOCAL_RUNTIME
    modules = sorted(m for m in bundled_modules(folder) if m.split(".")[0] in runtime)
    return forbidden_content(folder, runtime) + modules


def check_bundle(edition: editions.Edition, folder: Path) -> None:
    if edition.name == "light":
        leaked = local_runtime_in(folder)
        if leaked:
            raise SystemExit(
                "The Light bundle contains the local AI runtime, which it must not: " + ", ".join(leaked[:10])
            )
    else:
        modules = bundled_modules(folder)
        absent = [name for name in editions.LOCAL_RUNTIME if name not in modules]
        if absent:
            raise SystemExit(f"The Local AI bundle lacks {', '.join(absent)}.")
    for package in edition.dynamic_libs:
        native = [p for p in folder.rglob(f"{package}/*") if p.suffix in (".so", ".pyd", ".dll", ".dylib")]
        if not native:
            raise SystemExit(f"The bundle lacks the native libraries of {package}.")
    for needed in (
        "models/manifest.json",
        "resources/vad/silero_vad.onnx",
        "resources/icons/sightline.svg",
    ):
        if not any(folder.rglob(needed)):
            raise SystemExit(f"The bundle is missing {needed}.")


def build_bundle(edition: editions.Edition, *, reuse: bool, clean: bool) -> Path:
    folder = bundle_dir(edition.name)
    stamp = fingerprint(edition.name)
    marker = read_marker(folder)
    if reuse and marker and marker.get("fingerprint") == stamp:
        print(f"Reusing {folder} (nothing changed since it was built).")
        return folder
    started = time.monotonic()
    run_pyinstaller(edition, clean)
    seconds = time.monotonic() - started
    check_bundle(edition, folder)
    (folder / MARKER).write_text(
        json.dumps(
            {
                "edition": edition.name,
                "title": edition.title,
                "version": app_version(),
                "fingerprint": stamp,
                "build_seconds": round(seconds, 1),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    print(f"Built {edition.title} in {seconds:.0f} s: {folder} ({mib(tree_size(folder))})")
    return folder


# ---------------------------------------------------------------- the Debian package


def deb_arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _install(src: Path, dest: Path, mode: int = 0o644) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def build_deb(edition: editions.Edition, folder: Path, compression: str) -> Path:
    linux = INSTALLER / "linux"
    version = app_version()
    arch = deb_arch()
    stage = BUILD / f"deb-root-{edition.name}"
    if stage.exists():
        shutil.rmtree(stage)
    opt = stage / INSTALL_PREFIX.lstrip("/")
    shutil.copytree(folder, opt, symlinks=True)
    for path in [opt, *opt.rglob("*")]:  # dpkg keeps modes as staged: readable by all, no group write
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)

    usr_bin = stage / "usr" / "bin"
    usr_bin.mkdir(parents=True)
    (usr_bin / "sightline").symlink_to(f"{INSTALL_PREFIX}/sightline")

    share = stage / "usr" / "share"
    _install(linux / "sightline.desktop", share / "applications" / "sightline.desktop")
    _install(
        linux / "org.sightline.Sightline.metainfo.xml",
        share / "metainfo" / "org.sightline.Sightline.metainfo.xml",
    )
    # Off by default: Hidden=true. Turning "Start with the system" on in Sightline writes the user's own
    # ~/.config/autostart/sightline.desktop, which overrides this one by name.
    _install(linux / "sightline-autostart.desktop", stage / "etc" / "xdg" / "autostart" / "sightline.desktop")
    icons = ROOT / "resources" / "icons"
    for png in sorted(icons.glob("sightline-*.png")):
        size = png.stem.split("-")[1]
        _install(png, share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "sightline.png")
    _install(icons / "sightline.svg", share / "icons" / "hicolor" / "scalable" / "apps" / "sightline.svg")
    _install(linux / "copyright", share / "doc" / edition.package / "copyright")

    debian = stage / "DEBIAN"
    debian.mkdir()
    installed_kib = (tree_size(stage) + 1023) // 1024
    control = (linux / "control.in").read_text(encoding="utf-8")
    others = ", ".join(edition.conflicts)
    for key, value in {
        "PACKAGE": edition.package,
        "VERSION": version,
        "ARCH": arch,
        "INSTALLED_SIZE": str(installed_kib),
        "CONFLICTS": others,
        "SUMMARY": edition.summary,
    }.items():
        control = control.replace(f"@{key}@", value)
    (debian / "control").write_text(control, encoding="utf-8")
    (debian / "conffiles").write_text("/etc/xdg/autostart/sightline.desktop\n", encoding="utf-8")
    for script in ("postinst", "postrm"):
        if (linux / script).is_file():
            _install(linux / script, debian / script, 0o755)

    deb_dir().mkdir(parents=True, exist_ok=True)
    out = deb_dir() / f"{edition.package}_{version}_{arch}.deb"
    level = {"xz": "6", "zstd": "12", "gzip": "9", "none": "0"}[compression]
    cmd = [
        "dpkg-deb",
        "--root-owner-group",
        f"-Z{compression}",
        f"-z{level}",
        "--build",
        str(stage),
        str(out),
    ]
    if compression == "zstd":
        cmd.insert(1, "--threads-max=0")
    started = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"Packed {out.name} in {time.monotonic() - started:.0f} s: {mib(out.stat().st_size)}")
    shutil.rmtree(stage)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a Sightline edition with PyInstaller.")
    parser.add_argument("--edition", required=True, choices=sorted(editions.EDITIONS))
    parser.add_argument("--deb", action="store_true", help="also build the Debian package (Linux)")
    parser.add_argument("--reuse", action="store_true", help="keep the existing bundle if nothing changed")
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first")
    parser.add_argument(
        "--compression",
        default="zstd",
        choices=("xz", "zstd", "gzip", "none"),
        help="how the .deb is compressed: zstd (default) is fast, xz is about 15% smaller",
    )
    args = parser.parse_args(argv)
    edition = editions.get(args.edition)
    started = time.monotonic()
    folder = build_bundle(edition, reuse=args.reuse, clean=args.clean)
    if args.deb:
        if not sys.platform.startswith("linux") or shutil.which("dpkg-deb") is None:
            raise SystemExit("The .deb is built on Debian or Ubuntu, with dpkg-deb.")
        build_deb(edition, folder, args.compression)
    print(f"Bundle: {mib(tree_size(folder))}. Total time {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
