"""The two halves of ``scripts/test_vllm.sh``: make tiny models, then check vLLM's answers.

    .venv/bin/python scripts/vllm_check.py prepare OUT_DIR
    .venv/bin/python scripts/vllm_check.py compare OUT_DIR/tiny_llama http://127.0.0.1:8000

``prepare`` (in the project's venv) writes two models with head_dim 64 (what
vLLM's CPU attention needs), 2 heads and 2 layers (so TP=2 and PP=2 split
them): ``tiny_llama``, a plain transformers ``LlamaForCausalLM`` that vLLM runs
with its own implementation, and ``gen_llama``, a Forgather-generated model
(``templatelib/models/llama_4m.yaml`` at this size) that vLLM runs through its
Transformers backend with ``trust_remote_code``. Each directory gets
``expected.json``: greedy completions computed by recomputing the whole
sequence at every step, a reference that does not depend on any KV-cache path
(``prepare`` fails if transformers ``generate()`` with its cache disagrees,
which is a bug in the model code, not in vLLM).
``compare`` asks a running server for the same completions and exits 1 on any
difference.

Decision a reader may question: the reference is computed here, in the
project's venv, not in the vLLM venv, so the check compares vLLM against the
transformers version the models were generated and tested with; the vLLM
venv only runs ``vllm serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["def fibonacci(n):", "import os\nimport sys\n", "class Stack:\n    def push(self, x):"]
MAX_TOKENS = 24
SIZES = {  # head_dim = hidden / heads = 64
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "num_hidden_layers": 2,
    "max_position_embeddings": 512,
    "initializer_range": 0.2,  # peaked logits, so float differences cannot flip an argmax
}


def _write_expected(model_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    from tests.serve.conftest import greedy_reference, uncached_greedy

    expected = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        reference, _ = uncached_greedy(model, tokenizer, ids, MAX_TOKENS)
        cached, _ = greedy_reference(model, tokenizer, ids, MAX_TOKENS)
        if cached != reference:
            raise SystemExit(
                f"{model_dir}: generate() with a KV cache gives {cached!r} but recomputing "
                f"the sequence gives {reference!r} for {prompt!r}; fix the model before vLLM"
            )
        expected.append(reference)
    with open(os.path.join(model_dir, "expected.json"), "w") as f:
        json.dump({"prompts": PROMPTS, "max_tokens": MAX_TOKENS, "completions": expected}, f)


def prepare(out_dir: str) -> None:
    """Write ``tiny_llama`` and ``gen_llama`` with their expected completions."""
    import torch

    sys.path.insert(0, str(REPO))
    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs
    from tests.serve.tiny_model import build_tiny_llama, train_tokenizer

    plain = os.path.join(out_dir, "tiny_llama")
    build_tiny_llama(
        plain,
        hidden=SIZES["hidden_size"],
        layers=SIZES["num_hidden_layers"],
        heads=SIZES["num_attention_heads"],
        ffn=SIZES["intermediate_size"],
        context=SIZES["max_position_embeddings"],
    )
    generated = os.path.join(out_dir, "gen_llama")
    tokenizer = train_tokenizer(512)
    config = ConfigEnvironment(templatelib_searchdirs()).load("llama_4m.yaml", output_dir=generated)
    for key, value in {"vocab_size": len(tokenizer), **SIZES}.items():
        config.set_value(f"model.hyperparameters.{key}", value)
    torch.manual_seed(0)
    config.build("model").save_pretrained(generated)
    tokenizer.save_pretrained(generated)
    for model_dir in (plain, generated):
        _write_expected(model_dir)
        print(f"prepared {model_dir}")


def compare(model_dir: str, url: str) -> int:
    """Greedy completions from the server at ``url`` against ``expected.json``; 0 if equal."""
    import openai

    with open(os.path.join(model_dir, "expected.json")) as f:
        expected = json.load(f)
    client = openai.OpenAI(base_url=url.rstrip("/") + "/v1", api_key="-", max_retries=0)
    model = client.models.list().data[0].id
    failures = 0
    for prompt, want in zip(expected["prompts"], expected["completions"], strict=True):
        got = client.completions.create(
            model=model, prompt=prompt, max_tokens=expected["max_tokens"], temperature=0
        )
        text = got.choices[0].text
        status = "ok  " if text == want else "DIFF"
        failures += text != want
        print(f"{status} {prompt!r}: server {text!r}" + ("" if text == want else f" != {want!r}"))
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").add_argument("out_dir")
    check = sub.add_parser("compare")
    check.add_argument("model_dir")
    check.add_argument("url")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "prepare":
        prepare(args.out_dir)
        return 0
    return compare(args.model_dir, args.url)


if __name__ == "__main__":
    sys.exit(main())
