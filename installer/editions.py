"""The two Sightline editions, shared by the PyInstaller spec, build.py and the installer tests.

Light: the tray app, Qt, on-device text recognition (rapidocr + onnxruntime), speech, capture and the
remote (vLLM) backend. It must not carry the local AI runtime: the local backend then says that the
runtime is not installed.

Local AI: Light plus torch, torchvision, transformers, peft and accelerate. The model weights are never
bundled; the app downloads them on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The local AI runtime: present only in the Local AI edition.
LOCAL_RUNTIME = ("torch", "torchvision", "transformers", "peft", "accelerate")

#: Packages that only the local runtime pulls in (or that nothing in Sightline uses). Keeping them
#: out of the Light edition keeps its size down; keeping the optional ones out of both avoids
#: dragging in test tools, notebooks and GUI toolkits a library merely mentions.
LIGHT_ONLY_EXCLUDES = (
    "torchaudio",
    "torchao",
    "triton",
    "nvidia",
    "bitsandbytes",
    "flash_attn",
    "safetensors",
    "tokenizers",
    "sympy",
    "networkx",
    "jinja2",
    "fsspec",
    "optimum",
)
ALWAYS_EXCLUDES = (
    "tkinter",
    "_tkinter",
    "matplotlib",
    "IPython",
    "notebook",
    "pytest",
    "_pytest",
    "pytestqt",
    "tensorboard",
    "tensorflow",
    "keras",
    "jax",
    "pandas",
    "sklearn",
    "PyQt5",
    "PyQt6",
    "PySide2",
    # rapidocr can drive other inference engines; Sightline runs its ONNX models with onnxruntime.
    "rapidocr.inference_engine.pytorch",
    "rapidocr.inference_engine.paddle",
    "rapidocr.inference_engine.openvino",
    "rapidocr.inference_engine.tensorrt",
    "rapidocr.inference_engine.mnn",
    # Qt modules Sightline does not use (the hooks would otherwise follow optional imports).
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtWebEngineQuick",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.Qt3DCore",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
    "PySide6.QtMultimedia",
    "PySide6.QtPdf",
)


@dataclass(frozen=True)
class Edition:
    name: str  # "light" or "local": the build flag
    title: str  # what a user reads: "Sightline Light"
    package: str  # the Debian package name
    excludes: tuple[str, ...] = ()
    collect_all: tuple[str, ...] = ()  # packages whose code, data and libraries all go in
    dynamic_libs: tuple[str, ...] = ()  # packages whose native libraries are loaded by path, not imported
    summary: str = ""  # the Debian synopsis: under 80 characters, no full stop
    conflicts: tuple[str, ...] = field(default=())


EDITIONS = {
    "light": Edition(
        name="light",
        title="Sightline Light",
        package="sightline",
        excludes=LOCAL_RUNTIME + LIGHT_ONLY_EXCLUDES + ALWAYS_EXCLUDES,
        summary="screen and photo reader for blind and low-vision users (Light)",
        conflicts=("sightline-local",),
    ),
    "local": Edition(
        name="local",
        title="Sightline Local AI",
        package="sightline-local",
        excludes=ALWAYS_EXCLUDES,
        # transformers finds model classes by name at run time: its whole tree must be there.
        collect_all=("transformers", "peft", "accelerate", "safetensors", "tokenizers"),
        # torchvision loads its operators (_C_stable.so, image_stable.so) with torch.ops.load_library.
        dynamic_libs=("torchvision",),
        summary="screen and camera describer with private on-device AI (Local AI)",
        conflicts=("sightline",),
    ),
}


def get(name: str) -> Edition:
    try:
        return EDITIONS[name]
    except KeyError:
        raise SystemExit(f"Unknown edition {name!r}: choose light or local.") from None
