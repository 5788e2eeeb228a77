"""Build: node graph -> Python objects (LANGUAGE.md, section 4).

Semantics, in one place:

* a singleton (``!call``) is called once per :func:`build`; every reference
  gets the same object;
* a factory is called anew at every reference;
* a partial becomes a :class:`Partial` that builds its arguments *each time
  it is called* (factories inside are fresh per call, singletons shared);
* containers build fresh at every reference (value semantics);
* ``!var`` reads the build's context variables;
* a SPEC is imported only after the build's
  :class:`~forgather.config.policy.ImportPolicy` allowed it by name, and a
  config's ``trust_remote_code=true`` is refused unless trusted.

Paths in messages (``trainer.args.optimizer``) are the steps of
:meth:`~forgather.config.nodes.Node.children`, the ones ``graph`` prints and
``--set`` takes. The builder recurses itself rather than consuming
:func:`~forgather.config.traverse.walk` (see that module for why).

Decision a reader may question: the memo of singletons lives in a
:class:`Builder` made per build call and never on the nodes, so building twice
gives fresh singletons and the graph is never mutated. Partials keep a
reference to their builder, so a singleton inside a partial is shared with the
rest of that build even when the partial is called long after ``build``
returned.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from typing import Any

from .errors import (
    ArgumentError,
    ConfigError,
    CycleError,
    MissingVariableError,
    RefusedImportError,
    SourceLocation,
    SpecError,
    located,
)
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
from .policy import (
    HOW_TO_ALLOW,
    META_KEY,
    REMOTE_CODE_KEYWORD,
    REMOTE_CODE_REFUSAL,
    ImportPolicy,
    default_policy,
)
from .spec import Spec, checked_getattr, parse_spec, resolve

LocateNode = Callable[[Node], "SourceLocation | None"]
_PLACEHOLDER = object()


#: Where transformers' and datasets' loaders take what they load, after the first positional argument.
_LOADED_PATH_KEYWORDS = ("pretrained_model_name_or_path", "path", "repo_id")
#: An error shows this much of a signature (TrainingArguments's alone is ~2,500 characters).
MAX_SIGNATURE_CHARS = 400


def loaded_path(args: list, kwargs: dict) -> Any:
    """What a loader call passing ``trust_remote_code`` loads: its first argument, or a known keyword."""
    if args:
        return args[0]
    return next((kwargs[k] for k in _LOADED_PATH_KEYWORDS if k in kwargs), None)


def _note(exc: BaseException, text: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    else:  # Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), text]


def _searchpath(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(p) for p in value]


def signature_problem(
    fn: Any, n_args: int, keywords: list[str], partial: bool = False
) -> str | None:
    """Why ``fn(<n_args positional>, <keywords>)`` would not bind, or None if it would.

    A signature can misdescribe its callable: a compiled class's text signature
    keeps ``self`` (``tokenizers.models.BPE``), and a copied function's
    ``__wrapped__`` may be a bound method whose signature says ``(**kwargs)``
    (transformers' ``AutoModelForCausalLM.from_config``). The call is refused
    only when no description of it binds.
    """
    args = [_PLACEHOLDER] * n_args
    kwargs = dict.fromkeys(keywords, _PLACEHOLDER)
    problem = None
    for sig in _signatures(fn):
        bind = sig.bind_partial if partial else sig.bind
        try:
            bind(*args, **kwargs)
        except TypeError as e:
            problem = problem or str(e)
        else:
            return None
    return problem


def _signatures(fn: Any) -> list[inspect.Signature]:
    """``fn``'s signature and the corrected forms :func:`signature_problem` also tries."""
    found = []
    for follow_wrapped in (True, False):
        try:
            sig = inspect.signature(fn, follow_wrapped=follow_wrapped)
        except (TypeError, ValueError):
            continue
        params = list(sig.parameters.values())
        if isinstance(fn, type) and params and params[0].name == "self":
            sig = sig.replace(parameters=params[1:])
        if sig not in found:
            found.append(sig)
    return found


def callee_name(fn: Any, spec: str) -> str:
    return getattr(fn, "__qualname__", None) or spec


class Partial:
    """A callable from ``!partial``: configured arguments first, call-time ones appended.

    Call-time keyword arguments win over configured ones.
    """

    def __init__(self, builder: Builder, node: CallNode, func: Any, path: str, searchpath):
        self._builder = builder
        self._node = node
        self.func = func
        self._path = path
        self._searchpath = searchpath

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        b = self._builder
        node = self._node
        configured, keywords = b.arguments(node, self._path, self._searchpath)
        keywords.update(kwargs)
        return b.invoke(node, self.func, [*configured, *args], keywords, self._path)

    def __repr__(self) -> str:
        return f"Partial({callee_name(self.func, self._node.spec)})"


class Builder:
    """One build: the memo of singletons, the context variables, cycle detection.

    Args:
        context_vars: the values of ``!var``.
        locate: maps a node to its source location, for errors.
        policy: what may be imported (default: :func:`~forgather.config.policy.default_policy`).
    """

    def __init__(
        self, context_vars: dict[str, Any], locate: LocateNode, policy: ImportPolicy | None = None
    ):
        self.context = context_vars
        self.locate = locate
        self.policy = policy if policy is not None else default_policy()
        self.memo: dict[int, Any] = {}
        self.in_progress: dict[int, str] = {}  # node id -> path, in call order
        self._resolved: dict[tuple, Any] = {}

    def build(self, value: Any, path: str, searchpath: list[str] | None = None) -> Any:
        if not isinstance(value, Node):
            return value
        key = id(value)
        if key in self.memo:
            return self.memo[key]
        if key in self.in_progress:
            chain = list(self.in_progress.values())
            start = chain.index(self.in_progress[key])
            cycle = " -> ".join([*chain[start:], path])
            raise CycleError(f"cycle: {describe(value)} needs itself ({cycle})", self.locate(value))
        self.in_progress[key] = path
        try:
            result = self._build(value, path, searchpath)
        finally:
            del self.in_progress[key]
        if value.kind in (SINGLETON, PARTIAL, META):
            self.memo[key] = result
        return result

    def _build(self, node: Node, path: str, searchpath) -> Any:
        if isinstance(node, VarNode):
            if node.var in self.context:
                return self.context[node.var]
            if node.has_default:
                return self.build(node.default, path, searchpath)
            raise MissingVariableError(
                f"no value for !var {node.var!r} (give it a default, pass it with `construct --var "
                f"{node.var}=VALUE`, or as a keyword of build(): build(target, {node.var}=...))",
                self.locate(node),
            )
        if isinstance(node, Container):
            return node.assemble(
                [self.build(v, f"{path}.{k}", searchpath) for k, v in node.children()]
            )
        return self._call(node, path, searchpath)

    def _call(self, node: CallNode, path: str, searchpath) -> Any:
        if node.searchpath is not None:
            searchpath = _searchpath(
                self.build(node.searchpath, f"{path}.submodule_searchpath", searchpath)
            )
        if node.kind in (SINGLETON, FACTORY) and self._calls_into_a_file(node, searchpath):
            # The original Forgather's model configs call a class in a file that one
            # of the call's own arguments (re)writes (generated model code): build the
            # arguments first, so the import sees this build's file. A module SPEC is
            # imported first, so a misspelt one fails before any argument is built.
            args, kwargs = self.arguments(node, path, searchpath)
            return self.invoke(node, self.resolve(node, searchpath), args, kwargs, path)
        fn = self.resolve(node, searchpath)
        if node.kind == META:
            return self.invoke(node, fn, list(node.args), dict(node.call_kwargs), path)
        if node.kind == PARTIAL:
            problem = signature_problem(fn, len(node.args), list(node.call_kwargs), partial=True)
            if problem:
                raise self.argument_error(node, fn, problem)
            return Partial(self, node, fn, path, searchpath)
        args, kwargs = self.arguments(node, path, searchpath)
        return self.invoke(node, fn, args, kwargs, path)

    def _calls_into_a_file(self, node: CallNode, searchpath) -> bool:
        """Whether ``node`` calls into an absolute ``/path/file.py`` (allowed by name first)."""
        try:
            spec = parse_spec(node.spec)
        except ValueError:
            return False
        if spec.form != "file" or not os.path.isabs(spec.module):
            return False
        self.check_allowed(node, spec, searchpath)
        return True

    def resolve(self, node: CallNode, searchpath) -> Any:
        """Import what ``node`` calls, after the policy allowed its SPEC (nothing is imported otherwise)."""
        key = (node.spec, tuple(searchpath or ()))
        if key not in self._resolved:
            try:
                spec = parse_spec(node.spec)
            except ValueError as e:
                raise SpecError(str(e), self.locate(node)) from None
            self.check_allowed(node, spec, searchpath)
            check = None if self.policy.trusted_by_user(spec) else self.policy.check_object
            try:
                fn = resolve(spec, searchpath, check)
            except RefusedImportError as e:
                raise self.refused(node, e.reason, spec.text) from None
            except ConfigError:
                raise
            except Exception as e:  # ImportError, SyntaxError or anything a module raises on import
                raise SpecError(
                    f"cannot import {node.spec!r}: {type(e).__name__}: {e}", self.locate(node)
                ) from e
            if spec.form == "name" and spec.attr == "getattr" and not self.policy.trust:
                fn = checked_getattr(self.policy.check_object)
            self._resolved[key] = fn
        return self._resolved[key]

    def check_allowed(self, node: CallNode, spec: Spec, searchpath) -> None:
        """Raise :class:`RefusedImportError` when the policy refuses ``spec`` (decided by name)."""
        refused = self.policy.refusal(spec, searchpath)
        if refused is not None:
            raise self.refused(node, *refused)

    def refused(self, node: CallNode, reason: str, entry: str) -> RefusedImportError:
        """The error for a refused SPEC: the reason, and how to allow it (short, then in full)."""
        if self.policy.data:
            hint = "write plain values here"
            detail = (
                "  this value is read by commands that run nothing from a config "
                "(meta.yaml, the meta and dynamic_args targets)"
            )
        else:
            hint = f"{META_KEY} in meta.yaml, or --trust"
            detail = "  " + HOW_TO_ALLOW.format(entry=entry)
        return RefusedImportError(
            f"{describe(node)}: {reason} ({hint})", self.locate(node), detail=detail
        )

    def arguments(self, node: CallNode, path: str, searchpath) -> tuple[list, dict]:
        """Build a call node's arguments (and its ``latent_args``)."""
        args = [self.build(v, f"{path}.{i}", searchpath) for i, v in enumerate(node.args)]
        kwargs = {k: self.build(v, f"{path}.{k}", searchpath) for k, v in node.call_kwargs.items()}
        if node.latent is not None:
            latent = self.build(node.latent, f"{path}.latent_args", searchpath)
            if not isinstance(latent, dict):
                raise ConfigError(
                    f"latent_args must build to a dict, got {type(latent).__name__}",
                    self.locate(node),
                )
            kwargs.update(latent)
        if kwargs.get(REMOTE_CODE_KEYWORD):
            self.check_remote_code(node, args, kwargs)
        return args, kwargs

    def check_remote_code(
        self, node: CallNode, args: list | None = None, kwargs: dict | None = None
    ) -> None:
        """Refuse ``trust_remote_code=True`` from a config unless trusted (it runs downloaded code).

        Loading a directory inside the project or the workspace is allowed: its
        code is the user's own (typically a model the config itself generated).
        """
        if self.policy.trust or self.policy.trusted_by_user(parse_spec(node.spec)):
            return
        if args is None and kwargs is None:  # checked before building: the literal arguments
            args, kwargs = list(node.args), dict(node.call_kwargs)
        if self.policy.own_directory(loaded_path(args or [], kwargs or {})):
            return
        spec = parse_spec(node.spec)
        # The entry that would allow it: a file's directory (allow_imports takes directories), a module.
        entry = (
            os.path.dirname(os.path.realpath(spec.module)) if spec.form == "file" else spec.module
        )
        raise self.refused(node, REMOTE_CODE_REFUSAL, entry or node.spec)

    def argument_error(self, node: CallNode, fn: Any, problem: str) -> ArgumentError:
        name = callee_name(fn, node.spec)
        try:
            parameters = list(inspect.signature(fn).parameters)
            signature = f"{name}{inspect.signature(fn)}"
        except (TypeError, ValueError):
            parameters, signature = [], name
        if len(signature) > MAX_SIGNATURE_CHARS:  # TrainingArguments has ~150 parameters
            signature = f"{signature[:MAX_SIGNATURE_CHARS]}... ({len(parameters)} parameters)"
        detail = f"  signature: {signature}"
        unexpected = re.search(r"unexpected keyword argument '([^']+)'", problem)
        if unexpected:
            import difflib

            close = difflib.get_close_matches(unexpected[1], parameters, n=3)
            if close:
                detail += "\n  did you mean " + " or ".join(repr(c) for c in close) + "?"
        return ArgumentError(
            f"wrong arguments for {describe(node)}: {problem}", self.locate(node), detail=detail
        )

    def invoke(self, node: CallNode, fn: Any, args: list, kwargs: dict, path: str) -> Any:
        problem = signature_problem(fn, len(args), list(kwargs))
        if problem:
            raise self.argument_error(node, fn, problem)
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            raise located(e, self.locate(node)) from e.__cause__
        except Exception as e:
            if not getattr(e, "_forgather_noted", False):
                location = self.locate(node)
                where = f" at {location}" if location else ""
                _note(e, f"while building {path} ({describe(node)}){where}")
                e._forgather_noted = True
            raise
