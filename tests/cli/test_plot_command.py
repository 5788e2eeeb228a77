"""``forgather plot RUN --out FILE``: the option reaches the command (the global
``-o/--output`` takes no abbreviations), so FILE holds the image, not the report."""

from __future__ import annotations

import json

from .conftest import TUTORIAL, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    history = [
        {"loss": 3.0 - step / 4, "learning_rate": 1e-3, "step": step} for step in range(1, 5)
    ]
    history.append({"eval_loss": 2.5, "step": 4})
    (run / "trainer_logs.json").write_text(json.dumps(history))
    return run


def test_plot_out_writes_a_png(tmp_path):
    run, image = _run_dir(tmp_path), tmp_path / "curves.png"
    result = run_cli("plot", str(run), "--out", str(image))
    assert result.rc == 0, result.err
    assert result.out == f"wrote {image}\n"
    data = image.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data.endswith(b"IEND\xaeB`\x82")  # the closing chunk: nothing appended


def test_plot_out_with_output_keeps_both_apart(tmp_path):
    run, image, report = _run_dir(tmp_path), tmp_path / "curves.png", tmp_path / "report.txt"
    result = run_cli("plot", str(run), "--out", str(image), "-o", str(report))
    assert result.rc == 0, result.err
    assert image.read_bytes().startswith(PNG_SIGNATURE)
    assert report.read_text() == f"wrote {image}\n"


def test_global_options_are_not_abbreviated(tmp_path):
    result = run_cli("-p", str(TUTORIAL), "--out", "x.txt", "ls", cwd=tmp_path)
    assert result.rc == 2  # a usage error, not `-o x.txt`
    assert not (tmp_path / "x.txt").exists()


def test_output_naming_an_image_is_the_image(tmp_path):
    run, image = _run_dir(tmp_path), tmp_path / "curves.svg"
    result = run_cli("plot", str(run), "-o", str(image))
    assert result.rc == 0, result.err
    assert result.out == f"wrote {image}\n"
    assert image.read_text().lstrip().startswith("<") and "<svg" in image.read_text()


def test_a_corrupt_log_names_its_file(tmp_path):
    run = _run_dir(tmp_path)
    (run / "trainer_logs.json").write_text('[{"loss": 1.0,')
    result = run_cli("plot", str(run))
    assert result.rc == 1
    assert result.err.startswith(f"forgather: error: {run / 'trainer_logs.json'} is not valid JSON")


def test_a_model_directory_names_its_newest_runs_instead(tmp_path):
    """`plot MODEL_DIR` (not a run) says so and names the runs to plot, newest first
    (it was `[Errno 2] ... trainer_logs.json`); a directory without runs says only why."""
    model = tmp_path / "tiny_llama"
    runs = model / "runs"
    runs.mkdir(parents=True)
    for name in (
        "tiny_2026-01-02T00-00-00",
        "tiny_2026-03-04T00-00-00",
        "tiny_2025-12-31T00-00-00",
    ):
        _run_dir(tmp_path).rename(runs / name)
    (runs / "tiny_2027-01-01T00-00-00").mkdir()  # started, nothing logged yet: not offered
    result = run_cli("plot", str(model))
    assert (result.rc, result.err) == (
        1,
        f"forgather: error: {model} is not a training run directory (no trainer_logs.json "
        f"there); plot one of its runs, newest first: {runs / 'tiny_2026-03-04T00-00-00'}, "
        f"{runs / 'tiny_2026-01-02T00-00-00'}, {runs / 'tiny_2025-12-31T00-00-00'}\n",
    )
    assert not list(tmp_path.rglob("*.png"))
    (tmp_path / "bare").mkdir()
    bare = run_cli("plot", str(tmp_path / "bare"))
    assert (bare.rc, bare.err) == (
        1,
        f"forgather: error: {tmp_path / 'bare'} is not a training run directory "
        "(no trainer_logs.json there)\n",
    )
    missing = run_cli("plot", str(tmp_path / "nowhere"))
    assert (missing.rc, missing.err) == (
        1,
        f"forgather: error: {tmp_path / 'nowhere'}: no such run directory or log file\n",
    )
