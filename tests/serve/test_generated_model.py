"""Forgather-generated models (the shipped Llama, GPT-2 and DeepNet presets and
an ALiBi variant, at test size, loaded back through transformers' remote code)
served like any other: concurrent greedy completions equal ``model.generate()``
with its KV cache, which equals ``generate()`` without a cache. So the padding
mask, positions and cache work in a continuously changing batch, and whatever
keyword the installed transformers passes the cache under reaches the model
(transformers 5.24 renamed it, and a model that dropped it generated garbage)."""

from __future__ import annotations

import asyncio

import openai
import pytest
import torch

from forgather.serve import ServerThread, load_for_serving, segmented_attention, wrap_model
from tests.serve.conftest import greedy_reference, uncached_greedy
from tests.serve.tiny_model import train_tokenizer

SIZES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_hidden_layers": 2,
    "max_position_embeddings": 512,
    "initializer_range": 0.2,  # peaked logits (see tiny_model.build_tiny_llama)
}


ALIBI = """\
-- extends "llama_4m.yaml"
[relative_positions]
                alibi: !call:.alibi:ALiBi@alibi
                    num_heads: !var num_attention_heads
"""

#: name -> (template, template text or None, sizes that differ from SIZES)
PRESETS = {
    "llama": ("llama_4m.yaml", None, {}),
    "gpt2": ("gpt2_4m.yaml", None, {"num_key_value_heads": 4}),
    "deepnet": ("deepnet.yaml", None, {"num_key_value_heads": 4}),
    "alibi": ("", ALIBI, {}),
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(512)


@pytest.fixture(scope="module", params=sorted(PRESETS))
def generated_model_dir(request, tmp_path_factory, tokenizer) -> str:
    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs

    template, text, sizes = PRESETS[request.param]
    out = str(tmp_path_factory.mktemp("generated") / f"gen_{request.param}")
    env = ConfigEnvironment(templatelib_searchdirs())
    if text is None:
        config = env.load(template, output_dir=out)
    else:
        config = env.load_from_string(text, output_dir=out)
    for key, value in {"vocab_size": len(tokenizer), **SIZES, **sizes}.items():
        config.set_value(f"model.hyperparameters.{key}", value)
    torch.manual_seed(0)
    config.build("model").save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_generated_model_serves_concurrent_greedy_equal_to_generate(generated_model_dir):
    model, tokenizer = load_for_serving(generated_model_dir)
    assert type(model).__module__.startswith("transformers_modules.")  # the generated code
    text = "def function(argument):\n    return argument + 1\n"
    prompts = [text[: 3 + 6 * i] for i in range(8)]
    prompt_ids = [tokenizer(p)["input_ids"] for p in prompts]
    expected = [greedy_reference(model, tokenizer, ids, 16)[0] for ids in prompt_ids]
    assert expected == [uncached_greedy(model, tokenizer, ids, 16)[0] for ids in prompt_ids]
    assert len(set(expected)) > 1  # the prompts lead to different continuations

    async def ask_all(url: str) -> list[str]:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
        responses = await asyncio.gather(
            *(
                client.completions.create(prompt=p, model="gen_llama", max_tokens=16, temperature=0)
                for p in prompts
            )
        )
        await client.close()
        return [r.choices[0].text for r in responses]

    with ServerThread(wrap_model(model, tokenizer, "gen_llama", max_batch_size=4)) as server:
        # Decode attention runs per group of similar-length rows (segmented_attention.py).
        assert model.config._attn_implementation == segmented_attention.NAME
        assert asyncio.run(ask_all(server.url)) == expected


def test_generated_model_decodes_rows_of_very_different_lengths_in_groups(generated_model_dir):
    """The grouped decode attention (rows sorted, each group reading its own columns)
    runs on generated models too, and every output is still generate()'s."""
    from tests.serve.test_segmented_attention import (
        test_scheduler_with_rows_of_very_different_lengths_equals_generate as check,
    )

    check(load_for_serving(generated_model_dir))
