"""Map lines of rendered YAML back to the template lines that produced them.

Rendering is normally done without any instrumentation. Only when a later
stage (YAML parsing, loading, building) needs to name a template line do we
render once more with *markers*: before each newline of template data the
marker ``\\ue000<template id>:<line>\\ue001`` is inserted. Every rendered line
then carries the markers of the template lines it came from, and stripping
them yields both the clean text and the map.

The marked render also brackets the output of every template entered through
``include`` or ``extends`` with ``\\ue002<template id>:<line>\\ue003`` (the
statement that entered it) and ``\\ue004``, so each origin carries the chain of
statements that led to it, the "included from" chain of a compiler.

Decision a reader may question: a second render on error instead of always
rendering with markers. Markers would change the value of ``{% set %}`` blocks
and of filters applied to template data; rendering them only on the error
path keeps normal output byte-identical to plain Jinja.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
ENTER_OPEN, ENTER_CLOSE, LEAVE = "\ue002", "\ue003", "\ue004"
_MARKER = re.compile(
    f"{MARK_OPEN}(\\d+):(\\d+){MARK_CLOSE}|{ENTER_OPEN}(\\d+):(\\d+){ENTER_CLOSE}|{LEAVE}"
)
_DELIMITERS = re.compile(r"\{%|\{\{|\{#|%\}|\}\}|#\}|\n")
_LINE_MARK = f"{MARK_OPEN}\\d+:\\d+{MARK_CLOSE}"
_LEADING = re.compile(f"^(?:\\s|{_LINE_MARK})+")
_TRAILING = re.compile(f"(?:\\s|{_LINE_MARK})+$")


def trim_marked(value, chars: str | None = None) -> str:
    """Jinja's ``trim`` filter for the marked render: the markers of the newlines it
    strips go with them.

    Plain ``trim`` stops at a marker (not whitespace), so the markers of the blank
    lines a ``{% filter trim() %}`` removes stayed behind, and every later line
    was attributed to the line before it (the original Forgather's templates trim
    their preambles this way).
    """
    if chars is not None:
        return str(value).strip(chars)
    text = _LEADING.sub("", str(value))  # markers there mark blank lines, all removed
    trailing = _TRAILING.search(text)
    if trailing is None:
        return text
    # Up to the first newline, a marker marks the last line kept: it stays.
    kept = trailing.group().split("\n", 1)[0]
    return text[: trailing.start()] + "".join(re.findall(_LINE_MARK, kept))


def add_markers(source: str, template_id: int) -> str:
    """Insert a line marker before each newline that Jinja emits as data.

    Newlines inside tags, and newlines that ``trim_blocks`` removes (right
    after ``%}`` or ``#}``) or that ``-}}`` would strip, get no marker.
    """
    out: list[str] = []
    recent = ""  # the last few characters emitted, to see what precedes a newline
    pos = 0
    line = 1
    inside: str | None = None  # the closing delimiter we are waiting for
    closing = {"{%": "%}", "{{": "}}", "{#": "#}"}

    def emit(chunk: str) -> None:
        nonlocal recent
        out.append(chunk)
        recent = (recent + chunk)[-8:]

    for match in _DELIMITERS.finditer(source):
        token = match.group()
        if token == "\n":
            before = source[pos : match.start()]
            emit(before)
            trimmed = recent.endswith(("%}", "#}")) or recent.rstrip(" \t").endswith(
                ("-}}", "-%}", "-#}")
            )
            if inside is None and not trimmed:
                emit(f"{MARK_OPEN}{template_id}:{line}{MARK_CLOSE}")
            emit("\n")
            line += 1
        else:
            emit(source[pos : match.end()])
            if inside is None and token in closing:
                inside = closing[token]
            elif token == inside:
                inside = None
        pos = match.end()
    emit(source[pos:])
    if inside is None and not source.endswith("\n"):
        emit(f"{MARK_OPEN}{template_id}:{line}{MARK_CLOSE}")  # the last line has no newline
    return "".join(out)


def enter_mark(template_id: int, line: int) -> str:
    """The text that opens the output of a template entered at ``line`` of another."""
    return f"{ENTER_OPEN}{template_id}:{line}{ENTER_CLOSE}"


@dataclass(frozen=True)
class Origin:
    """A template line: (template id, 1-based line), and how rendering got there.

    ``chain`` holds the ``include``/``extends`` statements (template id, line)
    whose templates were being rendered, outermost first.
    """

    template_id: int
    line: int
    chain: tuple[tuple[int, int], ...] = field(default=(), compare=False)


class LineMap:
    """For each rendered line (0-based) and column, the template line of origin."""

    def __init__(self, marked: str):
        self.text_lines: list[str] = []
        # Per clean line: sorted clean columns where a marker stood, with origins.
        self._columns: list[list[int]] = []
        self._origins: list[list[Origin]] = []
        entered: list[tuple[int, int]] = []  # the statements whose templates are rendering
        for raw in marked.split("\n"):
            clean_parts: list[str] = []
            columns: list[int] = []
            origins: list[Origin] = []
            pos = 0
            width = 0
            for m in _MARKER.finditer(raw):
                piece = raw[pos : m.start()]
                clean_parts.append(piece)
                width += len(piece)
                pos = m.end()
                if m[1] is not None:
                    columns.append(width)
                    origins.append(Origin(int(m[1]), int(m[2]), tuple(entered)))
                elif m[3] is not None:
                    entered.append((int(m[3]), int(m[4])))
                elif entered:
                    entered.pop()
            clean_parts.append(raw[pos:])
            self.text_lines.append("".join(clean_parts))
            self._columns.append(columns)
            self._origins.append(origins)

    @property
    def text(self) -> str:
        return "\n".join(self.text_lines)

    def origin(self, line: int, column: int = 0) -> Origin | None:
        """The template line that produced rendered ``line`` (0-based) at ``column``.

        Text without a marker of its own (output of an expression or macro
        spanning lines) belongs to the next marker that follows it.
        """
        for number in range(line, len(self._columns)):
            columns = self._columns[number]
            if not columns:
                continue
            start = column if number == line else 0
            index = bisect.bisect_left(columns, start)
            if index < len(columns):
                return self._origins[number][index]
            # Past the last marker on this line: it still came from its last source line.
            if number == line:
                return self._origins[number][-1]
        return None
