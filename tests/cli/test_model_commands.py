"""``forgather model construct|test`` on the example model project, in a subprocess."""

import pytest

from tests.cli.conftest import EXAMPLES, run_cli

MODELS = str(EXAMPLES / "models")


def test_construct_a_7b_definition_on_the_meta_device(tmp_path):
    result = run_cli(
        "-p",
        MODELS,
        "-t",
        "llama_7b.yaml",
        "-D",
        f"output_dir={tmp_path}",
        "model",
        "construct",
        "--device",
        "meta",
    )
    assert result.rc == 0, result.err
    assert "Parameters: 6.74B total" in result.out and "meta" in result.out


def test_model_test_trains_a_few_steps(tmp_path):
    result = run_cli(
        "-p",
        MODELS,
        "-t",
        "tiny_llama.yaml",
        "-D",
        f"output_dir={tmp_path}",
        "model",
        "test",
        "--steps",
        "2",
    )
    assert result.rc == 0, result.err
    assert result.out.count("loss") >= 2
    assert (tmp_path / "config.json").is_file()


def test_model_command_needs_a_model_target():
    result = run_cli("-p", str(EXAMPLES / "template_project"), "model", "construct")
    assert result.rc == 1 and "no 'model' target" in result.err


def test_construct_calls_a_model_constructor_and_builds_only_the_model_targets(tmp_path):
    # The original's model projects: `model` is a !partial constructor the command calls, and
    # other targets (here one that cannot be built at all) are left alone.
    config = tmp_path / "ctor.yaml"
    config.write_text(
        "model_factory: !call:operator:truediv [1, 0]\n"
        "pretrained_config: {hidden: 8}\n"
        "model: !partial:torch.nn:Linear [8, 4]\n"
    )
    result = run_cli("-p", MODELS, "-t", str(config), "model", "--device", "cpu", "construct")
    assert result.rc == 0, result.err
    assert "Linear  36 parameters" in result.out
    assert "Parameters: 36 total (36)" in result.out


def test_model_test_reads_a_tuple_output():
    import torch

    from forgather.ml.model.inspect import _loss_and_logits

    loss, logits = torch.tensor(1.0), torch.zeros(1, 2, 3)
    assert _loss_and_logits((loss, logits)) == (loss, logits)
    assert _loss_and_logits((loss,)) == (loss, None)


def test_model_test_on_a_training_projects_data_and_on_one_without_data(tmp_path):
    model = ["-p", MODELS, "-t", "tiny_llama.yaml", "-D", f"output_dir={tmp_path}", "model"]
    trained = run_cli(*model, "test", "--steps", "1",
                      "--dataset-project", str(EXAMPLES / "tutorials" / "tiny_llama"))  # fmt: skip
    assert trained.rc == 0, trained.err  # the training config's own train_dataset
    assert "step 1: loss " in trained.out
    no_data = run_cli(*model, "test", "--steps", "1",
                      "--dataset-project", str(EXAMPLES / "tutorials" / "project_composition"))  # fmt: skip
    assert no_data.rc == 1
    assert "main target gives examples without input_ids (the first: str)" in no_data.err


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--batch-size", "0", "must be at least 1, got 0"),
        ("--steps", "-1", "must be at least 1, got -1"),
        ("--seq-len", "1", "must be at least 2, got 1"),
        ("--lr", "nan", "must be a finite number, 0 or more"),
    ],
)
def test_model_test_refuses_values_it_cannot_run(option, value, message):
    result = run_cli("-p", MODELS, "-t", "tiny_llama.yaml", "model", "test", option, value)
    assert result.rc == 2 and message in result.err


def test_model_dtype_is_checked_against_the_servers_names(tmp_path):
    """An unknown --dtype is a usage error listing the names (it was an AttributeError from
    deep in the build); the names are inf server's, aliases included."""
    model = ["-p", MODELS, "-t", "tiny_llama.yaml", "-D", f"output_dir={tmp_path}", "model"]
    wrong = run_cli(*model, "--dtype", "bfloat17", "construct")
    assert (wrong.rc, wrong.err) == (
        2,
        "forgather: error: --dtype: unknown dtype 'bfloat17'; choose from bf16, bfloat16, "
        "double, float16, float32, float64, fp16, fp32, fp64, half\n",
    )
    assert not (tmp_path / "config.json").exists()  # refused before anything was built
    server = run_cli("inf", "server", "-m", str(tmp_path), "-T", "bfloat17")
    assert server.rc == 2
    assert "-T/--dtype: unknown dtype 'bfloat17'; choose from auto, bf16, bfloat16," in server.err
    alias = run_cli(*model, "--dtype", "bf16", "construct")
    assert alias.rc == 0, alias.err
    assert "torch.bfloat16" in alias.out
