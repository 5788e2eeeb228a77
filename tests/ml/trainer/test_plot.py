"""`plot_run` writes a well-formed SVG of a real run's curves."""

from __future__ import annotations

import doctest
import json
import xml.etree.ElementTree as ET

import pytest

from forgather.ml.trainer import plot as plot_module
from forgather.ml.trainer import plot_run

from .tiny_lm import make_trainer

SVG = "{http://www.w3.org/2000/svg}"


def test_plot_of_a_real_run(tmp_path):
    make_trainer(str(tmp_path), max_steps=6).train()
    run_dir = tmp_path / "runs" / "run"
    path = plot_run(str(run_dir), str(run_dir / "training_curves.svg"))
    root = ET.parse(path).getroot()
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 3  # loss, eval_loss, learning_rate
    loss_points = lines[0].get("points").split()
    assert len(loss_points) == 6
    assert len(root.findall(f"{SVG}circle")) == 2  # eval at steps 3 and 6
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"loss", "learning rate", "eval_loss", "learning_rate", "step"} <= labels


def test_plot_errors_and_output_path(tmp_path):
    log = tmp_path / "trainer_logs.json"
    log.write_text(json.dumps([{"eval_loss": 1.0, "step": 1}]))
    with pytest.raises(ValueError, match="no training loss"):
        plot_run(str(tmp_path))
    log.write_text(json.dumps([{"loss": 2.0, "learning_rate": 0.1, "step": 1}]))  # one point
    out = plot_run(str(log), str(tmp_path / "x.svg"))
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    # A one-point polyline draws nothing: each one-point series is a marker too.
    fills = sorted(c.get("fill") for c in root.iter(f"{SVG}circle"))
    assert fills == sorted([plot_module.COLORS["loss"], plot_module.COLORS["learning_rate"]])
    assert plot_run(str(log), str(tmp_path / "x.png")).endswith("x.png")
    with pytest.raises(FileNotFoundError):
        plot_run(str(tmp_path / "missing"))


def test_docstring_examples():
    assert doctest.testmod(plot_module).failed == 0


def test_png_by_default(tmp_path):
    make_trainer(str(tmp_path), max_steps=4).train()
    run_dir = tmp_path / "runs" / "run"
    path = plot_run(str(run_dir))
    assert path == str(run_dir / "training_curves.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
