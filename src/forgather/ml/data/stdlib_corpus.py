"""The embedded default corpus: the running interpreter's standard library sources.

Every machine that runs Forgather has these ``*.py`` files, so a first-time user
can train a tokenizer and a model with nothing downloaded.

Decision a reader may question: the standard library's own test suites are left
out by default. They are half the bytes, and they deliberately contain files in
legacy encodings and invalid syntax (``test/encoded_modules``, ``badsyntax_*``),
which would have to be skipped with warnings on every first run. Installed
third-party packages (``site-packages``) are always left out: they differ between
machines, and the corpus must not.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from forgather.ml.data.sources import TextFiles

# Globs on paths relative to the stdlib directory (see sources.glob_match).
_ALWAYS_EXCLUDED = ("site-packages/**", "dist-packages/**", "**/__pycache__/**")
_TEST_SUITES = ("**/test/**", "**/tests/**", "idlelib/idle_test/**")


def stdlib_dir() -> Path:
    """The directory of the running interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_stdlib_source(
    include_tests: bool = False,
    packages: list[str] | None = None,
    on_error: str = "skip",
) -> TextFiles:
    """A text source over the standard library's ``*.py`` files, one document per file.

    Args:
        include_tests: also read the stdlib's own test suites (about twice the bytes).
        packages: restrict to these top-level modules or packages (e.g. ``["json",
            "email", "textwrap.py"]``): a small, fast subset for tests and tutorials.
        on_error: what to do with a file that is not UTF-8; the default skips it with
            a logged warning (only the test suites contain such files).

    Returns:
        A :class:`~forgather.ml.data.sources.TextFiles` whose file names are paths
        relative to the stdlib directory (``json/decoder.py``), so file-level splits
        are the same on every machine with the same Python version.
    """
    root = stdlib_dir()
    exclude = _ALWAYS_EXCLUDED + (() if include_tests else _TEST_SUITES)
    include: tuple[str, ...] = ()
    if packages is not None:
        names = [p.removesuffix(".py") for p in packages]
        include = tuple(pattern for n in names for pattern in (f"{n}/**", f"{n}.py"))
    return TextFiles(
        root,
        pattern="**/*.py",
        exclude=exclude,
        include=include,
        on_error=on_error,  # type: ignore[arg-type]
    )
