"""A cache of ``forgather ls`` listings, valid while no template file changes.

Listing a project means rendering ``meta.yaml`` and every config; over a
tree of projects that is most of a second, and nearly all of it is Jinja
compiling the same templates again. A listing (names, descriptions, one-line
errors) is stored per project as JSON in the user cache directory
(``$FORGATHER_CACHE_DIR`` overrides it) together with a *fingerprint*: a hash
of the path, size and modification time of every file in ``meta.yaml``, the
workspace's ``forgather_workspace/`` and each directory of the project's
search path. The fingerprint also covers the code that renders the listing:
every module of ``forgather.config`` and ``forgather.project``, the listing
modules themselves, and the installed Jinja2 and PyYAML (each by path, size
and modification time), so a listing made by one version of Forgather (or a
checkout edited since) is never shown by another. A listing is reused only
when the fingerprint still matches, and then neither Jinja2 nor PyYAML is
imported.

Decisions a reader may question:

* The code is fingerprinted by its files, not by the version number: reading
  the installed version (``importlib.metadata``) costs more than the whole
  cached ``ls``, an editable install keeps its version number while its code
  changes, and installing another version rewrites the files.
* The fingerprint covers whole search directories, not the templates a
  config actually uses. Dependencies found by reading templates miss computed
  names (``-- include name_var``); a stat of every file is cheap (about a
  microsecond each) and cannot miss one. What it cannot see is a template
  whose output changes with the time, the host or the environment;
  ``ls --no-cache`` renders everything afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_FORMAT = 2  # bump when the stored listing changes shape

_PACKAGE = Path(__file__).resolve().parent.parent  # .../forgather
# The code a listing depends on: directories (every file below) and single files.
_CODE = ("config", "project", "cli/listing.py", "cli/ls_cache.py")


def cache_dir() -> Path:
    """Where listings are kept: ``$FORGATHER_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get("FORGATHER_CACHE_DIR")
    if env:
        return Path(env) / "ls"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("forgather")) / "ls"


class ListingCache:
    """Load and store project listings, keyed by project directory.

    Directory fingerprints are memoized for the life of the object, so
    ``ls -r`` stats the shared workspace and template library only once.
    """

    def __init__(self, directory: Path | None = None):
        self.directory = directory or cache_dir()
        self._prints: dict[str, bytes] = {}

    def _entry_path(self, project_dir: Path) -> Path:
        key = hashlib.sha1(str(project_dir).encode()).hexdigest()[:20]
        return self.directory / f"{key}.json"

    def _tree_print(self, path: str) -> bytes:
        """Digest of (relative path, :func:`_stat_text`) of every file under ``path``."""
        cached = self._prints.get(path)
        if cached is not None:
            return cached
        h = hashlib.sha1(path.encode())
        if os.path.isfile(path):
            st = os.stat(path)
            h.update(_stat_text(st).encode())
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")  # written by imports
            for name in sorted(files):
                full = os.path.join(root, name)
                try:
                    st = os.stat(full)
                except OSError:  # vanished while walking: just changes the print
                    continue
                h.update(f"{os.path.relpath(full, path)}:{_stat_text(st)}\n".encode())
        self._prints[path] = digest = h.digest()
        return digest

    def code_print(self) -> bytes:
        """Digest of the code that renders listings: ours, Jinja2's and PyYAML's."""
        import importlib.util

        h = hashlib.sha1(f"{CACHE_FORMAT}".encode())
        for part in _CODE:
            h.update(self._tree_print(str(_PACKAGE / part)))
        for module in ("jinja2", "yaml"):
            spec = importlib.util.find_spec(module)  # finds, does not import
            origin = spec.origin if spec is not None and spec.origin else module
            h.update(self._tree_print(os.path.dirname(origin)))
        return h.digest()

    def fingerprint(self, project_dir: Path, workspace_root: str, searchpath: list[str]) -> str:
        """The fingerprint of everything a listing of ``project_dir`` depends on."""
        h = hashlib.sha1(self.code_print())
        for path in [
            str(project_dir / "meta.yaml"),
            os.path.join(workspace_root, "forgather_workspace"),
            *searchpath,
        ]:
            h.update(self._tree_print(path))
        return h.hexdigest()

    def get(self, project_dir: Path) -> dict[str, Any] | None:
        """The stored listing of ``project_dir`` if still valid, else ``None``."""
        try:
            entry = json.loads(self._entry_path(project_dir).read_text())
            valid = entry["fingerprint"] == self.fingerprint(
                project_dir, entry["workspace_root"], entry["searchpath"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry["listing"] if valid else None

    def put(
        self,
        project_dir: Path,
        fingerprint: str,
        workspace_root: str,
        searchpath: list[str],
        listing: dict[str, Any],
    ) -> None:
        """Store a listing; failures to write are ignored (the cache is optional)."""
        entry = {
            "fingerprint": fingerprint,
            "workspace_root": workspace_root,
            "searchpath": searchpath,
            "listing": listing,
        }
        path = self._entry_path(project_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entry))
            os.replace(tmp, path)  # atomic: a concurrent ls never reads half a file
        except OSError:
            pass


def _stat_text(st: os.stat_result) -> str:
    """Size, mtime, ctime and inode: an edit shows even when the mtime is put back
    (``touch -r``, some editors and sync tools), since the ctime cannot be."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
