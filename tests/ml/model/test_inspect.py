"""What `forgather model construct` and `model test` report."""

from __future__ import annotations

from forgather.ml.model import describe_model, parameter_counts, run_model_test

from .conftest import build_template, template_env


def test_describe_a_meta_model(tmp_path):
    cfg = template_env().load("llama_4m.yaml", output_dir=str(tmp_path / "llama"))
    model = cfg.build("model", device="meta")
    report = describe_model(model, max_depth=2)
    assert '"hidden_size": 256' in report
    assert "├─ model: ForgatherLlama4mModel  3.93M" in report
    assert report.endswith(
        "Parameters: 4.46M total (4,458,752), 3.93M excluding embeddings, 4.46M trainable; "
        "meta, torch.float32"
    )
    assert parameter_counts(model)["embedding"] == 2048 * 256


def test_model_test_prints_losses_and_shapes(tmp_path):
    model = build_template("gpt2_4m.yaml", tmp_path / "gpt2", vocab_size=64, num_hidden_layers=1)
    lines = []
    losses = run_model_test(model, steps=2, batch_size=3, seq_len=8, print_fn=lines.append)
    assert len(losses) == 2 and losses[1] < losses[0]
    assert lines[1] == "ln(vocab_size) = 4.159; lr 0.001"
    assert lines[2].startswith(
        f"step 1: loss {losses[0]:.4f}, input_ids (3, 8), 3 documents, logits not kept, "
    )
