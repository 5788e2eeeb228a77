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
options), the working directory (``getcwd()``, relative paths) and where
``-p`` leads (a link may be repointed), the host and the interpreter
(``hostname``, ``uname``, ``python_executable``) and the environment variables
the template globals read or that change which code runs (``HOME``, ``USER``,
``LOGNAME``, ``PYTHONPATH``, ``XDG_*``, ``FORGATHER_*``).

The fingerprint covers what the run's template sets used, recorded by the
loader (:func:`forgather.config.loader.recording_inputs`): every directory on
their search paths (the project's, the one ``meta.yaml`` renders with, a
``-t`` file's own directory), walked as the loader walks them, the template
library's root (a new library directory joins every search path), the files
read from elsewhere, and probes of the ``meta.yaml`` and
``forgather_workspace/`` that would be found first if they appeared.

Nothing is stored for a run that failed, wrote to stderr (a warning would
not be shown again), read a clock, ``versions`` or Jinja's ``random``
(:func:`forgather.config.template_globals.volatile_reads`), printed an
object's address (``<... at 0x...>``), wrote to a file (``-o``, ``-e``), or
would need more than :data:`MAX_FILES` stats to check. Decisions a reader may
question: the fingerprint is taken after the run, and the text is stored only
if no file or directory it covers changed within :data:`SETTLE_NS` before the
run began and no file it read has gone; taken before, it would need the
project's search path before ``meta.yaml`` is read. A file edited, deleted
or moved during the run is thus never paired with text rendered from its old
content, even on file systems whose timestamps are coarse. Entries beyond
:data:`KEEP_ENTRIES` are deleted, oldest first.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

from forgather.cli.render_cache import RenderCache, TooManyFiles, cache_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from forgather.cli.context import CommandContext

#: The code ``pp`` text depends on, besides Jinja2 and PyYAML (directories of forgather/).
PP_CODE = ("config", "project", "cli")
#: Files changed this recently before a run began leave its text unstored: 2 s, the
#: coarsest timestamps of common file systems; ``FORGATHER_PP_SETTLE_SECONDS`` sets it.
SETTLE_NS = int(float(os.environ.get("FORGATHER_PP_SETTLE_SECONDS") or 2) * 1e9)
#: A fingerprint that would stat more files than this is not worth taking (the render is
#: faster): such a pp is never stored.
MAX_FILES = 5_000
#: Entries kept; the oldest beyond this are deleted when one is stored.
KEEP_ENTRIES = 500
_OBJECT_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
_ENV_NAMES = ("HOME", "USER", "LOGNAME", "PYTHONPATH")
_ENV_PREFIXES = ("XDG_", "FORGATHER_")


def usable(ctx: CommandContext, argv: list[str]) -> bool:
    """Whether this ``pp`` may be answered from, and stored in, the cache."""
    asked_not = {"--no-cache", "-h", "--help"}.intersection(argv)
    if asked_not or ctx.output or ctx.edit:
        return False
    try:
        os.getcwd()
    except OSError:  # the working directory was deleted: nothing to key on
        return False
    return True


def entry_key(ctx: CommandContext) -> str:
    """Everything besides the fingerprinted files that the text may depend on."""
    env = sorted(
        (name, value)
        for name, value in os.environ.items()
        if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)
    )
    where = [os.getcwd(), os.path.realpath(ctx.project_dir)]  # a -p link may be repointed
    return json.dumps([ctx.argv, where, sys.executable, list(os.uname()), env])


def run_cached(ctx: CommandContext, run: Callable[[], int]) -> int:
    """Print the stored text of this ``pp``, or ``run()`` it and store what it printed."""
    cache = RenderCache(cache_dir("pp"), PP_CODE, max_files=MAX_FILES)
    key = entry_key(ctx)
    text = cache.load(key)
    if isinstance(text, str):
        sys.stdout.write(text)
        return 0
    from forgather.config.loader import recording_inputs
    from forgather.config.template_globals import volatile_reads

    reads_before = volatile_reads()
    started = time.time_ns()
    with _Recording() as recording, recording_inputs() as (searched, read):
        code = run()
    text = "".join(recording.stdout)
    if code != 0 or recording.incomplete or volatile_reads() != reads_before:
        return code
    if _OBJECT_ADDRESS.search(text):  # an object's repr: another address every run
        return code
    _store(ctx, cache, key, text, started, searched, read)
    return code


def _store(ctx: CommandContext, cache: RenderCache, key: str, text: str, started: int,
           searched: list[str], read: list[str]) -> None:  # fmt: skip
    """Store ``text`` with the fingerprint of what the run used, if that held still."""
    from forgather.project.workspace import templatelib_dir

    # Every search directory the run's template sets had (the project's, the meta
    # render's, a -t file's own), the library root (a new library directory joins
    # every search path) and the files read (from directories no walk covers).
    walked = sorted({*searched, str(templatelib_dir())})
    inside = tuple(os.path.join(d, "") for d in walked)
    paths = walked + sorted({f for f in read if not f.startswith(inside)})
    probes = _discovery_probes(ctx)
    try:
        fingerprint = cache.fingerprint_of(paths, probes)
    except TooManyFiles:
        return
    if any(not os.path.isfile(path) for path in read):  # deleted while it rendered
        return
    if cache.newest_change < started - SETTLE_NS:
        cache.store(key, fingerprint, paths, text, probes)
        cache.prune(KEEP_ENTRIES)


def _discovery_probes(ctx: CommandContext) -> list[str]:
    """The paths whose appearance would change which project and workspace are found:
    ``meta.yaml`` from where the search starts up to the project found (the nearest wins),
    and ``forgather_workspace`` from the project up to the workspace root."""
    meta = ctx.project.meta
    probes = []
    for directory in _upwards(os.path.abspath(ctx.project_dir)):
        probes.append(os.path.join(directory, "meta.yaml"))
        if os.path.isfile(probes[-1]):
            break
    for directory in _upwards(os.path.realpath(meta.project_dir)):
        probes.append(os.path.join(directory, "forgather_workspace"))
        if os.path.isdir(probes[-1]):
            break
    return probes


def _upwards(path: str):
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


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
