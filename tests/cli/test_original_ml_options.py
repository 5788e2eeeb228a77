"""The original Forgather's options of ``tb``, ``checkpoint link``, ``control list``,
``dataset``, ``model``, ``convert`` and ``update-vocab``, run through the CLI's
own entry point (``forgather.cli.main``) on a tiny dataset project
(``original_ml/small_dataset``: the stdlib's json package) and the example
model project."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model
from transformers import LlamaConfig, LlamaForCausalLM

from forgather.cli.main import main
from forgather.control.registry import JobRecord, new_job_id, new_token, register
from forgather.control.server import ControlServer
from tests.cli.conftest import EXAMPLES

MODELS = str(EXAMPLES / "models")
SMALL_DATA = str(Path(__file__).parent / "original_ml" / "small_dataset")


def _run(capfd, *argv: str) -> tuple[int, str, str]:
    capfd.readouterr()
    rc = main(list(argv))
    out, err = capfd.readouterr()
    return rc, out, err


# -- tb ------------------------------------------------------------------------------------


def test_tb_all_watches_every_model_directory(capfd, tmp_path):
    out_dir = tmp_path / "models" / "tiny"
    rc, out, err = _run(capfd, "-p", MODELS, "-t", "tiny_llama.yaml", "-D",
                        f"output_dir={out_dir}", "tb", "--all", "--dry-run")  # fmt: skip
    assert rc == 0, err
    assert f"--logdir {tmp_path / 'models'} " in out
    rc, out, _ = _run(capfd, "-p", MODELS, "-t", "tiny_llama.yaml", "-D",
                      f"output_dir={out_dir}", "tb", "--dry-run")  # fmt: skip
    assert f"--logdir {out_dir / 'runs'} " in out


def test_tb_passes_arguments_after_double_dash_to_tensorboard(capfd, tmp_path):
    rc, out, err = _run(capfd, "-p", MODELS, "-t", "tiny_llama.yaml", "-D",
                        f"output_dir={tmp_path}", "tb", "--dry-run", "--", "--port", "7001",
                        "--bind_all", "--reload_interval", "9")  # fmt: skip
    assert rc == 0, err
    assert out.rstrip().endswith("--port 7001 --bind_all --reload_interval 9")
    assert "6006" not in out and "--host" not in out  # the user's replace ours


# -- checkpoint link -------------------------------------------------------------------------


def _llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    ))  # fmt: skip


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A model directory with its own weights file and one checkpoint."""
    root = tmp_path / "model"
    _llama().save_pretrained(root)
    checkpoint = root / "runs" / "r" / "checkpoints" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    save_model(_llama(), str(checkpoint / "model.safetensors"))
    (checkpoint / "trainer_state.json").write_text("{}")
    (root / "model.safetensors").unlink()
    return root


def test_checkpoint_link_dry_run_changes_nothing(capfd, model_dir):
    rc, out, err = _run(capfd, "checkpoint", "link", str(model_dir), "--dry-run")
    assert rc == 0, err
    assert "checkpoint-4/model.safetensors" in out and "dry run" in out
    assert not (model_dir / "model.safetensors").exists()


def test_checkpoint_link_f_replaces_a_real_weights_file(capfd, model_dir):
    (model_dir / "model.safetensors").write_bytes(b"final weights")
    rc, _, err = _run(capfd, "checkpoint", "link", str(model_dir))
    assert rc == 1 and "--force" in err
    rc, _, err = _run(capfd, "checkpoint", "link", str(model_dir), "-f")
    assert rc == 0, err
    assert (model_dir / "model.safetensors").resolve().parent.name == "checkpoint-4"


def test_checkpoint_link_output_path_names_the_model_directory(
    capfd, model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no project here: the directory comes from --output-path only
    rc, out, err = _run(capfd, "checkpoint", "link", "--output-path", str(model_dir))
    assert rc == 0, err
    assert (model_dir / "model.safetensors").is_symlink()


# -- control list --remote -------------------------------------------------------------------


def test_control_list_remote_lists_the_job_answering_there(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGATHER_STATE_DIR", str(tmp_path / "here"))
    token = new_token()
    server = ControlServer(token, lambda: {"state": "running", "step": 7}).start()
    record = JobRecord(new_job_id(), os.getpid(), socket.gethostname(), server.port, token,
                       "/run", config="Remote Run")  # fmt: skip
    register(record)
    try:
        # Another machine's view: its own registry is empty, the port is forwarded to it.
        env = {**os.environ, "FORGATHER_STATE_DIR": str(tmp_path / "elsewhere")}
        listed = subprocess.run(
            [sys.executable, "-m", "forgather.cli", "control", "list", "--remote",
             f"127.0.0.1:{server.port}"], capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        bad = subprocess.run(
            [sys.executable, "-m", "forgather.cli", "control", "list", "--remote", "nowhere"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        # On the job's own machine it is listed once, not again for its port.
        local = subprocess.run(
            [sys.executable, "-m", "forgather.cli", "control", "list", "--remote",
             f"127.0.0.1:{server.port}"], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.close()
    assert local.returncode == 0, local.stderr
    assert local.stdout.count(record.job_id) == 1
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1]
    assert record.job_id in row and "Remote Run" in row and " 7 " in row
    assert f"running at 127.0.0.1:{server.port}" in row
    assert token not in listed.stdout
    assert bad.returncode == 1 and "HOST:PORT" in bad.stderr


@pytest.mark.parametrize(
    ("words", "code", "says"),
    [
        (["control", "list", "--force"], 2, "--force goes with cleanup (and abort) only"),
        (["control", "status", "--remote", "h:1"], 2, "--remote goes with list only"),
        (["-D", "x=1", "control", "list"], 1, "control reads no config: -D has no effect here"),
        (["control", "list", "-t", "c.yaml"], 2, "unrecognized arguments: -t c.yaml"),
    ],
)
def test_control_refuses_options_it_would_ignore(tmp_path, words, code, says):
    env = {**os.environ, "FORGATHER_STATE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "forgather.cli", *words],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert (result.returncode, says in result.stderr) == (code, True), result.stderr


# -- dataset ---------------------------------------------------------------------------------


def _dataset(capfd, *args: str) -> tuple[int, str, str]:
    return _run(capfd, "-p", SMALL_DATA, "dataset", *args)


def test_dataset_pp_prints_the_config_first(capfd):
    rc, out, err = _dataset(capfd, "--pp", "-n", "0")
    assert rc == 0, err
    assert out.startswith("# Preprocessed configuration\n")
    assert out.index("PackedDataset") < out.index("# Splits")


def test_dataset_H_writes_histograms_and_only_then(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _dataset(capfd, "-n", "0")[0] == 0
    assert not list(tmp_path.glob("*.svg"))
    rc, out, err = _dataset(capfd, "-n", "0", "-H")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == [
        "train_token_lengths.svg", "validation_token_lengths.svg"
    ]  # fmt: skip
    assert "histogram: train_token_lengths.svg" in out


def test_dataset_histogram_samples_limits_the_statistics(capfd):
    rc, out, err = _dataset(capfd, "-n", "0", "--histogram-samples", "2")
    assert rc == 0, err
    assert re.search(r"^train: count=2 .*\(a random sample of 2 of 4 documents\)$", out, re.M)


def test_dataset_features_prints_fields_as_they_are(capfd):
    rc, out, err = _dataset(capfd, "-n", "1", "--features", "position_ids")
    assert rc == 0, err
    assert "=== example 0: fields input_ids, position_ids ===\n[position_ids]\n[0, 1, 2," in out
    rc, _, err = _dataset(capfd, "-n", "1", "--features", "text")
    assert rc == 1 and "no field 'text' (fields: input_ids, position_ids)" in err


def test_dataset_s_decodes_tokenized_examples(capfd):
    rc, out, err = _dataset(capfd, "-n", "1", "-s")
    assert rc == 0, err
    assert "=== example 0: block of 512 tokens ===" in out and "[position_ids]" not in out


def test_dataset_T_decodes_with_another_tokenizer(capfd, tmp_path):
    from tests.serve.tiny_model import train_tokenizer

    train_tokenizer(300).save_pretrained(tmp_path / "tok")
    own = _dataset(capfd, "-n", "1")[1]
    rc, out, err = _dataset(capfd, "-n", "1", "-T", str(tmp_path / "tok"))
    assert rc == 0, err
    section = out[out.index("# Examples") : out.index("# Token lengths")]
    assert section != own[own.index("# Examples") : own.index("# Token lengths")]
    rc, _, err = _dataset(capfd, "-n", "1", "-T", str(tmp_path / "missing"))
    assert rc == 1


# -- model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_checkpoint(tmp_path_factory) -> Path:
    """Fixed weights of the example tiny_llama model (so two runs start from the same point)."""
    out = tmp_path_factory.mktemp("tiny_llama")
    from forgather.project import Project

    model = Project.open(MODELS).load("tiny_llama.yaml", output_dir=str(out / "m")).build("model")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    save_model(model, str(out / "model.safetensors"))
    return out / "model.safetensors"


def _model(capfd, tmp_path, *args: str) -> tuple[int, str, str]:
    return _run(capfd, "-p", MODELS, "-t", "tiny_llama.yaml", "-D",
                f"output_dir={tmp_path / 'm'}", "model", *args)  # fmt: skip


def _losses(out: str) -> list[float]:
    return [float(x) for x in re.findall(r"^step \d+: loss ([\d.]+)", out, re.M)]


@pytest.fixture(scope="module")
def model_runs(model_checkpoint, tmp_path_factory):
    """``model test`` outputs, all from the same fixed weights and the same random batches."""
    out = tmp_path_factory.mktemp("runs")
    load = ("--load-from-checkpoint", str(model_checkpoint))
    shape = ("--sequence-length", "16", "--batch-size", "2", "--steps", "2")
    runs = {
        "plain": (*load, "test", *shape, "--lr", "0.01"),
        "fused": ("--fuse-optim-with-backward", *load, "test", *shape, "--lr", "0.01"),
        "lr0": (*load, "test", *shape, "--lr", "0"),
        "gc": ("--gradient-checkpointing", "--no-init-weights", *load, "test", *shape,
               "--lr", "0.01"),
    }  # fmt: skip
    results = {}
    for name, args in runs.items():
        stdout, stderr = io.StringIO(), io.StringIO()
        with redirect_stdout(stdout), redirect_stderr(stderr):
            rc = main(["-p", MODELS, "-t", "tiny_llama.yaml", "-D", f"output_dir={out / 'm'}",
                       "model", *args])  # fmt: skip
        results[name] = (rc, stdout.getvalue(), stderr.getvalue())
    return results


def test_model_load_from_checkpoint(model_runs, model_checkpoint):
    rc, out, err = model_runs["plain"]
    assert rc == 0, err
    assert f"weights loaded from {model_checkpoint}" in out
    # Two builds, each initialised at random, then the same weights: the same first loss.
    assert _losses(out)[0] == _losses(model_runs["lr0"][1])[0]


def test_model_load_from_checkpoint_without_weights_fails(capfd, tmp_path):
    rc, _, err = _model(capfd, tmp_path, "--load-from-checkpoint", str(tmp_path), "construct",
                        "--device", "meta")  # fmt: skip
    assert rc == 1 and "needs real memory" in err


def test_model_fuse_optim_with_backward_steps_the_same(model_runs):
    rc, fused, err = model_runs["fused"]
    assert rc == 0, err
    assert "optimizer fused with backward" in fused
    # AdamW is per element: one optimizer per parameter, stepped in backward, is the same update.
    assert _losses(fused) == pytest.approx(_losses(model_runs["plain"][1]), rel=1e-4)


def test_model_lr(model_runs):
    plain, still = _losses(model_runs["plain"][1]), _losses(model_runs["lr0"][1])
    assert "; lr 0.0\n" in model_runs["lr0"][1]
    assert plain[0] == still[0] and plain[1] != still[1]


def test_model_test_sequence_length_batch_size_and_steps(model_runs):
    out = model_runs["plain"][1]
    assert out.count("input_ids (2, 16)") == 2 and len(_losses(out)) == 2


def test_model_gradient_checkpointing_and_no_init_weights(model_runs):
    rc, out, err = model_runs["gc"]
    assert rc == 0, err
    assert "gradient checkpointing: on" in out
    assert "weights not initialised (--no-init-weights)" in out
    # Recomputing activations and skipping the (overwritten) init change no number.
    assert _losses(out) == pytest.approx(_losses(model_runs["plain"][1]), rel=1e-5)


def test_model_test_on_a_dataset_project_packed_or_not(capfd, tmp_path):
    data = ("--dataset-project", SMALL_DATA, "--dataset-config", "small.yaml")
    rc, rows, err = _model(capfd, tmp_path, "test", "--steps", "1", "--sequence-length", "16",
                           *data)  # fmt: skip
    assert rc == 0, err
    rc, packed, err = _model(capfd, tmp_path, "test", "--steps", "1", "--sequence-length", "16",
                             *data, "--packed")  # fmt: skip
    assert rc == 0, err
    documents = [int(re.search(r"(\d+) documents", o).group(1)) for o in (rows, packed)]
    # One 512-token block per row (2 starts), or one block cut into rows that continue it.
    assert documents == [2, 1]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_tb_stops_what_it_started_when_it_is_stopped(tmp_path, signame):
    # `forgather tb` runs TensorBoard through run_as_child; TensorBoard starts a server of its
    # own, as the shell below starts a second sleep.
    import signal
    import time

    pidfile = tmp_path / "grandchild"
    script = (
        "from forgather.cli.train import run_as_child\n"
        f"run_as_child(['sh', '-c', 'sleep 60 & echo $! > {pidfile}; wait'])\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while not (pidfile.is_file() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    parent.send_signal(getattr(signal, signame))
    parent.wait(timeout=30)
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(grandchild, signal.SIGKILL)
    raise AssertionError(f"{signame}: the grandchild outlived forgather tb")
