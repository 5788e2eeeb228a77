"""``forgather pp`` from a cache: the same text, without importing Jinja2 or PyYAML.

    forgather pp              # renders, prints, stores the text
    forgather pp              # nothing changed: prints the stored text
    forgather pp --no-cache   # renders afresh, stores nothing

``pp`` prints text made from files (the config's templates, the project's
``meta.yaml``, the workspace's templates) by code (Forgather's, Jinja2's,
PyYAML's); :mod:`render_cache` fingerprints all of them by stat, as it does
for ``ls``. Importing Jinja2 and PyYAML is most of an uncached ``pp``, so a
stored text is printed before anything imports them.

The key of an entry is what else the text may depend on: every word of the
command line (global options, ``-t``, ``-D``, ``--set``, the config's own
options), the working directory (``getcwd()``, relative paths), the host and
the interpreter (``hostname``, ``uname``, ``python_executable``) and the
environment variables the template globals read (``HOME``, ``USER``,
``LOGNAME``, ``XDG_*``, ``FORGATHER_*``).

Nothing is stored for a run that failed, wrote to stderr (a warning would
not be shown again), read a clock, ``versions`` or Jinja's ``random``
(:func:`forgather.config.template_globals.volatile_reads`), or wrote to a
file (``-o``, ``-e``). Decision a reader may question: the fingerprint is
taken after the run, and the text is stored only if no file it covers changed
within :data:`SETTLE_NS` before the run began; taken before, it would need
the project's search path before ``meta.yaml`` is read. A file edited during
the run is thus never paired with text rendered from its old content, even
on file systems whose timestamps are coarse.
"""

from __future__ import annotations

import json
import os
import sys
import time

from forgather.cli.render_cache import RenderCache, cache_dir, project_paths

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from forgather.cli.context import CommandContext

#: The code ``pp`` text depends on, besides Jinja2 and PyYAML (directories of forgather/).
PP_CODE = ("config", "project", "cli")
#: Files changed this recently before a run began leave its text unstored.
SETTLE_NS = 2_000_000_000
_ENV_NAMES = ("HOME", "USER", "LOGNAME")
_ENV_PREFIXES = ("XDG_", "FORGATHER_")


def usable(ctx: CommandContext, argv: list[str]) -> bool:
    """Whether this ``pp`` may be answered from, and stored in, the cache."""
    asked_not = {"--no-cache", "-h", "--help"}.intersection(argv)
    return not asked_not and not ctx.output and not ctx.edit


def entry_key(ctx: CommandContext) -> str:
    """Everything besides the fingerprinted files that the text may depend on."""
    env = sorted(
        (name, value)
        for name, value in os.environ.items()
        if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)
    )
    return json.dumps([ctx.argv, os.getcwd(), sys.executable, list(os.uname()), env])


def run_cached(ctx: CommandContext, run: Callable[[], int]) -> int:
    """Print the stored text of this ``pp``, or ``run()`` it and store what it printed."""
    cache = RenderCache(cache_dir("pp"), PP_CODE)
    key = entry_key(ctx)
    text = cache.load(key)
    if isinstance(text, str):
        sys.stdout.write(text)
        return 0
    from forgather.config.template_globals import volatile_reads

    started = time.time_ns()
    reads_before = volatile_reads()
    with _Recording() as recording:
        code = run()
    if code != 0 or recording.incomplete or volatile_reads() != reads_before:
        return code
    meta = ctx.project.meta
    paths = project_paths(meta.project_dir, str(meta.workspace_root), meta.searchpath)
    fingerprint = cache.fingerprint_of(paths)
    if cache.newest_change < started - SETTLE_NS:
        cache.store(key, fingerprint, paths, "".join(recording.stdout))
    return code


class _Recording:
    """Copies what is written to stdout while entered. ``incomplete``: something was
    written that the copy lacks (to stderr, or to stdout's binary buffer)."""

    def __enter__(self) -> _Recording:
        self.stdout: list[str] = []
        self.incomplete = False
        self._streams = sys.stdout, sys.stderr
        sys.stdout = _Copy(sys.stdout, self.stdout.append, self._lacking)
        sys.stderr = _Copy(sys.stderr, self._lacking, self._lacking)
        return self

    def _lacking(self, text: str = "") -> None:
        self.incomplete = True

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self._streams


class _Copy:
    """A text stream that hands each write to ``seen`` too, and calls ``bypassed`` when
    its binary ``buffer`` is taken (writes there would escape the copy)."""

    def __init__(self, stream, seen: Callable[[str], None], bypassed: Callable[[], None]):
        self._stream = stream
        self._seen = seen
        self._bypassed = bypassed

    def write(self, text: str) -> int:
        self._seen(text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        if name == "buffer":
            self._bypassed()
        return getattr(self._stream, name)
