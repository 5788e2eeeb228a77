"""Tokenizer training, round trip, special tokens, saving, caching."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forgather.ml.data.tokenizer import (
    SIMPLE_CHAT_TEMPLATE,
    SpecialTokens,
    load_or_train_tokenizer,
    load_tokenizer,
    tokenizer_fingerprint,
    train_tokenizer,
)


def test_round_trip_on_every_document_of_the_sample(small_tokenizer, small_source):
    docs = [d.text for d in small_source.documents()]
    assert len(docs) > 20
    for text in docs:
        ids = small_tokenizer(text)["input_ids"]
        assert small_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_round_trip_keeps_whitespace_and_non_ascii(small_tokenizer):
    text = "\tdef f():\r\n    return 'naïve café ☃ 日本'  ,  x\n\n\n"
    ids = small_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert small_tokenizer.decode(ids) == text


def test_special_tokens_have_the_first_ids_and_bos_is_prepended(small_tokenizer):
    assert [small_tokenizer.bos_token_id, small_tokenizer.eos_token_id] == [0, 1]
    assert [small_tokenizer.pad_token_id, small_tokenizer.unk_token_id] == [2, 3]
    assert small_tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == SpecialTokens().as_list()
    assert len(small_tokenizer) == 512
    assert small_tokenizer("x = 1")["input_ids"][0] == small_tokenizer.bos_token_id


def test_custom_special_tokens_and_chat_template():
    special = SpecialTokens(bos="[BOS]", eos="[EOS]", pad="[PAD]", unk="[UNK]")
    tok = train_tokenizer(
        ["hello world\n" * 50],
        vocab_size=300,
        special_tokens=special,
        chat_template=SIMPLE_CHAT_TEMPLATE,
    )
    assert tok.bos_token == "[BOS]" and tok.eos_token_id == 1
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "[BOS]<|user|>\nhi[EOS]\n<|assistant|>\n"


def test_too_small_vocabulary_is_refused():
    with pytest.raises(ValueError, match="256 byte symbols"):
        train_tokenizer(["abc"], vocab_size=100)


def test_saved_tokenizer_loads_with_autotokenizer_without_forgather(small_tokenizer, tmp_path):
    small_tokenizer.save_pretrained(tmp_path / "tok")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["forgather"] = None  # any `import forgather` now fails
        try:
            import forgather
        except ImportError:
            pass
        else:
            raise SystemExit("forgather was importable")
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(tmp_path / "tok")!r})
        text = "for i in range(3):\\n    print(i)\\n"
        ids = tok(text)["input_ids"]
        print(ids[0], tok.decode(ids, skip_special_tokens=True) == text, tok.eos_token, len(tok))
        """
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "<|eos|>", "512"]


def test_load_or_train_trains_once_then_loads_from_cache(small_source, caplog):
    caplog.set_level(logging.INFO, logger="forgather.ml.data")
    first = load_or_train_tokenizer(small_source, vocab_size=400)
    second = load_or_train_tokenizer(small_source, vocab_size=400)
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("trained tokenizer") for m in messages) == 1
    assert sum(m.startswith("loaded cached tokenizer") for m in messages) == 1
    assert tokenizer_fingerprint(first) == tokenizer_fingerprint(second)
    params = json.loads((Path(second.name_or_path) / "forgather_params.json").read_text())
    assert params["vocab_size"] == 400
    assert len(load_tokenizer(second.name_or_path)) == 400

    other = load_or_train_tokenizer(small_source, vocab_size=420)
    assert len(other) == 420
    assert other.name_or_path != first.name_or_path


def test_load_tokenizer_from_a_generated_model_directory_does_not_ask(
    tmp_path, small_tokenizer, capfd
):
    """A Forgather model directory's config.json names a type only its own code
    knows; transformers asks on the terminal before running it (and on a
    terminal waits for an answer). The loader trusts the directory's code, as
    the model loader does, instead of asking."""
    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs

    out = str(tmp_path / "model")
    config = ConfigEnvironment(templatelib_searchdirs()).load("llama_4m.yaml", output_dir=out)
    sizes = {"vocab_size": len(small_tokenizer), "hidden_size": 32, "intermediate_size": 64,
             "num_attention_heads": 2, "num_key_value_heads": 2, "num_hidden_layers": 1}  # fmt: skip
    for key, value in sizes.items():
        config.set_value(f"model.hyperparameters.{key}", value)
    config.build("model").save_pretrained(out)
    small_tokenizer.save_pretrained(out)
    assert "auto_map" in json.loads((tmp_path / "model" / "config.json").read_text())

    capfd.readouterr()
    loaded = load_tokenizer(out)
    asked = capfd.readouterr()
    assert "custom code" not in asked.out + asked.err
    text = "def f(x):\n    return x"
    assert loaded(text)["input_ids"] == small_tokenizer(text)["input_ids"]


def test_a_tokenizer_path_that_is_not_there_says_so(tmp_path):
    from forgather.ml.data import load_tokenizer

    with pytest.raises(FileNotFoundError, match=f"no tokenizer directory {tmp_path / 'nothere'}"):
        load_tokenizer(tmp_path / "nothere")
