"""Caches of rendered output (``ls`` listings, ``pp`` text), valid while nothing changes.

Listing a project means rendering ``meta.yaml`` and every config; over a
tree of projects that is most of a second, and nearly all of it is Jinja
compiling the same templates again. ``pp`` of one config spends most of its
time importing Jinja2 and PyYAML. Both outputs are stored as JSON in the user
cache directory (``$FORGATHER_CACHE_DIR`` overrides it) together with a
*fingerprint*: a hash of the path, size, modification and change time and
inode of every file in the project's ``meta.yaml``, the workspace's
``forgather_workspace/`` and each directory of the project's search path. The
fingerprint also covers the code that renders the output (every module of
``forgather.config`` and ``forgather.project``, the command's own modules, and
the installed Jinja2 and PyYAML, each by the same stat), so output made by
one version of Forgather (or a checkout edited since) is never shown by
another. A stored output is reused only when the fingerprint still matches,
and then neither Jinja2 nor PyYAML is imported.

Decisions a reader may question:

* The code is fingerprinted by its files, not by the version number: reading
  the installed version (``importlib.metadata``) costs more than the whole
  cached ``ls``, an editable install keeps its version number while its code
  changes, and installing another version rewrites the files.
* The fingerprint covers whole search directories, not the templates a
  config actually uses. Dependencies found by reading templates miss computed
  names (``-- include name_var``); a stat of every file is cheap (about a
  microsecond each) and cannot miss one.
* Output whose text depends on more than the files is not stored: a render
  that called a clock (``now()``, ``isotime()``...), read ``versions`` or
  Jinja's ``random``/``lipsum`` counts a *volatile read*
  (:func:`forgather.config.template_globals.volatile_reads`), and the
  caller skips storing it. What the rest depends on (the working directory,
  the host, the environment) is in the key of ``pp``'s entries
  (:mod:`forgather.cli.pp_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os

from forgather.template_dirs import skipped_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

CACHE_FORMAT = 4  # bump when the stored entries or the fingerprint change shape

# .../forgather. Paths are strings here: importing pathlib would be a tenth of a cached pp.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
# The code a listing depends on: directories (every file below) and single files.
LISTING_CODE = ("config", "project", "cli/listing.py", "cli/render_cache.py")


def cache_dir(kind: str) -> str:
    """Where entries of ``kind`` (``ls``, ``pp``) are kept: under ``$FORGATHER_CACHE_DIR``
    or the user cache dir."""
    from forgather.cache_root import cache_root

    return os.path.join(cache_root(), kind)


def project_paths(
    project_dir: str | os.PathLike, workspace_root: str, searchpath: list[str]
) -> list[str]:
    """What a project's rendered output is made from: its ``meta.yaml``, the workspace's
    shared templates and every directory of its search path."""
    return [
        os.path.join(project_dir, "meta.yaml"),
        os.path.join(workspace_root, "forgather_workspace"),
        *searchpath,
    ]


class TooManyFiles(Exception):
    """A fingerprint would stat more files than the cache's ``max_files``: not worth it."""


class RenderCache:
    """Entries keyed by a string, each valid while its files' fingerprint holds.

    A fingerprint covers *trees* (every file below a directory, walked as the
    template loader walks: symbolic links followed, hidden directories, caches
    and ``output_models`` skipped; a file path is the file alone) and *probes*
    (whether a path exists and, for a file, its stat: a ``meta.yaml`` or
    ``forgather_workspace/`` that would be found first if it appeared).
    Directory fingerprints are memoized for the life of the object, so
    ``ls -r`` stats the shared workspace and template library only once.

    Args:
        directory: where the entries are kept.
        code: directories and files of the ``forgather`` package the output depends on.
        max_files: a fingerprint that would stat more files raises :class:`TooManyFiles`
            (``None``: no limit).
    """

    def __init__(self, directory: str | os.PathLike, code: tuple[str, ...],
                 max_files: int | None = None):  # fmt: skip
        self.directory = os.fspath(directory)
        self.code = code
        self.max_files = max_files
        self._prints: dict[str, bytes] = {}
        self._files = 0
        #: The latest modification or change time (ns) of any file or directory seen so far.
        self.newest_change = 0

    def _entry_path(self, key: str) -> str:
        return os.path.join(self.directory, f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.json")

    def _tree_print(self, path: str) -> bytes:
        """Digest of (relative path, :func:`_stat_text`) of every file under ``path``."""
        cached = self._prints.get(path)
        if cached is not None:
            return cached
        h = hashlib.sha1(path.encode())
        if os.path.isfile(path):
            self._stat_into(h, path, path)
        visited: set[str] = set()
        for root, dirs, files in os.walk(path, followlinks=True):
            real = os.path.realpath(root)
            if real in visited:  # a link back up the tree
                dirs[:] = []
                continue
            visited.add(real)
            try:  # noqa: SIM105 - contextlib costs a cached pp 8 ms to import
                self._saw(os.stat(root))
            except OSError:  # gone since the walk listed it
                pass
            dirs[:] = sorted(d for d in dirs if not skipped_dir(d))
            for name in sorted(files):
                self._stat_into(h, os.path.join(root, name), path)
        self._prints[path] = digest = h.digest()
        return digest

    def _stat_into(self, h, full: str, top: str) -> None:
        self._files += 1
        if self.max_files is not None and self._files > self.max_files:
            raise TooManyFiles(top)
        try:
            st = os.stat(full)
        except OSError:  # vanished while walking, or a dangling link: just changes the print
            h.update(f"{full}:missing\n".encode())
            return
        h.update(f"{os.path.relpath(full, top)}:{_stat_text(st)}\n".encode())
        self._saw(st)

    def _probe_print(self, path: str) -> bytes:
        """Whether ``path`` is missing, a directory, or a file (with its stat)."""
        try:
            st = os.stat(path)
        except OSError:
            return f"{path}:missing".encode()
        self._saw(st)
        kind = "dir" if os.path.isdir(path) else _stat_text(st)
        return f"{path}:{kind}".encode()

    def _saw(self, st: os.stat_result) -> None:
        self.newest_change = max(self.newest_change, st.st_mtime_ns, st.st_ctime_ns)

    def code_print(self) -> bytes:
        """Digest of the code that renders the output: ours, Jinja2's (and MarkupSafe's)
        and PyYAML's."""
        from importlib.machinery import PathFinder  # importlib.util costs a cached pp 5%

        h = hashlib.sha1(f"{CACHE_FORMAT}".encode())
        for part in self.code:
            h.update(self._tree_print(os.path.join(_PACKAGE, part)))
        for module in ("jinja2", "markupsafe", "yaml"):
            spec = PathFinder.find_spec(module)  # finds on sys.path, does not import
            origin = spec.origin if spec is not None and spec.origin else module
            h.update(self._tree_print(os.path.dirname(origin)))
        return h.digest()

    def fingerprint_of(self, paths: list[str], probes: list[str] = ()) -> str:
        """The fingerprint of the code, every file under ``paths`` and the ``probes``.

        Raises:
            TooManyFiles: more than ``max_files`` files to stat.
        """
        h = hashlib.sha1(self.code_print())
        for path in paths:
            h.update(self._tree_print(path))
        for path in probes:
            h.update(self._probe_print(path))
        return h.hexdigest()

    def load(self, key: str) -> Any:
        """The value stored under ``key`` if still valid, else ``None`` (also for an
        entry that cannot be read, whatever is wrong with it: the next store replaces it)."""
        try:
            with open(self._entry_path(key), encoding="utf-8") as f:
                entry = json.load(f)
            valid = entry["key"] == key and entry["fingerprint"] == self.fingerprint_of(
                entry["paths"], entry.get("probes", [])
            )
        except Exception:  # noqa: BLE001 - a damaged or foreign entry is a miss
            return None
        return entry["value"] if valid else None

    def store(self, key: str, fingerprint: str, paths: list[str], value: Any,
              probes: list[str] = ()) -> None:  # fmt: skip
        """Store ``value``; failures to write are ignored (the cache is optional).

        ``fingerprint`` must describe the files as they were when the output was
        made (``ls`` takes it before rendering; ``pp`` checks that nothing changed
        since shortly before it started).
        """
        entry = {"key": key, "fingerprint": fingerprint, "paths": paths,
                 "probes": list(probes), "value": value}  # fmt: skip
        path = self._entry_path(key)
        try:
            os.makedirs(self.directory, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(entry, f)
            os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass

    def prune(self, keep: int) -> None:
        """Delete all but the ``keep`` most recently written entries."""
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(".json")]
            entries.sort(key=lambda e: e.stat().st_mtime_ns, reverse=True)
            for entry in entries[keep:]:
                os.unlink(entry.path)
        except OSError:
            pass


class ListingCache(RenderCache):
    """``ls`` listings (names, descriptions, one-line errors), keyed by project directory."""

    def __init__(self, directory: str | os.PathLike | None = None):
        super().__init__(directory or cache_dir("ls"), LISTING_CODE)

    def fingerprint(
        self, project_dir: str | os.PathLike, workspace_root: str, searchpath: list[str]
    ) -> str:
        """The fingerprint of everything a listing of ``project_dir`` depends on."""
        return self.fingerprint_of(project_paths(project_dir, workspace_root, searchpath))

    def get(self, project_dir: str | os.PathLike) -> dict[str, Any] | None:
        """The stored listing of ``project_dir`` if still valid, else ``None``."""
        return self.load(str(project_dir))

    def put(
        self,
        project_dir: str | os.PathLike,
        fingerprint: str,
        workspace_root: str,
        searchpath: list[str],
        listing: dict[str, Any],
    ) -> None:
        """Store a listing made after ``fingerprint`` was taken."""
        paths = project_paths(project_dir, workspace_root, searchpath)
        self.store(str(project_dir), fingerprint, paths, listing)


def _stat_text(st: os.stat_result) -> str:
    """Size, mtime, ctime and inode: an edit shows even when the mtime is put back
    (``touch -r``, some editors and sync tools), since the ctime cannot be."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
