"""Code generation: node graph -> a standalone Python module (LANGUAGE.md, section 5).

The module defines ``construct(**context_vars)``, which rebuilds exactly what
:func:`~forgather.config.build.Builder` builds:

* singletons are assigned once, in dependency order, to local variables
  (inlined where they are used once and evaluated once);
* factories are inlined at each reference, or become a local ``def`` when
  named or referenced from several places;
* partials become ``functools.partial`` when their arguments are plain values
  or shared objects, and a local ``def`` when an argument must be rebuilt on
  every call (a factory or container inside);
* ``!var`` become keyword parameters of ``construct`` with their defaults.

Reference counts and variable names come from
:func:`~forgather.config.traverse.walk`; expressions are written by
recursing through the nodes (traverse.py says why not through ``walk``), and
a container is written by assembling its children's source into the plain
list/tuple/dict it builds to, then printing that like any literal.

Decisions a reader may question: ``!meta`` nodes are evaluated while
generating (their callee wants unbuilt nodes, which generated code does not
have) and emitted as literals; source-file SPECs (``file.py:Name``,
``.module:Name``) are imported through a small helper emitted into the module,
or as relative imports when the caller asks (generated model directories).
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
from dataclasses import dataclass
from typing import Any

from .build import Builder
from .errors import ConfigError, CycleError
from .nodes import (
    FACTORY,
    META,
    PARTIAL,
    SINGLETON,
    CallNode,
    Container,
    Node,
    VarNode,
    describe,
)
from .policy import ImportPolicy
from .spec import HELPERS, Spec, module_split, parse_spec
from .traverse import first_paths, reference_counts

_WIDTH = 88
_INDENT = "    "
_MISSING_NAME = "_MISSING"

_SOURCE_IMPORT_HELPER = '''
def _import_from_source(module, attr, searchpath):
    """Import ``module`` from the directories in ``searchpath`` and return ``attr``.

    The directories act as one package, so relative imports between the
    source files work.
    """
    import hashlib
    import importlib
    import os
    import sys
    import types

    paths = [os.path.abspath(p) for p in searchpath]
    package = "_forgather_src_" + hashlib.sha1("\\0".join(paths).encode()).hexdigest()[:12]
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = paths
        sys.modules[package] = pkg
    obj = importlib.import_module(package + "." + module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
'''


def _indent(text: str, prefix: str = _INDENT) -> str:
    return prefix + text.replace("\n", "\n" + prefix)


def _wrap(open_: str, parts: list[str], close: str, trailing_comma: bool = False) -> str:
    one_line = (
        open_ + ", ".join(parts) + ("," if trailing_comma and len(parts) == 1 else "") + close
    )
    if len(one_line) <= _WIDTH and "\n" not in one_line:
        return one_line
    return open_ + "\n" + "".join(_indent(p) + ",\n" for p in parts) + close


@dataclass(frozen=True)
class _Source:
    """Python source already written for a node, placed inside a literal by :func:`_literal`."""

    text: str


def _literal(value: Any, imports: _Imports) -> str:
    if isinstance(value, _Source):
        return value.text
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, (list, tuple)):
        parts = [_literal(v, imports) for v in value]
        return _wrap("[", parts, "]") if isinstance(value, list) else _wrap("(", parts, ")", True)
    if isinstance(value, dict):
        return _wrap(
            "{", [f"{_literal(k, imports)}: {_literal(v, imports)}" for k, v in value.items()], "}"
        )
    if isinstance(value, (str, int, bool, type(None), float, bytes)):
        return repr(value)
    module = type(value).__module__
    if module in ("datetime",):
        imports.plain.add("datetime")
        return repr(value)
    text = repr(value)
    raise ConfigError(f"cannot write {type(value).__name__} value {text[:60]} as Python source")


class _Imports:
    """Import statements and the local names they bind, without clashes."""

    def __init__(self):
        self.plain: set[str] = set()  # "import x" modules
        self.from_: dict[tuple[str, str], str] = {}  # (module, name) -> bound name
        self.bound: set[str] = set()
        self.source_imports: dict[tuple[str, str, tuple], str] = {}

    def name_for(self, wanted: str, taken: set[str]) -> str:
        name, n = wanted, 1
        while name in self.bound or name in taken or keyword.iskeyword(name):
            n += 1
            name = f"{wanted}_{n}"
        self.bound.add(name)
        return name

    def from_import(self, module: str, name: str, taken: set[str]) -> str:
        key = (module, name)
        if key not in self.from_:
            self.from_[key] = self.name_for(name, taken)
        return self.from_[key]

    def lines(self) -> list[str]:
        out = [f"import {m}" for m in sorted(self.plain)]
        for (module, name), bound in sorted(self.from_.items()):
            alias = "" if bound == name else f" as {bound}"
            out.append(f"from {module} import {name}{alias}")
        return out


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text).strip("_") or "value"
    if name[0].isdigit():
        name = "n" + name
    return name.lower() if name.isupper() and len(name) > 1 else name


class _Generator:
    def __init__(self, graph, targets, pp_config, relative_imports, locate, policy):
        self.graph = graph
        self.targets = targets
        self.pp_config = pp_config
        self.relative_imports = relative_imports
        self.locate = locate
        self.refs = reference_counts(graph, targets)
        self.paths = first_paths(graph)
        self.imports = _Imports()
        self.statements: list[str] = []
        self.assigned: dict[int, str] = {}  # node id -> local name (or def name)
        self.in_progress: set[int] = set()
        self.taken: set[str] = {"construct", "context_vars", "args", "kwargs", "functools"}
        self.params: dict[str, list[VarNode]] = {}
        self.module_constants: list[str] = []
        self.meta_builder = Builder({}, locate, policy)
        self.expanding: set[int] = set()  # containers and !var being written (cycle check)

    # -- names ------------------------------------------------------------
    def local_name(self, node: Node) -> str:
        wanted = node.name or _identifier(self.paths.get(id(node), "value").split(".")[-1])
        if wanted in dir(builtins) or wanted in HELPERS:
            wanted = wanted + "_"
        name = self.imports.name_for(wanted, self.taken)
        self.taken.add(name)
        return name

    # -- callees ----------------------------------------------------------
    def callee(self, node: CallNode, searchpath: list[str] | None) -> str:
        spec = parse_spec(node.spec)
        # Before module_split imports anything; relative SPECs written as relative
        # imports are not imported here, so their search path is not checked.
        checked_path = None if spec.form == "relative" and self.relative_imports else searchpath
        self.meta_builder.check_allowed(node, spec, checked_path)
        if spec.is_builtin:
            return spec.attr
        if spec.form == "name":
            module, attr = module_split(spec.attr)
            return self.attribute(module, attr)
        if spec.form == "module":
            return self.attribute(spec.module, spec.attr)
        return self.source_callee(spec, searchpath)

    def attribute(self, module: str, attr: str) -> str:
        if not attr:
            self.imports.plain.add(module)
            return module
        first, _, rest = attr.partition(".")
        bound = self.imports.from_import(module, first, self.taken)
        return f"{bound}.{rest}" if rest else bound

    def source_callee(self, spec: Spec, searchpath) -> str:
        if spec.form == "relative" and self.relative_imports:
            return self.attribute("." + spec.module, spec.attr)
        import os

        paths = list(searchpath or [])
        module = spec.module
        if spec.form == "file":
            paths.insert(0, os.path.dirname(os.path.abspath(spec.module)))
            module = os.path.splitext(os.path.basename(spec.module))[0]
        paths = [os.path.abspath(p) for p in paths]
        key = (module, spec.attr, tuple(paths))
        if key not in self.imports.source_imports:
            name = self.imports.name_for(spec.attr.split(".")[-1], self.taken)
            self.imports.source_imports[key] = name
        return self.imports.source_imports[key]

    # -- expressions ------------------------------------------------------
    def expr(self, value: Any, once: bool, searchpath) -> str:
        """Python source for ``value``; ``once`` when it is evaluated once per construct()."""
        if not isinstance(value, Node):
            return _literal(value, self.imports)
        if isinstance(value, CallNode):
            return self.call(value, once, searchpath)
        # A container or !var is written out at each reference: one that contains
        # itself (`&a [1, *a]`) would never end, as it could never be built.
        if id(value) in self.expanding:
            raise CycleError(f"cycle: {describe(value)} contains itself", self.locate(value))
        self.expanding.add(id(value))
        try:
            if isinstance(value, VarNode):
                return self.var(value, searchpath)
            # The container of its children's source, written like a plain list/tuple/dict.
            parts = [_Source(self.expr(v, once, searchpath)) for _, v in value.children()]
            return _literal(value.assemble(parts), self.imports)
        finally:
            self.expanding.discard(id(value))

    def var(self, node: VarNode, searchpath) -> str:
        self.params.setdefault(node.var, []).append(node)
        name = self.param_name(node.var)
        if node.has_default and isinstance(node.default, Node):
            default = self.expr(node.default, False, searchpath)
            return f"({name} if {name} is not {_MISSING_NAME} else {default})"
        return name

    def param_name(self, var: str) -> str:
        return (
            var if var.isidentifier() and not keyword.iskeyword(var) else f"context_vars[{var!r}]"
        )

    def call(self, node: CallNode, once: bool, searchpath) -> str:
        if node.searchpath is not None:
            built = self.meta_builder.build(node.searchpath, "submodule_searchpath", searchpath)
            searchpath = [built] if isinstance(built, str) else list(built)
        if id(node) in self.assigned:
            name = self.assigned[id(node)]
            return f"{name}()" if node.kind == FACTORY else name
        if id(node) in self.in_progress:
            raise CycleError(f"cycle through {node.spec!r}", self.locate(node))
        shared = node.name is not None or self.refs.get(id(node), 0) > 1
        if node.kind == FACTORY and not shared:
            return self.call_expr(node, once, searchpath)
        if node.kind == SINGLETON and once and not shared:
            return self.call_expr(node, True, searchpath)
        self.in_progress.add(id(node))
        try:
            if node.kind == SINGLETON:
                text = self.call_expr(node, True, searchpath)
                name = self.local_name(node)
                self.statements.append(f"{name} = {text}")
            elif node.kind == FACTORY:
                text = self.call_expr(node, False, searchpath)
                name = self.local_name(node)
                self.statements.append(f"def {name}():\n{_indent('return ' + text)}")
            elif node.kind == PARTIAL:
                name = self.partial(node, searchpath)
            else:
                assert node.kind == META
                value = self.meta_builder.build(node, self.paths.get(id(node), "meta"))
                name = self.local_name(node)
                self.statements.append(f"{name} = {_literal(value, self.imports)}")
        finally:
            self.in_progress.discard(id(node))
        self.assigned[id(node)] = name
        return f"{name}()" if node.kind == FACTORY else name

    def arguments(
        self, node: CallNode, once: bool, searchpath
    ) -> tuple[list[str], list[tuple[str, str]]]:
        positional = [self.expr(v, once, searchpath) for v in node.args]
        keywords = [(k, self.expr(v, once, searchpath)) for k, v in node.call_kwargs.items()]
        return positional, keywords

    @staticmethod
    def keyword_args(keywords: list[tuple[str, str]]) -> list[str]:
        return [
            f"{k}={text}"
            if k.isidentifier() and not keyword.iskeyword(k)
            else f"**{{{k!r}: {text}}}"
            for k, text in keywords
        ]

    def call_expr(self, node: CallNode, once: bool, searchpath) -> str:
        callee = self.callee(node, searchpath)
        positional, pairs = self.arguments(node, once, searchpath)
        keywords = self.keyword_args(pairs)
        if node.latent is not None:
            keywords.append("**" + self.expr(node.latent, once, searchpath))
        spec = node.spec
        if spec == "getitem" and len(positional) == 2 and not keywords:
            return f"{positional[0]}[{positional[1]}]"
        if spec == "call" and positional:
            return _wrap(f"{positional[0]}(", positional[1:] + keywords, ")")
        if spec in ("items", "keys", "values") and len(positional) == 1 and not keywords:
            return f"list({positional[0]}.{spec}())"
        return _wrap(f"{callee}(", positional + keywords, ")")

    def partial(self, node: CallNode, searchpath) -> str:
        callee = self.callee(node, searchpath)
        needs_def = any(self.rebuilt_per_call(v) for v in [*node.args, *node.call_kwargs.values()])
        needs_def = needs_def or node.latent is not None
        positional, pairs = self.arguments(node, False, searchpath)
        name = self.local_name(node)
        if not needs_def:
            keywords = self.keyword_args(pairs)
            self.imports.plain.add("functools")
            self.statements.append(
                f"{name} = " + _wrap("functools.partial(", [callee, *positional, *keywords], ")")
            )
            return name
        configured = [f"{k!r}: {text}" for k, text in pairs]
        if node.latent is not None:
            configured.append("**" + self.expr(node.latent, False, searchpath))
        kw = _wrap("{", [*configured, "**kwargs"], "}")
        body = "return " + _wrap(f"{callee}(", [*positional, "*args", f"**{kw}"], ")")
        self.statements.append(f"def {name}(*args, **kwargs):\n{_indent(body)}")
        return name

    def rebuilt_per_call(self, value: Any) -> bool:
        """Whether building ``value`` inside a partial gives a new object per call."""
        if isinstance(value, CallNode):
            return value.kind == FACTORY  # singletons, partials and metas are shared
        if isinstance(value, Container):
            return True
        if isinstance(value, VarNode):
            return value.has_default and isinstance(value.default, Node)
        return False

    # -- module -----------------------------------------------------------
    def module(self, source_name: str | None, single: bool) -> str:
        if single:
            result = self.expr(self.graph[self.targets[0]], True, None)
        else:
            parts = [f"{t!r}: {self.expr(self.graph[t], True, None)}" for t in self.targets]
            result = _wrap("{", parts, "}")
        body = [*self.statements, f"return {result}"]
        signature = self.signature()
        header = f'"""Generated by Forgather from {source_name or "a config"}; edit the config, not this file."""'
        lines = [header, "", *self.imports.lines()]
        if self.imports.source_imports:
            lines.append(_SOURCE_IMPORT_HELPER.rstrip())
            lines.append("")
            for (module, attr, paths), name in sorted(
                self.imports.source_imports.items(), key=lambda i: i[1]
            ):
                lines.append(f"{name} = _import_from_source({module!r}, {attr!r}, {list(paths)!r})")
        if any(self.needs_sentinel(v) for v in self.params):
            lines += ["", f"{_MISSING_NAME} = object()"]
        lines += self.module_constants
        lines += ["", "", f"def {signature}:", '    """Build the objects of the config."""']
        lines += [_indent(s) for s in body]
        return "\n".join(lines).lstrip("\n") + "\n"

    def needs_sentinel(self, var: str) -> bool:
        return any(n.has_default and isinstance(n.default, Node) for n in self.params[var])

    def signature(self) -> str:
        params = []
        for var, uses in sorted(self.params.items()):
            if not var.isidentifier() or keyword.iskeyword(var):
                continue  # read from **context_vars
            if (
                var == "pp_config"
                and self.pp_config is not None
                and not any(n.has_default for n in uses)
            ):
                self.module_constants += [
                    "",
                    "PP_CONFIG = "
                    + _wrap(
                        "(",
                        [repr(line) for line in self.pp_config.splitlines(keepends=True)] or ['""'],
                        ")",
                    ),
                ]
                params.append("pp_config=PP_CONFIG")
                continue
            if self.needs_sentinel(var):
                params.append(f"{var}={_MISSING_NAME}")
                continue
            defaults = {repr(n.default) for n in uses if n.has_default}
            if len(defaults) == 1 and all(n.has_default for n in uses):
                params.append(f"{var}={_literal(uses[0].default, self.imports)}")
            else:
                params.append(var)
        return _wrap(
            "construct(", ["*", *params, "**context_vars"] if params else ["**context_vars"], ")"
        )


def to_python(
    graph: dict[str, Any],
    target: str | None = None,
    *,
    pp_config: str | None = None,
    source_name: str | None = None,
    relative_imports: bool = False,
    locate=lambda node: None,
    policy: ImportPolicy | None = None,
) -> str:
    """Generate a module whose ``construct(**context_vars)`` equals building ``target``.

    Args:
        graph: the node graph.
        target: one target, or None for a dict of all targets.
        pp_config: the rendered YAML, the default of ``!var pp_config``.
        source_name: named in the module docstring.
        relative_imports: write ``.module:Name`` SPECs as ``from .module import Name``.
        locate: maps a node to its source location, for errors.
        policy: what SPECs may be named (checked before anything is imported);
            default: :func:`~forgather.config.policy.default_policy`.

    Raises:
        RefusedImportError: a SPEC the policy refuses.
        CycleError: a node that contains itself.
    """
    targets = [target] if target is not None else [t for t in graph]
    if target is not None and target not in graph:
        raise ConfigError(f"no target {target!r}; targets: {', '.join(graph)}")
    generator = _Generator(graph, targets, pp_config, relative_imports, locate, policy)
    return generator.module(source_name, single=target is not None)


class _PartsGenerator(_Generator):
    """A generator for code templates: a ``!var`` with a node default defaults to ``None``.

    Code templates (``generate_code``) declare the variables as ordinary
    parameters with literal defaults, so there is no sentinel to compare with.
    """

    def var(self, node: VarNode, searchpath) -> str:
        if node.has_default and isinstance(node.default, Node):
            self.params.setdefault(node.var, []).append(node)
            name = self.param_name(node.var)
            default = self.expr(node.default, False, searchpath)
            return f"({name} if {name} is not None else {default})"
        return super().var(node, searchpath)

    def param_name(self, var: str) -> str:
        return var if var.isidentifier() and not keyword.iskeyword(var) else f"kwargs[{var!r}]"


def code_parts(
    value: Any,
    *,
    relative_imports: bool = True,
    locate=lambda node: None,
    policy: ImportPolicy | None = None,
) -> dict[str, Any]:
    """The pieces of generated code a code template assembles (``generate_code``).

    Args:
        value: a node, or a mapping of names to nodes (a graph), written as
            the expression the template returns.
        relative_imports: write ``.module:Name`` SPECs as ``from .module import Name``
            (the generated file sits beside the model sources it imports).
        locate: maps a node to its source location, for errors.
        policy: what SPECs may be named; default:
            :func:`~forgather.config.policy.default_policy`.

    Returns:
        ``imports``: sorted ``(module, name)`` pairs for ``from module import
        name`` (``name`` may read ``Name as alias``); ``definitions``: the
        statements before the result (plain ``import`` lines and source-file
        imports first), one string; ``main_body``: the result expression;
        ``variables``: ``(name, has_default, default)`` of the ``!var``
        parameters, those without a default first, each group sorted by name; ``dynamic_imports``: always empty (source files are
        imported inside ``definitions``).
    """
    graph = dict(value) if isinstance(value, dict) and not isinstance(value, Node) else {"": value}
    generator = _PartsGenerator(graph, list(graph), None, relative_imports, locate, policy)
    if list(graph) == [""]:
        main_body = generator.expr(value, True, None)
    else:
        parts = [f"{k!r}: {generator.expr(v, True, None)}" for k, v in graph.items()]
        main_body = _wrap("{", parts, "}")
    imports = generator.imports
    head = [f"import {m}" for m in sorted(imports.plain)]
    if imports.source_imports:
        head.append(_SOURCE_IMPORT_HELPER.strip())
        for (module, attr, paths), name in sorted(
            imports.source_imports.items(), key=lambda i: i[1]
        ):
            head.append(f"{name} = _import_from_source({module!r}, {attr!r}, {list(paths)!r})")
    variables = []
    for var, uses in sorted(generator.params.items()):
        if not var.isidentifier() or keyword.iskeyword(var):
            continue  # read from **kwargs
        defaults = {repr(n.default) for n in uses if n.has_default}
        if any(n.has_default and isinstance(n.default, Node) for n in uses):
            variables.append((var, True, None))
        elif len(defaults) == 1 and all(n.has_default for n in uses):
            variables.append((var, True, uses[0].default))
        else:
            variables.append((var, False, None))
    # Required parameters first: a template writes them in this order, and Python
    # allows no parameter without a default after one with a default.
    variables.sort(key=lambda v: v[1])
    return {
        "imports": [
            (module, name if bound == name else f"{name} as {bound}")
            for (module, name), bound in sorted(imports.from_.items())
        ],
        "dynamic_imports": [],
        "definitions": "\n".join([*head, *generator.statements]),
        "main_body": main_body,
        "variables": variables,
    }
