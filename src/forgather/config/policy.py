"""Which callables a config may name: the import allowlist (docs/security.md).

A config names what it calls by SPEC (``!call:torch.nn:Linear``). Building a
config imports and calls those names, so a config from someone else could
name ``os:system``. An :class:`ImportPolicy` decides, for every SPEC, whether
it may be imported:

* **By name, without importing** (:meth:`ImportPolicy.refusal`): the dotted
  name (``torch.nn.Linear``) is matched against prefix entries; the longest
  matching entry wins, an ``allow`` entry lets it through, a ``deny`` entry or
  no entry at all refuses it. Private names (a step starting with ``_``) are
  refused. A module that is not in the table may still be imported when it is
  the user's own code: its top-level package is found (``PathFinder``, which
  reads directories and imports nothing) inside one of the policy's source
  directories (the project and workspace), and not inside an environment's
  ``site-packages`` or the interpreter's prefix. ``.module:Name`` SPECs are
  allowed when every directory of their ``submodule_searchpath`` is such a
  source directory or Forgather's ``modelsrc``; ``file.py:Name`` SPECs when
  the file is inside one.
* **After importing** (:meth:`ImportPolicy.check_object`): an allowed module
  may re-export something dangerous (``os.path.os`` is ``os``), so every
  module object met while walking the attributes must itself be allowed, and
  the object finally named must not *come from* a denied place (its
  ``__module__`` and ``__qualname__``: ``os.system`` is ``posix.system``).

Decision a reader may question: an entry a user adds (``allow_imports`` in
``meta.yaml``) is trusted entirely; the checks after importing apply only to
names allowed by the defaults, so ``allow_imports: [os]`` really allows
``os:system``. ``trust=True`` (``--trust``, ``FORGATHER_TRUST=1``) allows
everything. A call that passes ``trust_remote_code=True`` (transformers,
datasets) is refused in the same way: it would run code downloaded with a model;
unless what it loads is a directory of the project or the workspace (the user's
own code, e.g. a model directory the config generated).
"""

from __future__ import annotations

import builtins
import os
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import HELPERS, Spec

#: The meta.yaml key that extends the allowlist, and the variable that trusts everything.
META_KEY = "allow_imports"
TRUST_VARIABLE = "FORGATHER_TRUST"
HOW_TO_ALLOW = (
    f"to allow it, add {{entry!r}} to `{META_KEY}:` in the project's meta.yaml "
    f"(or the workspace's meta_defaults.yaml), or run once with --trust ({TRUST_VARIABLE}=1)"
)

#: Builtins a config may call by bare name (``!call:len``) or as ``builtins:NAME``.
#: Left out: eval, exec, compile, __import__, open, input, breakpoint, getattr
#: (the ``getattr`` helper is a checked one), setattr, delattr, globals, locals,
#: vars, dir, type, object, super, memoryview, help, exit, quit.
SAFE_BUILTINS = frozenset((
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hasattr",
    "hash", "hex", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min",
    "next", "oct", "ord", "pow", "print", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "str", "sum", "tuple", "zip",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "KeyError", "IndexError",
    "LookupError", "NotImplementedError", "RuntimeError", "StopIteration", "TypeError",
    "ValueError", "ZeroDivisionError",
))  # fmt: skip

#: What ML configs use. The libraries are large: what they can do is allowed
#: with them (docs/security.md lists the residual risk).
DEFAULT_ALLOW = (
    "forgather.ml", "torch", "transformers", "accelerate", "datasets", "tokenizers",
    "safetensors", "peft",
    "operator", "math", "cmath", "functools", "itertools", "collections", "random",
    "datetime", "os.path", "pathlib", "fractions", "decimal", "statistics", "numbers",
    "heapq", "bisect", "string", "textwrap", "re", "copy", "enum", "json",
)  # fmt: skip

#: The original Forgather's names outside ``forgather.ml`` that its configs call,
#: each under the name configs write and the module defining it (checked after
#: importing): loading another project's targets and the model code generator.
COMPAT_ALLOW = (
    "forgather.from_project", "forgather.project.from_project",
    "forgather.project.compat.from_project", "forgather.codegen.generate_code",
)  # fmt: skip

#: Refused even below an allowed prefix (longest prefix wins), and never the
#: origin of an object reached through an allowed name: process, file-system,
#: network and code-loading functions, and generic attribute access by string.
DEFAULT_DENY = (
    # the interpreter, processes, the file system, the network
    "os", "posix", "nt", "os.path.os", "os.path.sys", "sys", "subprocess", "posixsubprocess",
    "shutil", "tempfile", "glob", "io", "socket", "ssl", "select", "selectors", "asyncio",
    "signal", "pty", "tty", "fcntl", "resource", "mmap", "multiprocessing", "concurrent",
    "threading", "thread", "urllib", "http", "ftplib", "smtplib", "xmlrpc", "webbrowser",
    "ctypes", "cffi", "gc", "inspect", "types", "code", "codeop", "runpy", "importlib",
    "imp", "pkgutil", "zipimport", "frozen_importlib", "frozen_importlib_external",
    "pickle", "cpickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "builtins",
    "logging.config",
    # attribute access by a string, which would step around the private-name check
    "operator.attrgetter", "operator.methodcaller", "functools.singledispatchmethod",
    # writing files
    *(f"pathlib.{cls}.{m}" for cls in ("Path", "PosixPath", "WindowsPath")
      for m in ("open", "write_text", "write_bytes", "touch", "mkdir", "unlink", "rmdir",
                "rename", "replace", "chmod", "lchmod", "symlink_to", "hardlink_to",
                "link_to")),
    "json.dump",
    # running code that is not in the config: downloads, compilers, launchers, pickles
    "torch.hub", "torch.load", "torch.serialization.load", "torch.utils.cpp_extension",
    "torch.package", "torch.ops", "torch.classes", "torch.multiprocessing", "torch.distributed.run",
    "torch.distributed.launch", "torch.distributed.launcher", "torch.distributed.elastic",
    "torch.distributed.rpc", "transformers.dynamic_module_utils", "accelerate.commands",
    "accelerate.launchers",
    # Forgather beyond forgather.ml: the config language imports anything, the CLI runs
    # commands (and a source checkout would otherwise count as the user's own code)
    "forgather",
)  # fmt: skip

#: Modules known under another name (``os.path`` is ``posixpath``).
_MODULE_ALIASES = {"posixpath": "os.path", "ntpath": "os.path", "genericpath": "os.path"}

#: What ``Config.build_data`` allows beyond containers, ``!var`` and pure builtins
#: (meta.yaml, the ``meta`` and ``dynamic_args`` targets read by listing
#: commands): standard modules every Python process has loaded, nothing of the user's.
DATA_ALLOW = ("os.path", "math", "operator")
DATA_HELPERS = frozenset({"getitem", "items", "keys", "values"})

#: A keyword that makes transformers and datasets run code from a model or dataset repository.
REMOTE_CODE_KEYWORD = "trust_remote_code"
REMOTE_CODE_REFUSAL = (
    f"{REMOTE_CODE_KEYWORD}=true would run code downloaded with a model or dataset"
)


def trust_from_environment() -> bool:
    """Whether ``FORGATHER_TRUST`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get(TRUST_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def current_dir() -> list[str]:
    """``[os.getcwd()]``, or ``[]`` when the current directory was removed."""
    try:
        return [os.getcwd()]
    except OSError:
        return []


def default_policy() -> ImportPolicy:
    """The policy of code that names none: the defaults, the current directory as own code."""
    return ImportPolicy.default(source_dirs=current_dir())


def modelsrc_dirs() -> list[str]:
    """Forgather's ``modelsrc`` (wheel: inside the package; checkout: the repository root)."""
    package = Path(__file__).resolve().parents[1]
    return [str(d) for d in (package / "modelsrc", package.parents[1] / "modelsrc") if d.is_dir()]


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _environment_dirs() -> list[str]:
    """Where installed packages and the standard library live: never "own code"."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for entry in sys.path:
        if entry and os.path.basename(entry.rstrip(os.sep)) in ("site-packages", "dist-packages"):
            dirs.add(entry)
    return [os.path.realpath(d) for d in dirs if d]


def _public(dotted: str) -> bool:
    return all(part and not part.startswith("_") for part in dotted.split("."))


def origin_name(obj: Any) -> str | None:
    """Where ``obj`` was defined, as ``module.qualname`` with private modules folded in.

    ``os.system`` -> ``posix.system``; ``pathlib.Path(...).write_text`` ->
    ``pathlib.Path.write_text``; ``operator.mul`` (``_operator.mul``) -> ``operator.mul``.
    """
    target = getattr(obj, "__func__", obj)  # a bound method: its function
    if isinstance(target, types.ModuleType):
        module, qualname = target.__name__, ""
    else:
        module = getattr(target, "__module__", None)
        qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or ""
        owner = getattr(target, "__objclass__", None) or getattr(target, "__self__", None)
        if not isinstance(module, str):
            if isinstance(owner, types.ModuleType):
                module = owner.__name__
            elif isinstance(owner, type):
                module = owner.__module__
            elif owner is not None:  # a method bound to an instance of a builtin type
                module = type(owner).__module__
        if not isinstance(module, str) or not isinstance(qualname, str):
            return None
    parts = module.split(".")
    parts = [parts[0].lstrip("_")] + [p for p in parts[1:] if not p.startswith("_")]
    name = ".".join(p for p in parts if p)
    name = _MODULE_ALIASES.get(name, name)
    return f"{name}.{qualname}" if qualname else name


@dataclass(frozen=True)
class ImportPolicy:
    """What a config may import, decided before importing.

    Attributes:
        allow: dotted prefixes that may be imported (the defaults plus ``extra``).
        deny: dotted prefixes refused even below an allowed one.
        extra: prefixes a user added (``allow_imports``): trusted entirely.
        source_dirs: directories whose Python files are the user's own code
            (the project and the workspace); what lies in them inside an
            installed environment (a ``.venv`` in the project) is not.
        trusted_dirs: directories whose Python files may all be imported
            (Forgather's ``modelsrc``, directories a user added).
        trust: allow everything.
        builtins_allowed: builtins callable by bare name.
        helpers_allowed: the helpers (``getattr``, ``call`` ...) callable by name.
        own_code: whether modules found in ``source_dirs`` are allowed.
    """

    allow: tuple[str, ...] = DEFAULT_ALLOW + COMPAT_ALLOW
    deny: tuple[str, ...] = DEFAULT_DENY
    extra: tuple[str, ...] = ()
    source_dirs: tuple[str, ...] = ()
    trusted_dirs: tuple[str, ...] = ()
    trust: bool = False
    builtins_allowed: frozenset[str] = SAFE_BUILTINS
    helpers_allowed: frozenset[str] = frozenset(HELPERS)
    own_code: bool = True
    _own: dict = field(default_factory=dict, compare=False, repr=False)

    # -- construction -----------------------------------------------------
    @classmethod
    def default(
        cls,
        allow_imports: Iterable[str] = (),
        source_dirs: Iterable[str | os.PathLike] = (),
        trust: bool | None = None,
    ) -> ImportPolicy:
        """The default allowlist, extended.

        Args:
            allow_imports: module prefixes (``mypkg``, ``other.module``) or
                directories (an entry containing ``/``) to allow as well.
            source_dirs: directories holding the user's own Python code.
            trust: allow everything; ``None`` reads ``FORGATHER_TRUST``.
        """
        modules, dirs = [], modelsrc_dirs()
        for entry in allow_imports:
            entry = str(entry).strip()
            if "/" in entry or os.sep in entry or entry.startswith(("~", ".")):
                dirs.append(os.path.expanduser(entry))
            elif entry:
                modules.append(entry)
        return cls(
            allow=DEFAULT_ALLOW + COMPAT_ALLOW + tuple(modules),
            extra=tuple(modules),
            source_dirs=tuple(dict.fromkeys(os.path.realpath(os.fspath(d)) for d in source_dirs)),
            trusted_dirs=tuple(dict.fromkeys(os.path.realpath(d) for d in dirs)),
            trust=trust_from_environment() if trust is None else trust,
        )

    @classmethod
    def data_only(cls) -> ImportPolicy:
        """Containers, ``!var`` and pure functions only: nothing that imports user code."""
        return cls(
            allow=DATA_ALLOW,
            helpers_allowed=DATA_HELPERS,
            own_code=False,
            builtins_allowed=SAFE_BUILTINS - {"print", "map", "filter", "iter", "next"},
        )

    @property
    def data(self) -> bool:
        return not self.own_code

    # -- by name ----------------------------------------------------------
    def _verdict(self, dotted: str) -> tuple[bool | None, bool]:
        """(allowed, by a user entry) for the longest entry matching ``dotted``; None: no entry."""
        best, allowed, extra = -1, None, False
        for entries, verdict in ((self.deny, False), (self.allow, True)):
            for entry in entries:
                if (dotted == entry or dotted.startswith(entry + ".")) and len(entry) >= best:
                    user = entry in self.extra
                    if len(entry) > best or user:  # a user's entry wins a tie with a default
                        best, allowed, extra = len(entry), verdict or user, user
        return allowed, extra

    def allowed_name(self, dotted: str) -> bool:
        """Whether a module or attribute ``dotted`` is allowed by the table or as own code."""
        if self.trust:
            return True
        allowed, _ = self._verdict(dotted)
        if allowed is not None:
            return allowed
        return self.own_code and self.is_own_module(dotted.split(".")[0])

    def trusted_by_user(self, spec: Spec) -> bool:
        """Whether ``spec`` is allowed by an entry the user added (no checks after importing)."""
        if self.trust:
            return True
        if (
            spec.form == "file"
        ):  # a file in a directory the user allowed (``allow_imports: [dir/]``)
            path = os.path.realpath(spec.module)
            return any(_inside(path, d) for d in self.trusted_dirs)
        dotted = self._dotted(spec)
        return dotted is not None and self._verdict(dotted)[1]

    @staticmethod
    def _dotted(spec: Spec) -> str | None:
        if spec.form == "name":
            return spec.attr
        if spec.form == "module":
            return f"{spec.module}.{spec.attr}"
        return None

    def refusal(self, spec: Spec, searchpath: list[str] | None = None) -> tuple[str, str] | None:
        """Why ``spec`` may not be imported, and the entry that would allow it; None if it may.

        Decided from names and directories only: nothing is imported.

        Args:
            spec: a parsed SPEC.
            searchpath: the submodule search path in effect (``.module:Name``
                and ``file.py:Name`` SPECs); None when not known yet.
        """
        if self.trust:
            return None
        if spec.form == "name":
            first = spec.attr.split(".")[0]
            if spec.attr in HELPERS:
                if spec.attr in self.helpers_allowed:
                    return None
                return f"the helper {spec.attr!r} is not allowed here", spec.attr
            if hasattr(builtins, first):
                return self._builtin_refusal(spec.attr)
        if spec.form == "module" and spec.module == "builtins":
            return self._builtin_refusal(spec.attr)
        if not _public(spec.attr):
            return f"{spec.attr!r} is a private name", spec.attr
        if spec.form in ("name", "module"):
            dotted = self._dotted(spec)
            if spec.form == "module" and not _public(spec.module) and not self._verdict(dotted)[1]:
                return f"{spec.module!r} is a private module", spec.module
            if self.allowed_name(dotted):
                return None
            if self.data:
                return (
                    f"{dotted!r} is not data: only containers, !var and pure builtins are",
                    dotted,
                )
            if (
                self._verdict(dotted)[0] is False
            ):  # denied below an allowed prefix, or denied outright
                return f"{dotted!r} is refused by default: it can run code or write files", dotted
            suggestion = spec.module if spec.form == "module" else dotted.rsplit(".", 1)[0]
            return f"{dotted!r} is not an allowed import", suggestion
        if self.data:
            return (
                f"{spec.text!r} is not data: only containers, !var and pure builtins are",
                spec.text,
            )
        if spec.form == "file":
            path = os.path.realpath(spec.module)
            if not self.own_path(path):
                return (
                    f"{spec.module!r} is not in the project, the workspace or an allowed directory",
                    os.path.dirname(path),
                )
            return None
        for directory in searchpath or []:  # "relative": .module:Name
            if not self.own_path(os.path.realpath(str(directory))):
                return (
                    f"submodule_searchpath directory {directory!r} is not in the project, "
                    "the workspace, modelsrc or an allowed directory",
                    directory,
                )
        return None

    def _builtin_refusal(self, attr: str) -> tuple[str, str] | None:
        first = attr.split(".")[0]
        if first in self.builtins_allowed and _public(attr):
            return None
        if self.data:
            return (
                f"the builtin {attr!r} is not data: only containers, !var and pure builtins are",
                f"builtins.{first}",
            )
        return f"the builtin {attr!r} is not allowed", f"builtins.{first}"

    def own_path(self, path: str) -> bool:
        """Whether the file or directory ``path`` (real, absolute) holds code that may be imported."""
        if any(_inside(path, d) for d in self.trusted_dirs):
            return True
        return any(_inside(path, d) for d in self.source_dirs) and not any(
            _inside(path, d) for d in _environment_dirs()
        )

    def own_directory(self, path: Any) -> bool:
        """Whether ``path`` names a directory in the project, the workspace or an allowed one.

        A ``trust_remote_code=True`` loading such a directory runs the user's own
        code (a model directory the config generated), not downloaded code. The
        directory must exist, or its path be absolute (a config checked before
        its first build): a relative name that is not a directory is a hub
        repository to the loaders.
        """
        if not isinstance(path, (str, os.PathLike)):
            return False
        path = os.fspath(path)
        if not (os.path.isdir(path) or (os.path.isabs(path) and not os.path.exists(path))):
            return False
        return self.own_path(os.path.realpath(path))

    def is_own_module(self, top: str) -> bool:
        """Whether the top-level module ``top`` is the user's own code (imports nothing)."""
        if top not in self._own:
            self._own[top] = self._find_own(top)
        return self._own[top]

    def _find_own(self, top: str) -> bool:
        if not (self.source_dirs or self.trusted_dirs) or not top.isidentifier():
            return False
        module = sys.modules.get(top)
        if module is not None:
            locations = list(getattr(module, "__path__", None) or [])
            file = getattr(module, "__file__", None)
            locations += [file] if file else []
        else:
            from importlib.machinery import PathFinder  # reads directories; imports nothing

            try:
                found = PathFinder.find_spec(top)
            except (ImportError, ValueError, OSError):
                return False
            if found is None:
                return False
            locations = list(found.submodule_search_locations or [])
            locations += [found.origin] if found.origin and found.has_location else []
        if not locations:
            return False
        return all(self.own_path(os.path.realpath(location)) for location in locations)

    # -- after importing --------------------------------------------------
    def check_object(self, obj: Any, reached_as: str) -> str | None:
        """Why ``obj``, reached by an allowed name, may not be used; None if it may.

        A module must itself be allowed; any other object must not come from
        a denied place (see :func:`origin_name`).
        """
        if self.trust:
            return None
        if isinstance(obj, types.ModuleType):
            name = _MODULE_ALIASES.get(obj.__name__, obj.__name__)
            # `builtins` itself is harmless: whatever is taken from it is checked below.
            if name != "builtins" and not self.allowed_name(name):
                return f"{reached_as!r} is the module {obj.__name__!r}, which is not allowed"
            return None
        origin = origin_name(obj)
        if origin is None:
            return None
        first = origin.split(".")[0]
        if first == "builtins":
            rest = origin[len("builtins.") :]
            if rest.split(".")[0] in self.builtins_allowed and _public(rest):
                return None
            return f"{reached_as!r} is the builtin {rest!r}, which is not allowed"
        allowed, _ = self._verdict(origin)
        if allowed is False:
            return f"{reached_as!r} is {origin!r}, which is not allowed"
        return None
