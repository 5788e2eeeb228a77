"""A Forgather-generated model (``templatelib/models/llama_4m.yaml`` at test size,
loaded back through transformers' remote code) served like any other: concurrent
greedy completions equal ``model.generate()``, so its padding mask, positions and
KV cache work in a continuously changing batch."""

from __future__ import annotations

import asyncio

import openai
import pytest
import torch

from forgather.serve import ServerThread, load_for_serving, wrap_model
from tests.serve.conftest import greedy_reference
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


@pytest.fixture(scope="module")
def generated_model_dir(tmp_path_factory) -> str:
    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs

    out = str(tmp_path_factory.mktemp("generated") / "gen_llama")
    tokenizer = train_tokenizer(512)
    config = ConfigEnvironment(templatelib_searchdirs()).load("llama_4m.yaml", output_dir=out)
    for key, value in {"vocab_size": len(tokenizer), **SIZES}.items():
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
    expected = [
        greedy_reference(model, tokenizer, tokenizer(p)["input_ids"], 16)[0] for p in prompts
    ]

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
        assert asyncio.run(ask_all(server.url)) == expected
