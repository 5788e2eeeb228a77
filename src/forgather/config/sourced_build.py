"""A build whose errors also name the template lines of the values involved.

The builder (``build.py``) locates an error at the node being built: a
call's line. A value given to that call may have been set elsewhere, in a
block of a derived config or on the command line, and that is the line a
user must change. :class:`SourcedBuilder` adds what it knows about them,
found by :func:`~forgather.config.provenance.why`:

* an exception raised by the callee gains a note per plain argument set in
  another file than the call, or on the command line (``argument lr=-1.0
  was set at configs/fast.yaml:7``): the values a derived config overrode.
  Arguments written beside the call are what its location already shows;
* an unexpected keyword is shown with the line that wrote it.

Decision a reader may question: a subclass rather than a change to the
builder: the builder knows nodes and paths, not templates, and looking a
value up costs a second render and a YAML compose, paid only when something
failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .build import Builder, LocateNode
from .errors import ArgumentError, ConfigError, SourceLocation
from .nodes import LATENT_KEY, SEARCHPATH_KEY, CallNode, Node
from .policy import ImportPolicy
from .traverse import first_paths

if TYPE_CHECKING:  # provenance is imported by Config.why, when an error needs it
    from .provenance import Provenance

#: Notes added to one exception at most (a call may take dozens of arguments).
MAX_VALUE_NOTES = 8
_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def _same_line(a: SourceLocation | None, b: SourceLocation | None) -> bool:
    return a is not None and b is not None and (a.file, a.line) == (b.file, b.line)


def _same_file(a: SourceLocation | None, b: SourceLocation | None) -> bool:
    return a is not None and b is not None and a.file == b.file


class SourcedBuilder(Builder):
    """:class:`~forgather.config.build.Builder` with value origins in its errors.

    Args:
        graph: the config's node graph (to find a node's path).
        why: ``Config.why``: a path's :class:`~forgather.config.provenance.Provenance`.
        locate: maps a node to its source location.
        context_vars: the values of ``!var``.
        policy: what may be imported.
    """

    def __init__(
        self,
        graph: dict[str, Any],
        why: Callable[[str], Provenance],
        locate: LocateNode,
        context_vars: dict[str, Any],
        policy: ImportPolicy,
    ):
        super().__init__(context_vars, locate, policy)
        self._graph = graph
        self._why = why

    def _provenance(self, path: str) -> Provenance | None:
        try:
            return self._why(path)
        except ConfigError:
            return None

    def invoke(self, node: CallNode, fn: Any, args: list, kwargs: dict, path: str) -> Any:
        try:
            return super().invoke(node, fn, args, kwargs, path)
        except ConfigError:
            raise
        except Exception as e:
            if not getattr(e, "_forgather_values_noted", False):
                e._forgather_values_noted = True
                for note in self._value_notes(node, path):
                    e.add_note(note)
            raise

    def _value_notes(self, node: CallNode, path: str) -> list[str]:
        """``argument KEY=VALUE was set at FILE:LINE`` for each plain argument set in another file."""
        call = self.locate(node)
        notes = []
        for key, value in node.children():
            if isinstance(value, Node) or key in (SEARCHPATH_KEY, LATENT_KEY):
                continue
            found = self._provenance(f"{path}.{key}")
            if found is None:
                continue
            if found.command_line:
                where = "on the command line (--set)"
            elif found.location is None or _same_file(found.location, call):
                continue
            else:
                where = f"at {found.location}"
            notes.append(f"argument {key}={value!r} was set {where}")
            if len(notes) == MAX_VALUE_NOTES:
                break
        return notes

    def argument_error(self, node: CallNode, fn: Any, problem: str) -> ArgumentError:
        error = super().argument_error(node, fn, problem)
        unexpected = _UNEXPECTED.search(problem)
        if unexpected is None or unexpected[1] not in node.kwargs:
            return error
        path = first_paths(self._graph).get(id(node))
        keyword = f"{path}.{unexpected[1]}"
        found = self._provenance(keyword) if path else None
        if found is None:
            return error
        if found.command_line:  # a misspelt --set adds a keyword no template wrote
            where = f"on the command line (--set {keyword}=...)"
        elif found.location is None or _same_line(found.location, error.location):
            return error
        else:
            where = f"at {found.location}"
        detail = "\n".join(d for d in (error.detail, f"  {unexpected[1]!r} was set {where}") if d)
        return ArgumentError(error.reason, error.location, detail=detail)
