"""Where component sources live and which of them a generated model needs.

Decision a reader may question: the files a model needs are found by
following relative imports (``from .norms import RMSNorm``) from the
generated ``modeling_<name>.py``, read with ``ast`` rather than by importing
anything, so a generated directory holds exactly the components its config
uses, and writing it never executes component code.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path


def modelsrc_dir() -> Path:
    """The shipped ``modelsrc/transformer`` directory.

    Installed wheels carry it as ``forgather/modelsrc``; an editable install
    (a source checkout) has it at the repository root.
    """
    package_root = Path(__file__).resolve().parents[2]  # .../forgather
    for candidate in (package_root / "modelsrc", package_root.parents[1] / "modelsrc"):
        if (candidate / "transformer").is_dir():
            return candidate / "transformer"
    raise FileNotFoundError(f"modelsrc/transformer not found near {package_root}")


def relative_imports(source: str, filename: str = "<source>") -> list[str]:
    """Modules imported relatively (``from .x import y`` -> ``x``), in order of appearance.

    Args:
        source: Python source text.
        filename: Named in syntax errors.

    Raises:
        ValueError: For ``from .. import`` (a parent package), which a flat
            model directory cannot provide.
    """
    modules: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        if node.level > 1 or (node.module and "." in node.module):
            # transformers copies remote code as one flat directory of modules.
            raise ValueError(
                f"{filename}:{node.lineno}: only flat relative imports (from .module import X) "
                "are supported in model code"
            )
        # "from . import a, b" imports modules a and b; "from .a import X" module a.
        names = [alias.name for alias in node.names] if node.module is None else [node.module]
        for name in names:
            if name not in modules:
                modules.append(name)
    return modules


def find_component(module: str, searchpath: Sequence[Path]) -> Path | None:
    """The file ``<module>.py`` in the first directory of ``searchpath`` that has it."""
    for directory in searchpath:
        path = Path(directory) / f"{module}.py"
        if path.is_file():
            return path
    return None


def component_closure(
    source: str, searchpath: Sequence[Path], provided: Sequence[str] = ()
) -> dict[str, str]:
    """The component files ``source`` needs, following relative imports transitively.

    Args:
        source: The module that starts the search (the generated modeling file).
        searchpath: Directories to look in, first match wins.
        provided: Modules written separately (the configuration module).

    Returns:
        File name (``norms.py``) -> file text, sorted by name.

    Raises:
        FileNotFoundError: For a relative import found in no directory.
    """
    found: dict[str, str] = {}
    pending = [(m, "<generated modeling file>") for m in relative_imports(source)]
    while pending:
        module, importer = pending.pop()
        relative = f"{module}.py"
        if module in provided or relative in found:
            continue
        path = find_component(module, searchpath)
        if path is None:
            dirs = ", ".join(str(d) for d in searchpath)
            raise FileNotFoundError(f"{importer} imports .{module}, which is in none of: {dirs}")
        text = path.read_text()
        found[relative] = text
        pending += [(m, str(path)) for m in relative_imports(text, str(path))]
    return dict(sorted(found.items()))
