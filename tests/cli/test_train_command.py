"""``forgather train`` on the tiny_llama tutorial: the run directory, the model
directory, and how failures are reported (in process and under torchrun).

The runs are shrunk (a few steps, small batches, a slice of the stdlib) so the
whole module takes well under a minute; the full tutorial is `make demo`.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.cli.conftest import EXAMPLES, REPO_ROOT, run_cli

TUTORIAL = str(EXAMPLES / "tutorials" / "tiny_llama")


def small_run(output_dir, *extra, steps=4):
    """Options that make the tutorial's run tiny."""
    return (
        "-p", TUTORIAL, "-D", f"output_dir={output_dir}", "-D", "stdlib_packages=[json, email]",
        "-D", "block_size=64", "-D", "tokenizer_vocab_size=512", *extra, "train", "--max-steps", str(steps),
        "--set", "main.args.per_device_train_batch_size=2", "--set", "main.args.logging_steps=2",
        "--set", "main.args.eval_steps=2", "--set", "main.args.save_steps=2",
        "--set", "main.args.max_eval_steps=2", "--set", "main.args.bf16=false",
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_llama")
    result = run_cli(*small_run(out), cwd=REPO_ROOT)
    assert result.rc == 0, result.err
    return out


def test_run_directory_holds_everything_to_reproduce(trained):
    (run,) = (trained / "runs").iterdir()
    assert run.name.startswith("tiny_llama_")
    config = (run / "config.yaml").read_text()
    assert "TrainingScript" in config and "max_steps: 4" in config
    assert (run / "templates" / "configs" / "train_tiny_llama.yaml").read_text().startswith("{#")
    assert "training_script.yaml" in {p.name for p in (run / "templates").rglob("*")}
    compile((run / "generated_code.py").read_text(), "generated_code.py", "exec")
    environment = json.loads((run / "environment.json").read_text())
    assert environment["versions"]["torch"] and "train" in environment["command_line"]
    assert len(environment["git_commit"] or "") in (0, 40)
    logs = json.loads((run / "trainer_logs.json").read_text())
    assert any("eval_loss" in entry for entry in logs)
    assert list(run.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "checkpoint-2",
        "checkpoint-4",
    ]


def test_model_directory_loads_with_plain_transformers(trained):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["forgather"] = None  # importing forgather now fails
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(trained)!r}, trust_remote_code=True)
        tok = AutoTokenizer.from_pretrained({str(trained)!r}, trust_remote_code=True)
        ids = tok("def ", return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=5, do_sample=False)
        print(out.shape[1] - ids.shape[1])
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5"


def test_checkpoint_link_and_plot(trained):
    result = run_cli("checkpoint", "link", str(trained), "--force")
    assert result.rc == 0, result.err
    assert os.path.islink(trained / "model.safetensors")
    assert "checkpoint-4" in os.readlink(trained / "model.safetensors")
    (run,) = (trained / "runs").iterdir()
    plotted = run_cli("plot", str(run))
    assert plotted.rc == 0 and (run / "training_curves.png").is_file()


def test_bad_config_value_exits_non_zero(tmp_path):
    result = run_cli(
        *small_run(tmp_path, steps=2)[:-2],
        "--set",
        "main.args.per_device_train_batch_size=0",
        cwd=REPO_ROOT,
    )
    assert result.rc == 1
    assert "batch_size" in result.err and "Traceback" not in result.err


def test_exception_in_a_callback_exits_non_zero(tmp_path):
    config = tmp_path / "exploding.yaml"
    config.write_text(
        '-- extends "configs/train_tiny_llama.yaml"\n'
        "[trainer_callback_entries]\n"
        "    boom: !call:tests.cli.exploding_callback:ExplodingCallback {at_step: 1}\n"
    )
    result = run_cli(
        *small_run(tmp_path, steps=3)[:8],
        "-t",
        str(config),
        *small_run(tmp_path, steps=3)[8:],
        cwd=REPO_ROOT,
    )
    assert result.rc == 1
    assert "callback exploded at step 1" in result.err


@pytest.mark.slow
def test_exception_under_torchrun_exits_non_zero(tmp_path):
    result = run_cli(
        *small_run(tmp_path, steps=2),
        "--nproc",
        "2",
        "--set",
        "main.args.per_device_train_batch_size=0",
        cwd=REPO_ROOT,
    )
    assert result.rc == 1
    # The rank's one-line error, then the launcher's one line: no traceback of torchrun's.
    assert "batch_size" in result.err and "forgather: rank " in result.err
    assert "Traceback" not in result.err and "ChildFailedError" not in result.err


def test_dry_run_prints_the_torchrun_command(tmp_path):
    result = run_cli(
        "-p",
        TUTORIAL,
        "train",
        "--nproc",
        "2",
        "--dry-run",
        "--",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
    )
    assert result.rc == 0, result.err
    assert (
        "torch.distributed.run --nproc-per-node=2 --nnodes 2 --node-rank 1 -m forgather.cli -p"
        in result.out
    )
    assert "--standalone" not in result.out


def test_a_derived_config_that_renames_the_model_writes_everything_under_the_new_name(tmp_path):
    """The tutorial's model piece takes the including config's model name: a derived config
    setting `ns.model_name` used to write the model to output_models/tiny_llama anyway."""
    import shutil

    project = tmp_path / "tiny_llama"
    shutil.copytree(TUTORIAL, project, ignore=shutil.ignore_patterns("output_models"))
    shutil.copytree(REPO_ROOT / "forgather_workspace", tmp_path / "forgather_workspace")
    (project / "templates" / "configs" / "mine.yaml").write_text(
        '-- extends "configs/train_tiny_llama.yaml"\n'
        "[config_metadata]\n"
        "    == super()\n"
        '    -- set ns.model_name = "mine"\n'
    )
    result = run_cli("-p", str(project), "-t", "mine.yaml", "pp", "--no-cache", cwd=REPO_ROOT)
    assert result.rc == 0, result.err
    dirs = {line.split(":", 1)[1].strip() for line in result.out.splitlines()
            if line.strip().startswith(("output_dir:", "model_dir:"))}  # fmt: skip
    assert dirs == {str(project / "output_models" / "mine")}


def test_resume_after_the_last_step_says_there_is_nothing_to_train(trained):
    """--resume on a finished run: one line says why nothing trains and how to go on, and
    the model directory is left as it is (a link `checkpoint link` made stays a link)."""
    weights = trained / "model.safetensors"
    before = (os.path.islink(weights), os.lstat(weights).st_mtime_ns)
    result = run_cli(*small_run(trained), "--resume", cwd=REPO_ROOT)
    assert result.rc == 0, result.err
    (run,) = (trained / "runs").iterdir()
    assert f"forgather: resuming run {run.name} from checkpoint-4\n" in result.err
    assert (
        f"forgather: run {run.name} already reached step 4 = max_steps; nothing to train "
        f"(raise --max-steps to continue); the final model in {trained} is left as it is\n"
    ) in result.err
    assert (os.path.islink(weights), os.lstat(weights).st_mtime_ns) == before
