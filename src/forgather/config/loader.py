"""Templates: an ordered search path, sub-templates, rendering, and render errors.

``TemplateSet`` owns the Jinja2 environment. File lookups go through the
search path (first match wins); a multi-template file also registers each of
its ``#---- name ----`` sub-templates under its name, so any template in the
same environment can ``include`` or ``extend`` it.

Templates render in Jinja's sandbox (docs/security.md): a config from
someone else can print what the documented globals give, and nothing more;
what it reaches for instead (``cycler.__init__.__globals__``) is a
:class:`~forgather.config.errors.SandboxError` at its file:line.

Decisions a reader may question:

* A name that matches no file and no sub-template seen so far triggers one
  scan of every file on the search path for separator lines, so a
  sub-template can be used before the file that defines it has been loaded.
* The sandbox is ``SandboxedEnvironment``, not the immutable one: a template
  may still ``append`` to a list of its own; that changes nothing outside it.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from forgather.template_dirs import skipped_dir

from .errors import (
    SandboxError,
    SourceLocation,
    TemplateError,
    TemplateNotFoundError,
    UndefinedVariableError,
    template_chain,
)
from .preprocess import TemplateSection, pad_to_line, preprocess, split_templates
from .sourcemap import LEAVE, LineMap, add_markers, enter_mark, trim_marked
from .template_globals import TemplateFailure, template_globals, toyaml, volatile

STRING_TEMPLATE = "<string>"
# The recordings in progress: (search directories, files read) of every TemplateSet.
_RECORDINGS: list[tuple[list[str], list[str]]] = []


@contextlib.contextmanager
def recording_inputs():
    """While entered, collect the search directories of every TemplateSet made and the
    template files any of them reads: what a render used (the pp cache fingerprints it).

    Yields:
        (directories, files), filled in as they are used (duplicates included).
    """
    used: tuple[list[str], list[str]] = ([], [])
    _RECORDINGS.append(used)
    try:
        yield used
    finally:
        _RECORDINGS.remove(used)


@dataclass
class TemplateRef:
    """A node of the tree of templates a config extends, includes or imports."""

    name: str
    path: str | None
    kind: str  # "root", "extends", "include" or "import"
    children: list[TemplateRef] = field(default_factory=list)


class _CodeCache(jinja2.BytecodeCache):
    """Compiled templates kept in this process, in front of the on-disk cache.

    Jinja keys a bucket on the template's name and file and checks it against
    the checksum of the (preprocessed) source; here the pair (key, checksum)
    finds the code object. A code object is immutable and every environment
    runs it in a namespace of its own, so environments share it: ``ls -r``
    reads and unmarshals each library template once, not once per project.
    """

    #: Code objects kept at most (a long-lived process loading many configs stays bounded).
    SIZE = 4096

    def __init__(self, disk: jinja2.BytecodeCache | None):
        self._disk = disk
        self._codes: dict[tuple[str, str], Any] = {}

    def _keep(self, bucket) -> None:
        if len(self._codes) < self.SIZE:
            self._codes[bucket.key, bucket.checksum] = bucket.code

    def load_bytecode(self, bucket) -> None:
        code = self._codes.get((bucket.key, bucket.checksum))
        if code is not None:
            bucket.code = code
            return
        if self._disk is not None:
            self._disk.load_bytecode(bucket)
            if bucket.code is not None:
                self._keep(bucket)

    def dump_bytecode(self, bucket) -> None:
        self._keep(bucket)
        if self._disk is not None:
            self._disk.dump_bytecode(bucket)


#: One code cache per cache directory ("" when there is none), for the process.
_CODE_CACHES: dict[str, _CodeCache] = {}


def _bytecode_cache() -> jinja2.BytecodeCache:
    """Compiled templates, cached in the process and on disk, keyed by Jinja on
    the source's checksum.

    Compiling is most of a cold load (a new process per CLI command); the disk
    cache makes ``forgather pp`` pay for it once per template version.
    """
    from forgather.cache_root import cache_root

    base = cache_root()
    # Sandboxed code differs from plain Jinja's (calls go through the sandbox) and
    # the cache key does not say which compiled it: a directory of its own.
    directory = os.path.join(base, "jinja-sandbox")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        directory = ""  # read-only home: the process's cache only
    cache = _CODE_CACHES.get(directory)
    if cache is None:
        disk = jinja2.FileSystemBytecodeCache(directory) if directory else None
        cache = _CODE_CACHES[directory] = _CodeCache(disk)
    return cache


#: Largest result of ``**`` (bits) and of repeating a string or list (items) in a template.
MAX_POWER_BITS = 1 << 16
MAX_REPEAT = 10_000_000


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox (no ``_`` attributes, no unsafe callables, bounded ``range``),
    plus bounds on ``**`` and ``*`` so one expression cannot exhaust memory."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        ints = isinstance(left, int) and isinstance(right, int)
        if (
            operator == "**"
            and ints
            and right > 0
            and right * abs(left).bit_length() > MAX_POWER_BITS
        ):
            raise SecurityError(f"{left} ** {right} is too large for a template")
        for seq, n in ((left, right), (right, left)) if operator == "*" else ():
            sequence = isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int)
            if sequence and len(seq) * n > MAX_REPEAT:
                raise SecurityError(
                    f"repeating a {type(seq).__name__} {n} times is too large for a template"
                )
        return super().call_binop(context, operator, left, right)


class _Entered:
    """A template entered by ``include`` or ``extends`` in the marked render: its
    output is bracketed by the marks of the statement that entered it."""

    def __init__(self, template: jinja2.Template, mark: str):
        self._template = template
        self._mark = mark

    def __getattr__(self, name: str) -> Any:
        return getattr(self._template, name)

    def root_render_func(self, context):
        yield self._mark
        yield from self._template.root_render_func(context)
        yield LEAVE


def _entering_statement(depth: int = 4) -> tuple[str, int] | None:
    """(file, line) of the template statement that is asking for a template, if any.

    Compiled template code calls ``get_template`` directly, or through
    ``select_template``/``get_or_select_template``; our own code never has
    ``__jinja_template__`` in its globals.
    """
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            return template.filename, template.get_corresponding_lineno(frame.f_lineno)
        frame = frame.f_back
    return None


class _MarkedSandbox(_Sandbox):
    """The sandbox of the marked render: templates entered from a template are wrapped."""

    def __init__(self, templates: TemplateSet, **options):
        super().__init__(**options)
        self._templates = templates

    def get_template(self, name, parent=None, globals=None):
        template = super().get_template(name, parent, globals)
        statement = _entering_statement()
        if statement is None or statement[0] is None:
            return template
        file_id = self._templates.file_id(statement[0])
        return _Entered(template, enter_mark(file_id, statement[1]))


def _uptodate(path: str):
    """Jinja's cache check: the file has not changed since it was read."""
    mtime = os.path.getmtime(path)
    return lambda: os.path.exists(path) and os.path.getmtime(path) == mtime


def _remember_source(filename: str, text: str) -> None:
    """Let ``linecache`` serve excerpts of in-memory templates."""
    lines = [line + "\n" for line in text.split("\n")]
    linecache.cache[filename] = (len(text), None, lines, filename)


#: Preprocessed sources by template text, for the process (see :func:`_preprocessed`).
_PREPROCESSED: dict[str, str] = {}
_PREPROCESSED_SIZE = 2048


def _preprocessed(text: str) -> str:
    """``preprocess(text)``, remembered: a pure function of the text, and ``ls -r``
    asks for the same library templates once per project."""
    source = _PREPROCESSED.get(text)
    if source is None:
        source = preprocess(text)
        if len(_PREPROCESSED) < _PREPROCESSED_SIZE:
            _PREPROCESSED[text] = source
    return source


class _Loader(jinja2.BaseLoader):
    def __init__(self, templates: TemplateSet, marked: bool):
        self.templates = templates
        self.marked = marked

    def get_source(self, environment, template):
        section, filename, uptodate = self.templates.find(template)
        source = _preprocessed(section.text)
        if section.name:
            source = pad_to_line(source, section.first_line)
        if self.marked:
            source = add_markers(source, self.templates.file_id(filename))
        return source, filename, uptodate


class TemplateSet:
    """The search path, the Jinja2 environments over it, and rendering."""

    def __init__(self, searchpath: list[str], global_vars: dict[str, Any] | None = None):
        self.searchpath = [os.fspath(p) for p in searchpath]
        for directories, _ in _RECORDINGS:
            directories.extend(self.searchpath)
        self.global_vars = dict(global_vars or {})
        self._sections: dict[str, tuple[TemplateSection, str]] = {}
        self._scanned = False
        self._file_ids: dict[str, int] = {}
        self._files: list[str] = []
        self.env = self._environment(marked=False)
        self._marked_env: jinja2.Environment | None = None

    # -- lookup -----------------------------------------------------------
    def _environment(self, marked: bool) -> jinja2.Environment:
        options = dict(
            loader=_Loader(self, marked),
            bytecode_cache=_bytecode_cache(),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
        )
        env = _MarkedSandbox(self, **options) if marked else _Sandbox(**options)
        env.globals.update(template_globals())
        env.globals.update(self.global_vars)
        env.filters["toyaml"] = toyaml
        if marked:
            env.filters["trim"] = trim_marked  # drops the markers of what it strips
        env.filters["random"] = volatile(env.filters["random"])  # output a cache must not keep
        env.globals["lipsum"] = volatile(env.globals["lipsum"])
        return env

    def file_id(self, filename: str) -> int:
        if filename not in self._file_ids:
            self._file_ids[filename] = len(self._files)
            self._files.append(filename)
        return self._file_ids[filename]

    def file_of(self, file_id: int) -> str:
        return self._files[file_id]

    def _read(self, path: str) -> list[TemplateSection]:
        for _, files in _RECORDINGS:
            files.append(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        sections = split_templates(text)
        for section in sections[1:]:
            self._sections[section.name] = (section, path)
        return sections

    def find(self, name: str) -> tuple[TemplateSection, str, Any]:
        """Return (section, filename, uptodate) for a template name.

        Like Jinja's own file loader, a name never leaves the search path: an
        absolute name or one with a ``..`` step matches nothing.
        """
        parts = name.replace("\\", "/").split("/")
        if os.path.isabs(name) or ".." in parts or "\0" in name:
            raise jinja2.TemplateNotFound(name)
        for directory in self.searchpath:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                try:
                    sections = self._read(path)
                except (OSError, UnicodeDecodeError) as e:
                    raise TemplateNotFoundError(f"cannot read template {name!r}: {e}") from e
                self.file_id(path)
                return sections[0], path, _uptodate(path)
        if name not in self._sections and not self._scanned:
            self._scan()
        if name in self._sections:
            section, path = self._sections[name]
            self.file_id(path)
            if path == STRING_TEMPLATE:
                return section, path, lambda: False
            return section, path, _uptodate(path)
        raise jinja2.TemplateNotFound(name)

    def _template_files(self):
        for directory in self.searchpath:
            for root, dirs, files in os.walk(directory):
                dirs[:] = sorted(d for d in dirs if not skipped_dir(d))
                for file in sorted(files):
                    if not file.startswith("."):
                        path = os.path.join(root, file)
                        yield os.path.relpath(path, directory).replace(os.sep, "/"), directory, path

    def _scan(self) -> None:
        self._scanned = True
        for _, _, path in self._template_files():
            try:
                with open(path, encoding="utf-8") as f:
                    if "#---" not in f.read():
                        continue
                self._read(path)
            except (OSError, UnicodeDecodeError):
                continue

    def list_templates(self) -> list[tuple[str, str]]:
        """Every template on the search path: (name, search dir), first match wins."""
        seen: dict[str, str] = {}
        for name, directory, path in self._template_files():
            if name in seen:
                continue
            seen[name] = directory
            try:
                for section in self._read(path)[1:]:
                    seen.setdefault(section.name, directory)
            except (OSError, UnicodeDecodeError):
                continue
        return sorted(seen.items())

    # -- rendering --------------------------------------------------------
    def add_string(self, text: str) -> str:
        """Register a string template (and its sub-templates); return its source."""
        sections = split_templates(text)
        for section in sections[1:]:
            self._sections[section.name] = (section, STRING_TEMPLATE)
        _remember_source(STRING_TEMPLATE, text)
        self.file_id(STRING_TEMPLATE)
        return sections[0].text

    def render(self, name: str | None, text: str | None, variables: dict[str, Any]) -> str:
        """Render a named template, or ``text`` when ``name`` is None."""
        return self._render(self.env, name, text, variables)

    def line_map(self, name: str | None, text: str | None, variables: dict[str, Any]) -> LineMap:
        """Render again with line markers; used only to locate an error."""
        if self._marked_env is None:
            self._marked_env = self._environment(marked=True)
        return LineMap(self._render(self._marked_env, name, text, variables))

    def _render(self, env, name, text, variables) -> str:
        try:
            if name is None:
                source = preprocess(text)
                if env is self._marked_env:
                    source = add_markers(source, self.file_id(STRING_TEMPLATE))
                return _render_named_source(env, source, variables)
            return env.get_template(name).render(variables)
        except TemplateError:
            raise
        except Exception as e:  # every failure of rendering becomes a ConfigError
            raise render_error(e, name or STRING_TEMPLATE, self) from e

    # -- structure --------------------------------------------------------
    def template_tree(self, name: str, kind: str = "root", _seen=None) -> TemplateRef:
        """The tree of templates ``name`` extends, includes or imports."""
        seen = set() if _seen is None else _seen
        found = self._references(name)
        if found is None:
            return TemplateRef(name, None, kind)
        filename, references = found
        ref = TemplateRef(name, filename, kind)
        if name in seen:
            return ref
        seen.add(name)
        for child, child_kind, _ in references:
            ref.children.append(self.template_tree(child, child_kind, seen))
        return ref

    def reference_cycle(self, name: str) -> list[tuple[str, str, int, str]] | None:
        """A cycle of extends/include/import reachable from ``name``, or None.

        Returns:
            The cycle's edges in order, each (template, its file, line of the
            reference, referenced template); the last edge leads back to the
            first template.
        """
        path: list[tuple[str, str, int, str]] = []
        on_path: set[str] = set()
        done: set[str] = set()

        def visit(template: str) -> list | None:
            found = self._references(template)
            if found is None or template in done:
                return None
            filename, references = found
            on_path.add(template)
            for child, _, line in references:
                path.append((template, filename, line, child))
                if child in on_path:
                    start = next(i for i, edge in enumerate(path) if edge[0] == child)
                    return path[start:]
                cycle = visit(child)
                if cycle is not None:
                    return cycle
                path.pop()
            on_path.discard(template)
            done.add(template)
            return None

        return visit(name)

    def variables_read(self, name: str | None, text: str | None = None) -> set[str] | None:
        """Every name the templates of a config read from their context.

        The free variables (Jinja's ``find_undeclared_variables``) of the
        template ``name`` (or of ``text`` when ``name`` is None) and of every
        template it extends, includes or imports. None when that cannot be
        known: a reference computed at render time, or a template that does not
        parse (rendering reports that one).
        """
        pending: list[str | None] = [name]
        seen: set[str | None] = set()
        names: set[str] = set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            found = (None, self._parse(text)) if current is None else self._parsed(current)
            if found is None or found[1] is None:
                return None
            tree = found[1]
            names |= jinja2.meta.find_undeclared_variables(tree)
            for node in tree.find_all(tuple(_REFERENCE_KINDS)):
                if not isinstance(node.template, jinja_nodes.Const):
                    return None
                pending.append(node.template.value)
        return names

    def _parsed(self, name: str) -> tuple[str, jinja_nodes.Template | None] | None:
        """(file, syntax tree) of template ``name``; the tree is None when it does not
        parse (rendering reports that); None when there is no such template."""
        try:
            source, filename, _ = self.env.loader.get_source(self.env, name)
        except jinja2.TemplateNotFound:
            return None
        return filename, self._parse(source)

    def _parse(self, source: str) -> jinja_nodes.Template | None:
        try:
            return self.env.parse(source)
        except jinja2.TemplateSyntaxError:
            return None

    def _references(self, name: str) -> tuple[str, list[tuple[str, str, int]]] | None:
        """(file, [(template, kind, line)]) of what ``name`` references by a constant name."""
        found = self._parsed(name)
        if found is None:
            return None
        filename, tree = found
        if tree is None:
            return filename, []
        references = [
            (node.template.value, _REFERENCE_KINDS[type(node)], node.lineno)
            for node in tree.find_all(tuple(_REFERENCE_KINDS))
            if isinstance(node.template, jinja_nodes.Const)
        ]
        return filename, references


_REFERENCE_KINDS = {
    jinja_nodes.Extends: "extends",
    jinja_nodes.Include: "include",
    jinja_nodes.Import: "import",
    jinja_nodes.FromImport: "import",
}


def _render_named_source(env: jinja2.Environment, source: str, variables) -> str:
    code = env.compile(source, STRING_TEMPLATE, STRING_TEMPLATE)
    template = env.template_class.from_code(env, code, env.make_globals(None))
    return template.render(variables)


def _template_frames(exc: BaseException, known: set[str]) -> list[tuple[str, int]]:
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in known:
            frames.append((filename, tb.tb_lineno))
        tb = tb.tb_next
    return frames


_PAIRED_TAGS = {"block", "if", "for", "macro", "call", "filter", "with", "set", "raw", "autoescape"}


def _innermost_unclosed(env: jinja2.Environment, source: str) -> int | None:
    """The line of the innermost tag ``source`` opens and never closes (``-- block`` without
    ``-- endblock``), for a syntax error that Jinja reports at the end of the file."""
    stack: list[tuple[str, int]] = []
    try:
        tokens = list(env.lex(source))
    except jinja2.TemplateSyntaxError:
        return None
    for i, (line, kind, _) in enumerate(tokens):
        if kind != "block_begin":
            continue
        statement = []  # the tag's tokens up to its end, whitespace left out
        for _, part_kind, part in tokens[i + 1 :]:
            if part_kind == "block_end":
                break
            if part_kind != "whitespace":
                statement.append((part_kind, part))
        if not statement or statement[0][0] != "name":
            continue
        word = statement[0][1]
        if word == "set" and ("operator", "=") in statement:  # `set x = ...` has no end tag
            continue
        if word in _PAIRED_TAGS:
            stack.append((word, line))
        elif word.startswith("end") and stack and stack[-1][0] == word[3:]:
            stack.pop()
    return stack[-1][1] if stack else None


def render_error(exc: Exception, name: str, templates: TemplateSet) -> TemplateError:
    """Turn any exception raised while compiling or rendering into a located error."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        filename = exc.filename or name
        location = SourceLocation(filename, exc.lineno or 1)
        opened = None
        if exc.source is not None and "Unexpected end of template" in (exc.message or ""):
            line = _innermost_unclosed(templates.env, exc.source)
            if line is not None:
                opened = SourceLocation(filename, line)
        return TemplateError(f"template syntax error: {exc.message}", location, opened_at=opened)
    frames = _template_frames(exc, set(templates._files) | {STRING_TEMPLATE})
    location = None
    if frames:
        filename, line = frames[-1]
        location = SourceLocation(filename, line, template_chain(frames[:-1], filename))
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateNotFoundError(
            f"template not found: {exc.name!r}",
            location,
            detail=f"  searched: {', '.join(templates.searchpath)}",
        )
    if isinstance(exc, jinja2.UndefinedError):
        message = exc.message or str(exc)
        # "'jinja2.utils.Namespace object' has no attribute 'x'": a namespace() value not set yet.
        message = message.replace(
            "'jinja2.utils.Namespace object' has no attribute",
            "the namespace has no attribute (set it first with `-- set ns.NAME = ...`):",
        )
        return UndefinedVariableError(message, location)
    if isinstance(exc, TemplateFailure):
        return TemplateError(str(exc), location)
    if isinstance(exc, SecurityError):
        return SandboxError(f"not allowed in a template: {exc}", location)
    if isinstance(exc, RecursionError):  # most often templates that extend or include each other
        cycle = templates.reference_cycle(name)
        if cycle is not None:
            names = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
            _, filename, line, _ = cycle[-1]
            return TemplateError(
                f"templates extend or include each other: {names}", SourceLocation(filename, line)
            )
    return TemplateError(f"{type(exc).__name__} while rendering: {exc}", location)
