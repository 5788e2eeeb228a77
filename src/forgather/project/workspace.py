"""Where things are: the workspace above a project, Forgather's own template
library, and every project below a directory.

A *workspace* is a directory holding ``forgather_workspace/`` (which carries
``meta_defaults.yaml`` and ``base_directories.yaml``); it is found by walking up
from the project directory. A *project* is a directory holding ``meta.yaml``.

Decision a reader may question: the template library is located from this
file's position rather than through ``importlib.resources``. The wheel puts it
at ``<package dir>/templatelib`` and an editable install leaves it at
``<repo root>/templatelib``; both are plain directories that Jinja's file
loader must read, so a path is what we need, and two ``is_dir`` checks are the
cheapest way to find it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

WORKSPACE_DIR = "forgather_workspace"
META_FILE = "meta.yaml"

# Directories never searched for projects: build outputs, environments, caches.
SKIPPED_DIRS = frozenset(
    {"output_models", "node_modules", "__pycache__", "templates", "venv", "site-packages"}
)

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../forgather


def forgather_dir() -> Path:
    """The directory that holds Forgather's ``templatelib/``.

    Returns:
        The installed package directory when the wheel shipped the library
        there, else the repository root of a source checkout.
    """
    if (_PACKAGE_DIR / "templatelib").is_dir():
        return _PACKAGE_DIR
    return _PACKAGE_DIR.parent.parent  # src/forgather -> repo root


def templatelib_dir() -> Path:
    """Forgather's installed template library (``<forgather_dir>/templatelib``)."""
    return forgather_dir() / "templatelib"


def templatelib_searchdirs() -> list[str]:
    """The template-library directories appended, last, to every search path.

    Every immediate subdirectory of ``templatelib/`` is a search directory;
    they are ordered by name except ``base``, which comes last because it holds
    the most generic templates (a more specific library may override them).

    Returns:
        Absolute directory paths, most specific first.
    """
    root = templatelib_dir()
    try:
        names = sorted(e.name for e in os.scandir(root) if e.is_dir() and e.name[0] not in "._")
    except FileNotFoundError:
        return []
    names.sort(key=lambda n: n == "base")  # stable: keeps alphabetical order otherwise
    return [str(root / n) for n in names]


def find_workspace_root(start: str | os.PathLike) -> Path | None:
    """Walk up from ``start`` to the first directory holding ``forgather_workspace/``.

    Args:
        start: a project directory (or any directory inside a workspace).

    Returns:
        The workspace root, or ``None`` when no parent holds a workspace.
    """
    path = Path(start).resolve()
    for candidate in (path, *path.parents):
        if (candidate / WORKSPACE_DIR).is_dir():
            return candidate
    return None


def find_projects(root: str | os.PathLike) -> Iterator[Path]:
    """Yield every project directory at or below ``root``, in sorted order.

    Hidden directories, ``output_models``, virtual environments, caches and a
    project's own ``templates/`` are not entered; a project's other
    subdirectories are (projects may nest).

    Args:
        root: the directory to walk.

    Yields:
        Project directories (as given, joined with the relative path).
    """
    root = Path(root)
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            continue
        if any(e.name == META_FILE and e.is_file() for e in entries):
            yield directory
        subdirs = [
            Path(e.path)
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and not e.name.startswith(".")
            and e.name not in SKIPPED_DIRS
            and not os.path.exists(os.path.join(e.path, "pyvenv.cfg"))
        ]
        stack.extend(reversed(subdirs))  # depth-first, in name order
