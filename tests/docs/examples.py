"""Runnable examples in Markdown: the convention of docs/language.md, parsed and run.

An example is the text between ``<!-- example: NAME -->`` (optionally
``<!-- example: NAME load=TEMPLATE -->``) and ``<!-- /example -->``. Inside
it, every fenced block is labelled by the nearest non-blank line above it:

* ```` `templates/base.yaml` ```` (a path in backticks, optionally followed by
  ``:``): a file of the example, written below the example's directory;
* ``Renders to:``: the config's rendered YAML, exactly (``Config.pp``);
* ``Renders like:``: the same, with ``...`` matching any text (doctest's ELLIPSIS);
* ```` `TARGET` builds to: ````: a Python literal equal to ``cfg.build(TARGET)``;
* ``Fails with:``: loading (then building every target) raises an error whose
  text is the block (a ``ConfigError``'s message; for another exception,
  ``Type: message`` and its notes, one per line);
* ``In Python:``: a doctest (``>>>`` lines), run with ``env``, ``cfg`` (and
  ``proj`` in a project) defined;
* ``At the command line:``: ``$ forgather ...`` lines, each followed by its
  output (stdout, then stderr), run in-process.

Which config an example loads: ``load=TEMPLATE``, else the last file written
under ``templates/``. With a ``meta.yaml`` the example is a project (a
``forgather_workspace/`` directory is made above it) and the config is
loaded through :class:`forgather.project.Project`; otherwise through
``ConfigEnvironment(["templates"])``. Fenced blocks outside examples must be
``text`` blocks (diagrams, syntax summaries); any other block, an unlabelled
block or an unknown label is an error, so the document cannot hold an
example this module does not check.

Decision a reader may question: the example runs with its own directory as
the current directory, so paths in messages (``templates/a.yaml:3``) read as
they would in a user's project and the expected text can be exact.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_START = re.compile(r"^<!-- example: (?P<name>[\w-]+)(?: load=(?P<load>\S+))? -->$")
_END = "<!-- /example -->"
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w-]*)\s*$")
_FILE = re.compile(r"^`(?P<path>[\w./-]+)`:?$")
_BUILDS = re.compile(r"^`(?P<target>[\w.]+)` builds to:$")
_LABELS = {
    "Renders to:": "renders",
    "Renders like:": "renders-like",
    "Fails with:": "fails",
    "In Python:": "python",
    "At the command line:": "cli",
}


class DocFormatError(Exception):
    """The document breaks the example convention (the message names the line)."""


@dataclass
class Block:
    kind: str  # "file" or a key of _LABELS' values, or "builds"
    arg: str  # the file's path or the target; "" otherwise
    text: str
    line: int  # 1-based line of the opening fence


@dataclass
class Example:
    name: str
    line: int
    load: str | None = None
    files: list[Block] = field(default_factory=list)
    checks: list[Block] = field(default_factory=list)

    @property
    def is_project(self) -> bool:
        return any(f.arg == "meta.yaml" for f in self.files)

    @property
    def config_name(self) -> str | None:
        if self.load:
            return self.load
        templates = [f.arg for f in self.files if f.arg.startswith("templates/")]
        return templates[-1].removeprefix("templates/") if templates else None


def _label(line: str, number: int) -> tuple[str, str]:
    text = line.strip()
    if match := _FILE.match(text):
        return "file", match["path"]
    if match := _BUILDS.match(text):
        return "builds", match["target"]
    if text in _LABELS:
        return _LABELS[text], ""
    raise DocFormatError(
        f"line {number}: a fenced block in an example needs a label above it "
        f"(`path`, {', '.join(_LABELS)}, `TARGET` builds to:), found {text!r}"
    )


def parse_examples(markdown: str) -> list[Example]:
    """Every example of a Markdown document (see the module docstring).

    Raises:
        DocFormatError: a block outside the convention, an unclosed example,
            an example without a check, or two examples with one name.
    """
    lines = markdown.split("\n")
    examples: list[Example] = []
    current: Example | None = None
    previous = ""  # nearest non-blank line above, outside fences
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        if match := _START.match(line.strip()):
            if current is not None:
                raise DocFormatError(f"line {number}: example inside example {current.name!r}")
            current = Example(match["name"], number, match["load"])
        elif line.strip() == _END:
            if current is None:
                raise DocFormatError(f"line {number}: {_END} without an example")
            if not current.checks:
                raise DocFormatError(
                    f"line {current.line}: example {current.name!r} checks nothing"
                )
            examples.append(current)
            current = None
        elif line.strip().startswith("<!-- example"):
            raise DocFormatError(f"line {number}: malformed example comment {line.strip()!r}")
        elif fence := _FENCE.match(line):
            indent = len(fence["indent"])
            body = []
            i += 1
            while i < len(lines) and not _FENCE.match(lines[i]):
                body.append(lines[i][indent:] if not lines[i][:indent].strip() else lines[i])
                i += 1
            if i == len(lines):
                raise DocFormatError(f"line {number}: unclosed fenced block")
            text = "\n".join(body) + "\n" if body else ""
            if current is None:
                if fence["info"] != "text":
                    raise DocFormatError(
                        f"line {number}: a ```{fence['info']} block outside an example "
                        "(only ```text blocks may stand alone)"
                    )
            else:
                kind, arg = _label(previous, number)
                block = Block(kind, arg, text, number)
                (current.files if kind == "file" else current.checks).append(block)
            previous = ""
            i += 1
            continue
        if line.strip():
            previous = line
        i += 1
    if current is not None:
        raise DocFormatError(f"line {current.line}: example {current.name!r} is not closed")
    names = [e.name for e in examples]
    for name in names:
        if names.count(name) > 1:
            raise DocFormatError(f"two examples are named {name!r}")
    return examples


# -- running ------------------------------------------------------------------


def error_text(error: BaseException) -> str:
    """What ``Fails with:`` shows: a ConfigError's message, else ``Type: message`` and notes."""
    from forgather.config import ConfigError

    if isinstance(error, ConfigError):
        return str(error)
    notes = getattr(error, "__notes__", [])
    return "\n".join([f"{type(error).__name__}: {error}", *notes])


def _write(root: Path, example: Example) -> None:
    for block in example.files:
        path = root / block.arg
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text)
    if example.is_project:
        (root.parent / "forgather_workspace").mkdir(exist_ok=True)


def _load(example: Example) -> tuple[dict[str, Any], BaseException | None]:
    """The doctest namespace (``env``, ``cfg``, ``proj``) and the load error, if any."""
    from forgather.config import ConfigEnvironment

    names: dict[str, Any] = {}
    try:
        if example.is_project:
            from forgather.project import Project

            proj = names["proj"] = Project.open(".")
            names["env"] = proj.environment
            if example.config_name:
                names["cfg"] = proj.load(example.config_name)
        else:
            env = names["env"] = ConfigEnvironment(["templates"])
            if example.config_name:
                names["cfg"] = env.load(example.config_name)
    except Exception as e:  # noqa: BLE001 - a "Fails with:" block may expect it
        return names, e
    return names, None


def _first_failure(names: dict[str, Any], loaded: BaseException | None) -> BaseException | None:
    if loaded is not None:
        return loaded
    try:
        names["cfg"].build()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def _doctest(block: Block, names: dict[str, Any], example: Example) -> str | None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(
        block.text, dict(names), f"{example.name}", "docs/language.md", block.line
    )
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=out.write, clear_globs=True)
    return out.getvalue() if runner.failures else None


def _cli(block: Block) -> str | None:
    from forgather.cli.main import main

    problems = []
    commands: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif not commands:
            return f"line {block.line}: a command block must start with '$ forgather ...'"
        else:
            commands[-1][1].append(line)
    for command, expected in commands:
        words = shlex.split(command)
        if words[0] != "forgather":
            return f"line {block.line}: only forgather commands run here: {command!r}"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(words[1:])
        got = out.getvalue() + err.getvalue()
        want = "\n".join(expected) + "\n" if expected else ""
        if got != want:
            problems.append(f"$ {command}\n--- expected\n{want}--- got\n{got}")
    return "\n".join(problems) or None


def run_example(example: Example, directory: Path) -> list[str]:
    """Run ``example`` in ``directory`` (made current); return the failed checks' reports."""
    root = directory / "project" if example.is_project else directory
    root.mkdir(parents=True, exist_ok=True)
    _write(root, example)
    before = set(sys.modules)
    old_cwd = os.getcwd()
    os.chdir(root)
    sys.path.insert(0, str(root))
    try:
        if all(c.kind == "cli" for c in example.checks):
            names, load_error = {}, None  # the commands load the config themselves
        else:
            names, load_error = _load(example)
        return _checks(example, names, load_error)
    finally:
        sys.path.remove(str(root))
        os.chdir(old_cwd)
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file.startswith(str(directory)):
                del sys.modules[name]


def _checks(example: Example, names: dict[str, Any], load_error: BaseException | None) -> list[str]:
    failures: list[str] = []
    expects_failure = any(c.kind == "fails" for c in example.checks)
    if load_error is not None and not expects_failure:
        return [f"loading failed:\n{error_text(load_error)}"]
    for check in example.checks:
        where = f"line {check.line}"
        if check.kind in ("renders", "renders-like"):
            got = names["cfg"].pp
            if check.kind == "renders":
                ok = got == check.text
            else:
                ok = doctest.OutputChecker().check_output(check.text, got, doctest.ELLIPSIS)
            if not ok:
                failures.append(f"{where}: rendered\n{got}--- expected\n{check.text}")
        elif check.kind == "builds":
            want = ast.literal_eval(check.text)
            got = names["cfg"].build(check.arg)
            if got != want:
                failures.append(f"{where}: {check.arg} built {got!r}, expected {want!r}")
        elif check.kind == "fails":
            error = _first_failure(names, load_error)
            got = "(no error)\n" if error is None else error_text(error) + "\n"
            if got != check.text:
                failures.append(f"{where}: error\n{got}--- expected\n{check.text}")
        elif check.kind == "python":
            report = _doctest(check, names, example)
            if report:
                failures.append(f"{where}:\n{report}")
        elif check.kind == "cli":
            report = _cli(check)
            if report:
                failures.append(f"{where}:\n{report}")
    return failures
