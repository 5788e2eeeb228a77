"""Generated models behave as transformers models must: caching, kernels, padding, packing."""

from __future__ import annotations

import pytest
import torch

VOCAB = 96  # conftest.TINY


def tokens(*shape, seed=0):
    return torch.randint(3, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def logits(model, impl, **inputs):
    model.set_attn_implementation(impl)
    with torch.no_grad():
        return model(**inputs).logits


def test_greedy_generate_is_the_same_with_and_without_cache(any_model):
    prompt = tokens(2, 5)
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    with_cache = any_model.generate(prompt, use_cache=True, **kwargs)
    without = any_model.generate(prompt, use_cache=False, **kwargs)
    assert with_cache.shape == (2, 13)
    assert torch.equal(with_cache, without)


def test_eager_and_sdpa_give_the_same_logits(any_model):
    ids = tokens(2, 12)
    torch.testing.assert_close(
        logits(any_model, "eager", input_ids=ids), logits(any_model, "sdpa", input_ids=ids)
    )


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_rows_equal_unpadded_rows(any_model, impl, side):
    rows = [tokens(1, 9, seed=1)[0], tokens(1, 5, seed=2)[0]]
    width = 9
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span], mask[i, span] = row, 1
    batch = logits(any_model, impl, input_ids=ids, attention_mask=mask)
    for i, row in enumerate(rows):
        alone = logits(any_model, impl, input_ids=row[None])[0]
        real = mask[i].bool()
        torch.testing.assert_close(batch[i][real], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_packed_documents_equal_separate_documents(any_model, impl):
    docs = [tokens(1, 4, seed=3)[0], tokens(1, 6, seed=4)[0], tokens(1, 3, seed=5)[0]]
    ids = torch.cat(docs)[None]
    position_ids = torch.cat([torch.arange(len(d)) for d in docs])[None]
    packed = logits(any_model, impl, input_ids=ids, position_ids=position_ids)[0]
    separate = torch.cat([logits(any_model, impl, input_ids=d[None])[0] for d in docs])
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=1e-5)


def test_padded_packed_batch_as_the_data_collator_makes_it(llama):
    # Right-padded rows of packed documents; positions restart per document and are 0 on padding.
    docs = [tokens(1, 4, seed=8)[0], tokens(1, 3, seed=9)[0], tokens(1, 5, seed=10)[0]]
    ids = torch.zeros(2, 8, dtype=torch.long)
    ids[0, :7], ids[1, :5] = torch.cat(docs[:2]), docs[2]
    position_ids = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0], [0, 1, 2, 3, 4, 0, 0, 0]])
    mask = torch.tensor([[1] * 7 + [0], [1] * 5 + [0] * 3])
    for impl in ("eager", "sdpa"):
        batch = logits(llama, impl, input_ids=ids, attention_mask=mask, position_ids=position_ids)
        alone = [logits(llama, impl, input_ids=d[None])[0] for d in docs]
        torch.testing.assert_close(batch[0, :7], torch.cat(alone[:2]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch[1, :5], alone[2], atol=1e-5, rtol=1e-5)
        flat = logits(
            llama, impl, input_ids=ids[:1], position_ids=position_ids[0]
        )  # (T,) positions
        torch.testing.assert_close(flat[0, :7], batch[0, :7], atol=1e-5, rtol=1e-5)


def test_left_padded_generation_matches_unpadded(llama):
    long, short = tokens(1, 6, seed=6), tokens(1, 3, seed=7)
    ids = torch.cat([long, torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1)])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    batch = llama.generate(ids, attention_mask=mask, **kwargs)
    alone = llama.generate(short, **kwargs)
    assert torch.equal(batch[1, 6:], alone[0, 3:])


def test_inputs_embeds_equal_input_ids(gpt2):
    ids = tokens(2, 7)
    embeds = gpt2.get_input_embeddings()(ids)
    with torch.no_grad():
        torch.testing.assert_close(gpt2(inputs_embeds=embeds).logits, gpt2(input_ids=ids).logits)


def test_activation_checkpointing_gives_the_same_gradients(llama):
    ids = tokens(2, 10)

    def grads():
        llama.zero_grad()
        llama(input_ids=ids, labels=ids).loss.backward()
        return [p.grad.clone() for p in llama.parameters()]

    # transformers 5.2x renamed gradient_checkpointing_* to activation_checkpointing_*.
    enable = (
        getattr(llama, "activation_checkpointing_enable", None)
        or llama.gradient_checkpointing_enable
    )
    disable = (
        getattr(llama, "activation_checkpointing_disable", None)
        or llama.gradient_checkpointing_disable
    )
    llama.train()
    try:
        plain = grads()
        enable()
        assert llama.model.gradient_checkpointing
        checkpointed = grads()
    finally:
        disable()
        llama.eval()
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b)


def test_logits_to_keep_and_tuple_outputs(llama):
    ids = tokens(1, 6)
    with torch.no_grad():
        full = llama(input_ids=ids).logits
        last = llama(input_ids=ids, logits_to_keep=1).logits
        as_tuple = llama(input_ids=ids, return_dict=False, use_cache=False)
        hidden = llama.model(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(last, full[:, -1:])
    torch.testing.assert_close(as_tuple[0], full)
    assert len(hidden) == llama.config.num_hidden_layers + 1


def test_an_implementation_registered_with_the_sdpa_mask_gets_sdpa_masks(any_model):
    """A server's own kernel (registered under its own name with transformers' sdpa mask
    function) sees the masks sdpa would, so padded batches stay right."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    masks = []

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        masks.append(attention_mask)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("test_recording_sdpa", recording_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register("test_recording_sdpa", sdpa_mask)
    ids = tokens(2, 9, seed=6)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :4] = 0  # a left-padded row
    try:
        got = logits(any_model, "test_recording_sdpa", input_ids=ids, attention_mask=mask)
    finally:
        any_model.set_attn_implementation("sdpa")
    want = logits(any_model, "sdpa", input_ids=ids, attention_mask=mask)
    assert masks and all(m is not None for m in masks)
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real])
