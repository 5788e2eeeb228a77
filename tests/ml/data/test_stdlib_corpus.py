"""The embedded default corpus: what it includes and how files are named."""

from __future__ import annotations

from forgather.ml.data.stdlib_corpus import python_stdlib_source, stdlib_dir


def test_corpus_is_the_stdlib_without_tests_or_site_packages():
    names = [f.name for f in python_stdlib_source().files()]
    assert "json/decoder.py" in names and "textwrap.py" in names
    assert names == sorted(names)
    assert not any(n.startswith(("site-packages/", "test/")) or "/tests/" in n for n in names)
    assert all(n.endswith(".py") for n in names)
    assert all((stdlib_dir() / n).is_file() for n in names[:20])


def test_tests_are_included_on_request():
    assert any(f.name.startswith("test/") for f in python_stdlib_source(include_tests=True).files())


def test_package_subset():
    names = [f.name for f in python_stdlib_source(packages=["json", "textwrap.py"]).files()]
    assert "textwrap.py" in names and "json/__init__.py" in names
    assert {n.split("/")[0] for n in names} == {"json", "textwrap.py"}
