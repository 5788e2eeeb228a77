"""Errors of the configuration language, pointing at the user's source.

Every mistake in a config raises :class:`ConfigError`. Its message names the
template file and line *in the user's source* (never the preprocessed or
rendered text), shows that line, and lists the chain of templates that led
there, as a compiler does (``In file included from user.yaml:2``, innermost
last). The location is carried as data (:class:`SourceLocation`) so the CLI and
tests can use it without parsing the message.

Decision a reader may question: subclasses exist only where callers plausibly
want to catch one kind (``TemplateNotFound``-style lookups, variables, cycles);
everything else is a plain ``ConfigError`` with a ``kind`` string.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_HOW = re.compile(r"\b(include|extends|import|from|super)\b")
#: How a chain's statement led into the next template, by the word it is written with.
_LEADS = {
    "include": "In file included from",
    "extends": "In template extended by",
    "import": "In template imported by",
    "from": "In template imported by",
    "super": "Through super() at",
}


@dataclass(frozen=True)
class SourceLocation:
    """A line in a template file (1-based), with the chain of templates above it."""

    file: str
    line: int
    chain: tuple[tuple[str, int], ...] = field(default=())
    #: 0-based column in the source line, when the error knows it (YAML errors).
    column: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def excerpt(self) -> str:
        """The source line, read from disk (empty when unavailable)."""
        text = linecache.getline(self.file, self.line)
        return text.rstrip("\n")

    def chain_lines(self) -> list[str]:
        """The chain as a compiler prints it, outermost first, this location last::

        In file included from configs/user.yaml:2
        templates/lib.yaml:7
        """
        lines = [f"{chain_link_lead(f, n)} {f}:{n}" for f, n in self.chain]
        return [*lines, str(self)] if lines else []


def chain_link_lead(file: str, line: int) -> str:
    """``In file included from`` (extended, imported, through super(), called) for a chain's statement."""
    found = _HOW.search(linecache.getline(file, line))
    return _LEADS[found[1]] if found else "Called from"


def template_chain(statements: Iterable[tuple[str, int]], file: str) -> tuple[tuple[str, int], ...]:
    """The statements that led to a line of ``file``, without the detours.

    ``statements`` are (file, line) of the ``include``/``extends`` statements
    (or template frames) being rendered, outermost first. A file that comes
    back later in the chain (or is ``file`` itself) was only passed through:
    a child's block is rendered by its base's ``extends``, but what leads to
    a line of the child is the child's own statement. So the part from a
    file's first appearance to its next one is dropped.
    """
    kept: list[tuple[str, int]] = []
    for link in [*statements, (file, 0)]:
        for i, (seen, _) in enumerate(kept):
            if seen == link[0]:
                del kept[i:]
                break
        kept.append(link)
    return tuple(kept[:-1])


def _excerpt_lines(loc: SourceLocation, text: str, label: str = "") -> list[str]:
    """``  12 | text`` and, when the column is known, a caret line under it."""
    lines = [f"  {loc.line:>4} | {text}"]
    if loc.column is not None and loc.column <= len(text):
        lines.append(f"  {'':>4} | {' ' * loc.column}^{' ' + label if label else ''}")
    return lines


class ConfigError(Exception):
    """A mistake in a config: the message names file:line and shows the line.

    Attributes:
        reason: the one-line description of what is wrong.
        location: where in the user's source, when known.
        opened_at: for a construct left open (an unclosed ``[`` or quote), the
            line that opened it, shown above ``location``'s line.
        kind: a short category ("template", "yaml", "spec", "arguments", ...).
    """

    kind = "config"

    def __init__(
        self,
        reason: str,
        location: SourceLocation | None = None,
        *,
        detail: str | None = None,
        excerpt: str | None = None,
        opened_at: SourceLocation | None = None,
    ):
        self.reason = reason
        self.location = location
        self.detail = detail
        self.opened_at = opened_at
        self._excerpt = excerpt
        super().__init__(self._format())

    def _format(self) -> str:
        loc = self.location
        lines = [f"{loc}: {self.reason}" if loc else self.reason]
        if loc is not None:
            opened = self.opened_at
            if opened is not None and (opened.file, opened.line) != (loc.file, loc.line):
                opened_text = opened.excerpt()
                if opened.file != loc.file:
                    lines.append(f"  opened at {opened}:")
                if opened_text:
                    lines.extend(_excerpt_lines(opened, opened_text, "opened here"))
            text = self._excerpt if self._excerpt is not None else loc.excerpt()
            if text:
                lines.extend(_excerpt_lines(loc, text))
            if loc.chain:
                lines.append("  template chain:")
                lines.extend(f"    {line}" for line in loc.chain_lines())
        if self.detail:
            lines.append(self.detail)
        # Printable anywhere: a lone surrogate from a config is shown as an escape.
        return "\n".join(lines).encode("utf-8", "backslashreplace").decode("utf-8")

    @property
    def one_line(self) -> str:
        """``file:line: reason`` — for listings such as ``forgather ls``."""
        return f"{self.location}: {self.reason}" if self.location else self.reason


def located(error: ConfigError, location: SourceLocation | None) -> ConfigError:
    """``error`` with ``location`` when it has none yet (raised below the place that knows it)."""
    if error.location is not None or location is None:
        return error
    copy = type(error)(error.reason, location, detail=error.detail, opened_at=error.opened_at)
    copy.__cause__ = error.__cause__
    return copy


class TemplateNotFoundError(ConfigError):
    """A template name that no search directory holds."""

    kind = "template-not-found"


class TemplateError(ConfigError):
    """Jinja syntax or rendering error."""

    kind = "template"


class UndefinedVariableError(TemplateError):
    """A template variable that is not defined (StrictUndefined)."""

    kind = "undefined"


class YamlError(ConfigError):
    """YAML syntax error, unknown tag or malformed node after rendering."""

    kind = "yaml"


class SpecError(ConfigError):
    """A SPEC that is malformed or cannot be imported."""

    kind = "spec"


class RefusedImportError(SpecError):
    """A SPEC (or an attribute reached from one) that the import allowlist refuses.

    See docs/security.md: ``allow_imports`` in ``meta.yaml`` extends the list,
    ``--trust`` (``FORGATHER_TRUST=1``) allows everything for one run.
    """

    kind = "refused"


class SandboxError(TemplateError):
    """A template reached for something the Jinja sandbox forbids (``x.__class__``...)."""

    kind = "sandbox"


class ArgumentError(ConfigError):
    """Call arguments that do not match the callee's signature."""

    kind = "arguments"


class MissingVariableError(ConfigError):
    """A ``!var`` with no value in the build's context and no default."""

    kind = "var"


class CycleError(ConfigError):
    """A node that (indirectly) needs itself to be built."""

    kind = "cycle"
