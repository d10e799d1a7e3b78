#!/usr/bin/env python3
"""Fail if any module in app/ imports a heavy library at module level.

torch, transformers and friends take seconds to import; the tray must appear at once and the
model load in the background, so they are imported inside the functions that need them.
`if TYPE_CHECKING:` blocks are allowed. The Qt layering rules are checked by import-linter
(see [tool.importlinter] in pyproject.toml).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HEAVY = {
    "torch",
    "torchvision",
    "transformers",
    "peft",
    "accelerate",
    "cv2",
    "onnxruntime",
    "rapidocr",
    "bitsandbytes",
    "flash_attn",
    "scipy",
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level_imports(block)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _module_level_imports(node.body)


def find_violations(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, module in _module_level_imports(tree.body):
            if module.split(".")[0] in HEAVY:
                problems.append(f"{path}:{lineno}: module-level import of {module}")
    return problems


def main() -> int:
    root = Path(__file__).resolve().parent.parent / "app"
    problems = find_violations(root)
    for line in problems:
        print(line)
    if problems:
        print("Import heavy libraries inside the function that needs them.")
        return 1
    print(f"import rules: no module-level heavy imports in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
