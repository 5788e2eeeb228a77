"""``forgather convert`` and ``forgather update-vocab`` in subprocesses, on a tiny local Llama."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.cli.conftest import run_cli
from tests.ml.model_conversion.tiny_models import save_tiny


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(HF source, Forgather result, CLI output) of `forgather convert` with a generation test."""
    root = tmp_path_factory.mktemp("convert")
    src = save_tiny("llama_llama3_rope_gqa", root / "hf")
    result = run_cli("convert", str(src), str(root / "fg"), "--dtype", "float32", "-g")
    assert result.rc == 0, result.err
    return src, root / "fg", result.out


def test_convert_both_ways(converted, tmp_path):
    src, fg, out = converted
    print(out)
    assert "Hugging Face -> Forgather (llama, float32): logits match, max abs diff" in out
    assert "source:" in out and "converted:" in out  # the generation test ran
    assert json.loads((fg / "config.json").read_text())["hf_model_type"] == "llama"
    assert (fg / "tokenizer.json").is_file()
    umask = os.umask(0o022)
    os.umask(umask)
    assert fg.stat().st_mode & 0o777 == 0o777 & ~umask  # as readable as any new directory

    back = run_cli("convert", str(fg), str(tmp_path / "back"))  # direction detected
    assert back.rc == 0, back.err
    print(back.out)
    assert "Forgather -> Hugging Face (llama, float32): logits match" in back.out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    assert type(model).__name__ == "LlamaForCausalLM"
    ids = torch.tensor([[1, 4, 7, 9]])
    reference = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, atol=1e-5, rtol=0)


def test_converted_directory_loads_and_generates_without_forgather(converted, tmp_path):
    _, fg, _ = converted
    script = textwrap.dedent(f"""
        import sys
        sys.modules["forgather"] = None  # any `import forgather` now raises ImportError
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(fg)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(fg)!r})
        ids = tokenizer("the old bookstore", return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
        print("generated", tuple(out.shape), type(model).__name__)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generated (1, 7) ForgatherFgForCausalLM" in done.stdout


def test_a_broken_conversion_exits_nonzero_and_writes_nothing(
    converted, tmp_path, monkeypatch, capsys
):
    src, _, _ = converted
    from forgather.cli import main
    from forgather.ml.model_conversion import convert

    # The real command, with the weight mapping sabotaged: layer 0 gets layer 1's MLP.
    original = convert.convert_llama_state_dict

    def swapped(state):
        state = original(state)
        key = "model.layers.{}.mlp.down_proj.weight"
        state[key.format(0)], state[key.format(1)] = state[key.format(1)], state[key.format(0)]
        return state

    monkeypatch.setattr(convert, "convert_llama_state_dict", swapped)
    assert main(["convert", str(src), str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err
    print(err)
    assert "logits differ" in err and "max abs diff" in err
    assert list(tmp_path.iterdir()) == []  # neither the result nor its staging directory


def test_update_vocab(converted, tmp_path, capsys):
    _, fg, _ = converted
    from forgather.cli import main

    out = tmp_path / "chat"
    args = ["update-vocab", str(fg), str(out), "--pad-token", "<pad>"]
    assert main([*args, "--special-token", "<|im_start|>", "--token", "bookshop"]) == 0
    print(capsys.readouterr().out)
    before = AutoModelForCausalLM.from_pretrained(fg, trust_remote_code=True)
    after = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    config = json.loads((out / "config.json").read_text())
    pad, shop = tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("bookshop")
    assert config["pad_token_id"] == pad and tokenizer.pad_token == "<pad>"
    assert config["vocab_size"] == max(before.config.vocab_size, len(tokenizer))
    embed, head = after.get_input_embeddings().weight, after.lm_head.weight
    assert embed[pad].abs().max() == 0 and head[pad].abs().max() == 0  # pad: zero
    mean_row = before.get_input_embeddings().weight.mean(dim=0)
    torch.testing.assert_close(embed[shop], mean_row)  # others: the mean row
    old = [i for i in range(before.config.vocab_size) if i not in (pad, shop, pad + 1)]
    ids = torch.tensor([[1, 4, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(after(ids).logits[..., old], before(ids).logits[..., old])
    assert (out / "causal_lm.py").is_file()  # still a complete Forgather directory


def test_a_token_spec_with_a_bare_string_is_refused(converted, tmp_path):
    # `special_tokens: "<|a|>"` would otherwise add each character as a special token.
    _, fg, _ = converted
    spec = tmp_path / "tokens.yaml"
    spec.write_text('special_tokens: "<|a|>"\n')
    out = tmp_path / "out"
    result = run_cli("update-vocab", "--add-tokens", str(spec), str(fg), str(out))
    assert result.rc == 1
    assert "special_tokens must be a list of non-empty strings, got '<|a|>'" in result.err
    assert not out.exists()
    empty = run_cli("update-vocab", "--eos-token", "", str(fg), str(out))
    assert empty.rc == 1 and "--eos-token: an empty string is no token" in empty.err
    assert not out.exists()


def test_reverse_on_a_hugging_face_model_and_a_corrupt_config_are_one_line_errors(
    converted, tmp_path
):
    src, _, _ = converted
    reverse = run_cli("convert", str(src), str(tmp_path / "x"), "--reverse")
    assert reverse.rc == 1
    assert f"--reverse converts a Forgather model to Hugging Face, but {src} is a Hugging Face " \
        "model ('llama')" in reverse.err  # fmt: skip
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": ')
    result = run_cli("convert", str(broken), str(tmp_path / "y"))
    assert result.rc == 1
    assert result.err.startswith(f"forgather: error: {broken / 'config.json'} is not valid JSON")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_t_after_convert_is_the_chat_template_and_config_options_are_refused(
    converted, tmp_path, capsys
):
    """The original's `convert ... -t FILE`; before the command -t names a config, which
    convert never reads: an error, not a conversion without the template."""
    src, fg, _ = converted
    from forgather.cli import main

    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    out = tmp_path / "with_template"
    assert main(["convert", str(src), str(out), "--dtype", "float32", "-t", str(template)]) == 0
    assert AutoTokenizer.from_pretrained(out).chat_template == template.read_text()
    capsys.readouterr()

    dropped = run_cli("-t", str(template), "convert", str(src), str(tmp_path / "no"))
    assert dropped.rc == 1 and "convert reads no config: -t has no effect here" in dropped.err
    assert "convert SRC DST -t FILE" in dropped.err
    defines = run_cli("-D", "x=1", "update-vocab", str(fg), str(tmp_path / "no"), "--dry-run")
    assert defines.rc == 1 and "update-vocab reads no config: -D has no effect here" in defines.err
    after = run_cli("update-vocab", str(fg), str(tmp_path / "no"), "-p", "proj", "--dry-run")
    assert after.rc == 2 and "unrecognized arguments: -p proj" in after.err
    assert not (tmp_path / "no").exists()
