"""Build rules for files a config makes: the original Forgather's ``forgather.ml.construct``.

Model projects written for the original generate a model's source file, copy
the sources it imports and save its config beside them, once::

    pretrained_config: !singleton:forgather.ml.construct:build_rule
        target: "{{ joinpath(output_dir, 'config.json') }}"
        recipe: !partial:forgather.ml.construct:dependency_list
            - !singleton:call [ !singleton:getattr [ *model_config, save_pretrained ], "..." ]
            - !singleton:forgather.ml.construct:copy_package_files [ "...", *model_config ]
        loader: !partial:transformers:AutoConfig.from_pretrained [ "..." ]

Same names, arguments and meaning as the original's.

Decisions a reader may question:

* Processes coordinate through a lock file beside the target (``fcntl``), not
  ``torch.distributed``: one process per node builds, the others wait and
  load, on shared and node-local file systems alike, before any process group
  exists.
* Files are written atomically (a temporary file in the same directory, then
  ``os.replace``), so a reader never sees half a file. A file that exists
  with other contents is handled by ``exists`` (default ``"raise"``: the
  error names the file and how to proceed), where the original's
  ``write_file`` silently kept the old file.
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

#: What ``exists=`` may say when a file to write is there with other contents.
EXISTS_POLICIES = ("ok", "warn", "skip", "raise")

_UNSET: Any = object()


@contextmanager
def file_lock(target: str | os.PathLike, timeout: float = 300.0) -> Iterator[None]:
    """Hold ``.<target name>.lock`` beside ``target`` exclusively while the block runs.

    The lock file stays (removing it would race with a process waiting on it);
    the leading dot keeps it out of listings.

    Raises:
        TimeoutError: another process held it for ``timeout`` seconds.
    """
    import fcntl

    directory, name = os.path.split(os.path.abspath(os.fspath(target)))
    lock_path = os.path.join(directory, f".{name.lstrip('.')}.lock")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{lock_path}: still locked after {timeout:.0f} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (creates directories)."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _out_of_date(target: str, prerequisites: Sequence[str | os.PathLike]) -> bool:
    if not os.path.exists(target):
        return True
    built = os.path.getmtime(target)
    return any(os.path.exists(p) and os.path.getmtime(p) > built for p in prerequisites)


def build_rule(
    target: str | os.PathLike,
    recipe: Callable[[], Any],
    loader: Callable[[], Any],
    prerequisites: Sequence[str | os.PathLike] = (),
) -> Any:
    """Run ``recipe`` if ``target`` is missing or older than a prerequisite; return ``loader()``.

    Args:
        target: the file the recipe makes (``config.json``).
        recipe: called with no arguments to make it.
        loader: called with no arguments to load what was made; its result is returned.
        prerequisites: files whose newer modification time means rebuild.

    Raises:
        TypeError: ``recipe`` or ``loader`` is not callable.
    """
    if not callable(recipe) or not callable(loader):
        raise TypeError("build_rule: recipe and loader must be callables (use !partial)")
    target = os.fspath(target)
    if _out_of_date(target, prerequisites):
        with file_lock(target):
            if _out_of_date(target, prerequisites):  # another process may have built it
                logger.debug("building %s", target)
                recipe()
    else:
        _warn_of_transformers_4_code(os.path.dirname(os.path.abspath(target)))
    with _no_remote_code_prompt():
        return loader()


#: A line only the original Forgather's transformers 4 model template generates.
_TRANSFORMERS_4_MODEL_CODE = "any('AutoModel.from_config' in str(frame.line)"
_warned_directories: set[str] = set()


def _warn_of_transformers_4_code(directory: str) -> None:
    """Warn when ``directory`` holds model code the original Forgather generated for transformers 4.

    Such a directory is loaded as it is (its ``config.json`` exists), and that
    code fails under transformers 5; deleting the directory lets the config
    generate it again (Forgather renders a transformers 5 version).
    """
    if directory in _warned_directories:
        return
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".py")]
    except OSError:
        return
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
                old = _TRANSFORMERS_4_MODEL_CODE in f.read()
        except OSError:
            continue
        if old:
            _warned_directories.add(directory)
            logger.warning(
                "%s was generated by the original Forgather's model template, which does not "
                "work with transformers 5; delete %s to have it generated again",
                os.path.join(directory, name),
                directory,
            )
            return


@contextmanager
def _no_remote_code_prompt() -> Iterator[None]:
    """transformers refuses custom code not asked for instead of asking on the terminal.

    A loader loads what the recipe made. transformers 5's ``AutoTokenizer``
    also reads the ``config.json`` beside a tokenizer, and when that config
    names generated model code (the original Forgather's model projects save
    the tokenizer into the model's directory) it stops for 15 seconds to ask
    whether to run it. Without the prompt it refuses, and the tokenizer loads
    with the generic config, as with transformers 4. A loader that passes
    ``trust_remote_code=True`` is not affected.
    """
    if "transformers" not in sys.modules:  # a loader from transformers imported it already
        yield
        return
    import transformers.dynamic_module_utils as dynamic

    saved = dynamic.TIME_OUT_REMOTE_CODE
    dynamic.TIME_OUT_REMOTE_CODE = 0
    try:
        yield
    finally:
        dynamic.TIME_OUT_REMOTE_CODE = saved


def dependency_list(*args: Any) -> Any:
    """Return the first argument: the rest are built only for their side effects."""
    if not args:
        raise TypeError("dependency_list needs at least one argument")
    return args[0]


def _may_write(path: str, exists: str) -> bool:
    """Whether to replace ``path``, which exists with other contents, by the ``exists`` policy."""
    if exists == "ok":
        return True
    if exists == "warn":
        logger.warning("%s: its source changed; overwriting it", path)
        return True
    if exists == "skip":
        logger.warning("%s: its source changed; keeping the old file (exists='skip')", path)
        return False
    raise FileExistsError(
        f"{path} exists with other contents; delete it, or pass exists='ok' to overwrite it"
    )


def _check_policy(exists: str) -> None:
    if exists not in EXISTS_POLICIES:
        raise ValueError(f"exists must be one of {', '.join(EXISTS_POLICIES)}; got {exists!r}")


def write_file(
    data: str | Callable[[], str],
    output_file: str | os.PathLike | None = None,
    return_value: Any = _UNSET,
    exists: str = "raise",
) -> Any:
    """Write text to a file (atomically, one process at a time) and pass it on.

    Args:
        data: the text, or a callable returning it.
        output_file: where to write it (directories are created); ``None``: write nothing.
        return_value: returned instead of the text when given.
        exists: the file is there with other contents: ``"ok"`` overwrite,
            ``"warn"`` overwrite and log, ``"skip"`` keep it and log,
            ``"raise"`` raise ``FileExistsError``. Same contents: nothing is written.

    Returns:
        ``return_value`` if given, else the text.
    """
    _check_policy(exists)
    if callable(data):
        data = data()
    if not isinstance(data, str):
        raise TypeError(f"write_file: data must be text, got {type(data).__name__}")
    if output_file is not None:
        path = os.path.abspath(os.fspath(output_file))
        with file_lock(path):
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    same = f.read() == data
                if not same and _may_write(path, exists):
                    atomic_write(path, data)
            else:
                atomic_write(path, data)
    return data if return_value is _UNSET else return_value


def _package_modules(module: types.ModuleType) -> list[types.ModuleType]:
    """``module`` and every module of its package it references, directly or not."""
    package = module.__name__.rpartition(".")[0]
    prefix = package + "." if package else module.__name__
    found: dict[str, types.ModuleType] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        if current.__name__ in found:
            continue
        found[current.__name__] = current
        for value in list(vars(current).values()):
            name = value.__name__ if isinstance(value, types.ModuleType) else None
            if name is None:
                name = getattr(value, "__module__", None)
            if not isinstance(name, str) or not name.startswith(prefix) or name in found:
                continue
            referenced = sys.modules.get(name)
            if referenced is not None:
                todo.append(referenced)
        # The packages holding a module come with it (their __init__.py).
        parent = current.__name__.rpartition(".")[0]
        if parent.startswith(prefix) and parent not in found and parent in sys.modules:
            todo.append(sys.modules[parent])
    return list(found.values())


def copy_package_files(dest_dir: str | os.PathLike, obj: Any, exists: str = "raise") -> Any:
    """Copy the source file defining ``obj`` and the package sources it uses into ``dest_dir``.

    For a model whose code was generated into a directory, this puts every
    module it imports (``from .causal_lm import CasualLM``) beside it, so the
    directory loads on its own (``AutoModel.from_pretrained(..., trust_remote_code=True)``).
    Modules in subpackages keep their subdirectory.

    Args:
        dest_dir: the directory to copy into.
        obj: an object (or class) defined in the package.
        exists: a destination file with other contents: as for :func:`write_file`.

    Returns:
        ``obj``, unchanged.
    """
    _check_policy(exists)
    dest_dir = os.path.abspath(os.fspath(dest_dir))
    module_name = obj.__module__ if not isinstance(obj, types.ModuleType) else obj.__name__
    module = sys.modules.get(module_name)
    if module is None:
        raise ValueError(f"copy_package_files: the module {module_name!r} of {obj!r} is not loaded")
    package = module.__name__.rpartition(".")[0]
    with file_lock(os.path.join(dest_dir, "package_files")):
        for mod in _package_modules(module):
            origin = getattr(mod, "__file__", None)
            if not origin or not origin.endswith(".py"):
                continue
            relative = mod.__name__[len(package) + 1 :] if package else mod.__name__
            subdirs = relative.split(".")[:-1]
            if os.path.basename(origin) == "__init__.py":
                subdirs = relative.split(".")
            dest = os.path.join(dest_dir, *subdirs, os.path.basename(origin))
            if os.path.exists(dest):
                if os.path.samefile(origin, dest) or filecmp.cmp(origin, dest, shallow=False):
                    continue
                if not _may_write(dest, exists):
                    continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = dest + ".tmp"
            shutil.copy2(origin, tmp)
            os.replace(tmp, dest)
    return obj


def load_from_config(
    project_dir: str | os.PathLike,
    config_template: str | None = None,
    targets: str | list[str] = "",
    **config_kwargs: Any,
) -> Any:
    """Build targets of another project's config (deprecated in the original: use ``from_project``)."""
    from forgather.project.compat import from_project

    return from_project(project_dir, config_template, targets, **config_kwargs)


def add_special_tokens(tokenizer: Any, token_map: dict[str, Any]) -> Any:
    """Add special tokens (``{"pad_token": "<pad>"}``) to a tokenizer and return it."""
    tokenizer.add_special_tokens(token_map)
    return tokenizer


def register_for_auto_class(obj: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``obj.register_for_auto_class(*args, **kwargs)`` and return ``obj``."""
    obj.register_for_auto_class(*args, **kwargs)
    return obj


_DTYPE_NAMES = (
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "complex32",
    "complex64", "complex128", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
    "int64", "bool", "quint8", "qint8", "qint32", "quint4x2", "float8_e4m3fn", "float8_e5m2",
)  # fmt: skip


def torch_dtype(type: str) -> Any:  # noqa: A002 - the original's keyword
    """The ``torch.dtype`` named ``type`` (``"bfloat16"``, ``"float32"``, ...).

    Raises:
        KeyError: not a dtype name.
    """
    import torch

    if type not in _DTYPE_NAMES:
        raise KeyError(f"not a torch dtype name: {type!r}; one of {', '.join(_DTYPE_NAMES)}")
    return getattr(torch, type)


def module_to_dtype(module_ctor: Callable[..., Any], dtype: str, **kwargs: Any) -> Any:
    """Build a module with ``module_ctor(**kwargs)`` and convert it to ``dtype``."""
    return module_ctor(**kwargs).to(dtype=torch_dtype(dtype))
