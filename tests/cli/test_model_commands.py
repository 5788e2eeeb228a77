"""``forgather model construct|test`` on the example model project, in a subprocess."""

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
