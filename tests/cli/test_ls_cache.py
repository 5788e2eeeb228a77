"""The ``ls`` listing cache: reused while nothing changes, refreshed after an edit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from forgather.cli.listing import project_listing
from forgather.cli.render_cache import ListingCache

from .conftest import run_cli


def _project(tmp_path: Path) -> Path:
    run_cli("ws", "init", "--name", "W", cwd=tmp_path)
    run_cli("ws", "project", "--name", "P", cwd=tmp_path)
    return tmp_path / "p"


def test_listing_is_reused_then_refreshed_after_an_edit(tmp_path: Path):
    project = _project(tmp_path)
    cache = ListingCache(tmp_path / "cache")
    first = project_listing(project, {}, cache)
    assert first.configs[0].title == "Default"
    assert ListingCache(tmp_path / "cache").get(project.resolve()) is not None

    config = project / "templates" / "configs" / "default.yaml"
    config.write_text(config.read_text().replace('"Default"', '"Renamed"'))
    stat = config.stat()  # make sure the mtime moves even on coarse clocks
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    fresh = ListingCache(tmp_path / "cache")
    assert fresh.get(project.resolve()) is None
    assert project_listing(project, {}, fresh).configs[0].title == "Renamed"


def test_an_edit_of_the_same_size_with_its_mtime_put_back_invalidates(tmp_path: Path):
    project = _project(tmp_path)
    project_listing(project, {}, ListingCache(tmp_path / "cache"))
    config = project / "templates" / "configs" / "default.yaml"
    before = config.stat()
    time.sleep(0.01)  # the ctime of the edit differs from the first one's
    config.write_text(config.read_text().replace('"Default"', '"Defeats"'))  # same size
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `touch -r` would
    assert config.stat().st_size == before.st_size
    fresh = ListingCache(tmp_path / "cache")
    assert fresh.get(project.resolve()) is None
    assert project_listing(project, {}, fresh).configs[0].title == "Defeats"


def test_new_config_file_invalidates(tmp_path: Path):
    project = _project(tmp_path)
    cache = ListingCache(tmp_path / "cache")
    project_listing(project, {}, cache)
    (project / "templates" / "configs" / "second.yaml").write_text('-- extends "project.yaml"\n')
    names = [c.name for c in project_listing(project, {}, ListingCache(tmp_path / "cache")).configs]
    assert names == ["default.yaml", "second.yaml"]


def test_template_vars_bypass_the_cache(tmp_path: Path):
    project = _project(tmp_path)
    cache = ListingCache(tmp_path / "cache")
    project_listing(project, {"x": 1}, cache)
    assert cache.get(project.resolve()) is None


def test_cached_ls_imports_no_template_engine(tmp_path: Path):
    project = _project(tmp_path)
    assert run_cli("ls", cwd=project).rc == 0  # fills the cache
    code = (
        "import sys, contextlib, io\n"
        "from forgather.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out: rc = main(['ls'])\n"
        "print(rc, 'jinja2' in sys.modules, 'yaml' in sys.modules, 'Default' in out.getvalue())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "False", "False", "True"]


def test_no_cache_flag_renders_again(tmp_path: Path):
    project = _project(tmp_path)
    assert run_cli("ls", cwd=project).rc == 0
    result = run_cli("ls", "--no-cache", cwd=project)
    assert "* default.yaml  Default: The project's starting config" in result.out


def test_a_listing_made_by_other_code_is_not_reused(tmp_path: Path, monkeypatch):
    # The cache key covers Forgather's own code (config, project, the listing modules),
    # so a listing stored by another version, or by a checkout edited since, is stale.
    from forgather.cli import render_cache

    package = tmp_path / "forgather"
    for part in ("config/loader.py", "project/meta.py", "cli/listing.py", "cli/render_cache.py"):
        (package / part).parent.mkdir(parents=True, exist_ok=True)
        (package / part).write_text("# version 1\n")
    monkeypatch.setattr(render_cache, "_PACKAGE", str(package))
    project = _project(tmp_path)
    project_listing(project, {}, ListingCache(tmp_path / "cache"))
    assert ListingCache(tmp_path / "cache").get(project.resolve()) is not None

    (package / "config" / "loader.py").write_text("# version 2, another size\n")
    assert ListingCache(tmp_path / "cache").get(project.resolve()) is None
