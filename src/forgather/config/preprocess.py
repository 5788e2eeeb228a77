"""Preprocessor: Forgather template text -> Jinja2 source, line for line.

The line syntax (``-- stmt``, ``== expr``, ``[block]`` ...) is a pure text
transform; it never adds or removes a line, so a line number that Jinja reports
is the line number in the user's file.

Decisions a reader may question:

* A *trailing* ``## note`` is dropped rather than turned into ``{# note #}``:
  the environment uses ``trim_blocks``, which would also eat the newline after
  the comment and glue the next YAML line onto this one.
* ``[block]`` sections close at the next ``[block]`` line of the same or lower
  indent, or at the end of the template (LANGUAGE.md); closing tags are placed
  at the start of that line (or after the final newline), so the block's text
  keeps its own trailing newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STATEMENT = re.compile(
    r"^(?P<indent>[ \t]*)(?P<prefix>--|<<|>>|==|=>)[ \t]+(?P<body>\S.*?)[ \t]*$"
)
_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\[(?P<name>[A-Za-z_]\w*)(?P<trim>!?)\][ \t]*$")
_LINE_COMMENT = re.compile(r"^(?P<indent>[ \t]*)##+(?P<text>.*)$")
_TRAILING_COMMENT = re.compile(r"[ \t]+##+.*$")
_SEPARATOR = re.compile(r"^#-{3,}[ \t]*(?P<name>[\w./]+)[ \t]*-{3,}[ \t]*$")

_OPEN_CLOSE = {
    "--": ("{% ", " %}"),
    "<<": ("{%- ", " %}"),
    ">>": ("{% ", " -%}"),
    "==": ("{{ ", " }}"),
}


def _comment(text: str) -> str:
    # "#}" inside the comment would end it early.
    return "{# " + text.strip().replace("#}", "# }") + " #}"


def _statement(match: re.Match) -> str:
    prefix, body = match["prefix"], match["body"]
    if prefix == "=>":
        return f"{{{{ ({body})|trim('\\n') }}}}"
    open_, close = _OPEN_CLOSE[prefix]
    # An expression line prints at column 0: the value carries its own indentation
    # (``    == super()`` in an indented block prints the parent block unchanged).
    indent = "" if prefix == "==" else match["indent"]
    return f"{indent}{open_}{body}{close}"


@dataclass
class _OpenBlock:
    indent: int
    trimmed: bool


def _close(block: _OpenBlock) -> str:
    return "{% endfilter %}{% endblock %}" if block.trimmed else "{% endblock %}"


def _indent_width(indent: str) -> int:
    return len(indent.expandtabs(4))


def preprocess(text: str) -> str:
    """Translate Forgather line syntax into Jinja2 source with the same lines.

    >>> preprocess("-- set x = 1\\na: == x\\n")
    '{% set x = 1 %}\\na: == x\\n'
    >>> preprocess("== x  ## shown\\n")
    '{{ x }}\\n'

    Args:
        text: one template's text.

    Returns:
        Jinja2 source with exactly as many lines as ``text``.
    """
    lines = text.split("\n")
    out: list[str] = []
    stack: list[_OpenBlock] = []
    for line in lines:
        comment = _LINE_COMMENT.match(line)
        if comment:
            out.append(comment["indent"] + _comment(comment["text"]))
            continue
        line = _TRAILING_COMMENT.sub("", line)
        block = _BLOCK.match(line)
        if block:
            width = _indent_width(block["indent"])
            closes = ""
            while stack and stack[-1].indent >= width:
                closes += _close(stack.pop())
            trimmed = block["trim"] == "!"
            stack.append(_OpenBlock(width, trimmed))
            opening = "{% block " + block["name"] + " %}"
            if trimmed:
                opening += "{% filter trim %}"
            out.append(block["indent"] + closes + opening)
            continue
        statement = _STATEMENT.match(line)
        out.append(_statement(statement) if statement else line)
    closes = "".join(_close(b) for b in reversed(stack))
    if closes:
        # After the final newline, or after a printed one when the file has none: a
        # block always ends its last line, so what follows it never joins that line.
        if out[-1].strip():
            closes = "{{ '\\n' }}" + closes
        out[-1] += closes
    return "\n".join(out)


_JINJA_OPEN = re.compile(r"\{[{%#]")
#: Characters written as themselves inside an escaped line's Jinja string.
_PLAIN = frozenset(
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:,/()=+*@!?$^&|;~`"<>[]'
)


def reads_differently(line: str) -> bool:
    """Whether rendering ``line`` as a template would change it (Jinja or the line syntax)."""
    return bool(
        "\r" in line  # Jinja normalises newlines in template data
        or _JINJA_OPEN.search(line)
        or _SEPARATOR.match(line)
        or _LINE_COMMENT.match(line)
        or _TRAILING_COMMENT.search(line)
        or _BLOCK.match(line)
        or _STATEMENT.match(line)
    )


def _jinja_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _PLAIN:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "'" + "".join(out) + "'"


def escape_template(text: str) -> str:
    """A template that renders to exactly ``text`` (rendered YAML, printed so it loads back).

    Each line that Jinja or the line syntax would read differently (``{{``,
    ``{%``, ``{#``, ``-- x``, ``[name]``, `` ## x``, a separator, a carriage
    return) becomes ``{{ '...' }}``, a Jinja string of that line with every
    character that could matter written as an escape; other lines, almost
    all of them, are unchanged. Lines stay lines, so line numbers hold.
    """
    return "\n".join(
        "{{ " + _jinja_string(line) + " }}" if reads_differently(line) else line
        for line in text.split("\n")
    )


@dataclass(frozen=True)
class TemplateSection:
    """One template inside a file: ``name`` is None for the file's own template."""

    name: str | None
    first_line: int  # 1-based line of the file where ``text`` starts
    text: str


def split_templates(text: str) -> list[TemplateSection]:
    """Split a multi-template file at ``#---- name ----`` separator lines.

    Args:
        text: the whole file.

    Returns:
        The file's own template first (text before the first separator), then
        one section per sub-template in file order.
    """
    sections: list[TemplateSection] = []
    name: str | None = None
    start = 1
    current: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        match = _SEPARATOR.match(line)
        if match:
            sections.append(TemplateSection(name, start, "\n".join(current) + "\n"))
            name, start, current = match["name"], number + 1, []
        else:
            current.append(line)
    sections.append(TemplateSection(name, start, "\n".join(current)))
    if len(sections) > 1 and sections[0].text.strip() == "":
        sections[0] = TemplateSection(None, 1, sections[0].text)
    return sections


def pad_to_line(source: str, first_line: int) -> str:
    """Prefix ``source`` with an output-free comment so it starts at ``first_line``.

    Sub-templates are rendered on their own, yet their line numbers must be
    the file's line numbers; a multi-line Jinja comment emits nothing.
    """
    if first_line <= 1:
        return source
    return "{#" + "\n" * (first_line - 1) + "#}" + source
