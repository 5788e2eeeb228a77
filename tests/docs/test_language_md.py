"""docs/language.md: every example renders, builds and fails as the page says, and
every name of the language's tables (tags, globals, filters, helpers, line
syntax, the Python API) is documented and used in an example.

The example convention is :mod:`tests.docs.examples`; each example runs
in-process in its own temporary directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from forgather.cli.dynamic_args import _TYPES
from forgather.config import Config, ConfigEnvironment
from forgather.config import __all__ as CONFIG_API
from forgather.config.nodes import KINDS, LATENT_KEY, SEARCHPATH_KEY
from forgather.config.spec import HELPERS, parse_spec
from forgather.config.template_globals import template_globals
from forgather.project.meta import MetaConfig

from .examples import DocFormatError, parse_examples, run_example

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
TEXT = DOC.read_text()
EXAMPLES = parse_examples(TEXT)
#: Everything the examples' templates say, to check each construct is exercised.
EXAMPLE_FILES = "\n".join(f.text for e in EXAMPLES for f in e.files)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FORGATHER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("FORGATHER_TRUST", raising=False)


def test_every_example_does_what_the_page_says(tmp_path):
    # One test for all examples: a test's teardown collects garbage (tests/conftest.py),
    # which costs more than most examples. Every failure is reported, by example.
    reports = []
    for number, example in enumerate(EXAMPLES):
        failures = run_example(example, tmp_path / str(number))
        if failures:
            reports.append(f"docs/language.md:{example.line} ({example.name}):")
            reports.extend(failures)
    assert not reports, "\n".join(reports)


def _documented(name: str) -> bool:
    return re.search(r"`[^`\n]*\b" + re.escape(name) + r"\b[^`\n]*`", TEXT) is not None


def test_every_global_and_filter_is_documented_and_used():
    env = ConfigEnvironment([])._templates.env
    filters = sorted(set(env.filters) - set(jinja2.defaults.DEFAULT_FILTERS))
    names = [*template_globals(), *filters, *MetaConfig(".", workspace_root=".").template_vars]
    assert "toyaml" in filters
    undocumented = [n for n in names if not _documented(n)]
    unused = [n for n in names if not re.search(rf"\b{n}\b", EXAMPLE_FILES)]
    assert not undocumented, f"not in docs/language.md: {undocumented}"
    assert not unused, f"no example of docs/language.md uses: {unused}"


def test_every_tag_and_helper_is_documented_and_used():
    tags = [f"!{tag}" for tag in KINDS]
    undocumented = [t for t in tags if f"`{t}" not in TEXT]
    unused = [t for t in tags if not re.search(re.escape(t) + r"\b", EXAMPLE_FILES)]
    assert not undocumented and not unused, (undocumented, unused)
    specs = {m[1] for m in re.finditer(r"!\w+:([^\s@\[\]{},]+)", EXAMPLE_FILES)}
    helpers = [h for h in HELPERS if h not in specs]
    assert not helpers, f"no example calls the helpers {helpers}"
    forms = {parse_spec(s).form for s in specs}
    assert forms == {"name", "module", "file", "relative"}, forms
    for key in (SEARCHPATH_KEY, LATENT_KEY):
        assert _documented(key) and f"{key}:" in EXAMPLE_FILES, key


LINE_SYNTAX = {
    "-- statement": r"^\s*-- \S",
    "<< statement": r"^\s*<< \S",
    ">> statement": r"^\s*>> \S",
    "== expression": r"^\s*== \S",
    "=> expression": r"^\s*=> \S",
    "## line comment": r"^\s*## ",
    "## trailing comment": r"\S\s+## ",
    "[block]": r"^\s*\[\w+\]\s*$",
    "indented [block]": r"^\s+\[\w+\]\s*$",
    "[block!]": r"^\s*\[\w+!\]\s*$",
    "#---- name ----": r"^#-{3,}\s*[\w./]+\s*-{3,}\s*$",
    "{% %}": r"\{%",
    "{{ }}": r"\{\{",
    "{# #}": r"\{#",
}


def test_every_line_syntax_is_used_in_an_example():
    unused = [
        c for c, pattern in LINE_SYNTAX.items() if not re.search(pattern, EXAMPLE_FILES, re.M)
    ]
    assert not unused


def test_the_python_api_is_documented():
    public = [n for n in dir(Config) if not n.startswith("_")]
    public += [n for n in dir(ConfigEnvironment) if not n.startswith("_")]
    missing = [n for n in [*CONFIG_API, *public] if not _documented(n)]
    assert not missing, f"not in docs/language.md: {missing}"
    assert all(_documented(t) for t in _TYPES), "dynamic_args types"


def test_every_fenced_block_belongs_to_an_example_or_is_text():
    assert len(EXAMPLES) >= 40
    assert all(e.checks for e in EXAMPLES)


BAD_DOCUMENTS = {
    "```yaml\na: 1\n```\n": "outside an example",
    "<!-- example: x -->\n```yaml\na: 1\n```\n<!-- /example -->\n": "needs a label",
    "<!-- example: x -->\nSomething:\n```yaml\na: 1\n```\n<!-- /example -->\n": "label",
    "<!-- example: x -->\n`templates/a.yaml`\n```yaml\na: 1\n```\n<!-- /example -->": "checks",
    "<!-- example: x -->\nRenders to:\n```yaml\na: 1\n```\n": "not closed",
    "<!-- example x -->\n": "malformed",
    "<!-- example: x -->\nRenders to:\n```yaml\na: 1\n": "unclosed",
}


def test_the_parser_refuses_what_it_cannot_check():
    for markdown, message in BAD_DOCUMENTS.items():
        with pytest.raises(DocFormatError, match=message):
            parse_examples(markdown)


def test_a_wrong_expectation_fails(tmp_path):
    (example,) = parse_examples(
        "<!-- example: wrong -->\n`templates/a.yaml`\n```yaml\na: {{ 1 + 1 }}\n```\n"
        "Renders to:\n```yaml\na: 3\n```\n`a` builds to:\n```python\n3\n```\n<!-- /example -->\n"
    )
    failures = run_example(example, tmp_path)
    assert len(failures) == 2 and "a: 2" in failures[0] and "built 2" in failures[1]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_inside_the_page_and_to_other_pages_resolve():
    outside_fences = re.sub(r"^```.*?^```", "", TEXT, flags=re.S | re.M)
    anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", outside_fences, re.M)}
    for target in re.findall(r"\]\(([^)]+)\)", outside_fences):
        page, _, anchor = target.partition("#")
        if page:
            assert (DOC.parent / page).is_file(), target
        else:
            assert anchor in anchors, target
