"""Chat data: rendering with a chat template, assistant-only labels checked token by
token, whole conversations packed, the shipped data and template, and blocks_view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgather.config import ConfigEnvironment
from forgather.ml.data import (
    IGNORE_INDEX,
    SIMPLE_CHAT_TEMPLATE,
    CausalLMCollator,
    ChatDataset,
    ChatFiles,
    DataError,
    blocks_view,
    default_chat_template,
    load_chat_splits,
    render_conversation,
    train_tokenizer,
    with_chat_template,
)
from forgather.project import templatelib_searchdirs

CHAT_DIR = Path(__file__).parents[3] / "examples" / "data" / "chat"


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A 400-token BPE trained on the shipped conversations, with the default template."""
    texts = [d.text for d in ChatFiles(CHAT_DIR / "conversations.jsonl").documents()]
    return with_chat_template(train_tokenizer(texts, vocab_size=400))


def trained_text(tokenizer, ids, labels) -> list[str]:
    """Decoded runs of tokens whose label is set."""
    runs, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token  # a label is the token itself (the model shifts)
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_shipped_template_file_renders_like_the_simple_template(chat_tokenizer):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    ours = chat_tokenizer.apply_chat_template(messages, tokenize=False)
    chat_tokenizer.chat_template = SIMPLE_CHAT_TEMPLATE
    try:
        assert chat_tokenizer.apply_chat_template(messages, tokenize=False) == ours
    finally:
        chat_tokenizer.chat_template = default_chat_template()
    assert ours == "<|bos|><|user|>\nhi<|eos|>\n<|assistant|>\nhello<|eos|>\n"


def test_only_assistant_tokens_have_labels(chat_tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
        {"role": "user", "content": "Spell 'kiln' backwards."},
        {"role": "assistant", "content": "'kiln' backwards is 'nlik'."},
    ]
    ids, assistant = render_conversation(chat_tokenizer, messages)
    # The pieces decode back to exactly the rendered conversation (whitespace and all).
    assert chat_tokenizer.decode(ids.tolist()) == chat_tokenizer.apply_chat_template(
        messages, tokenize=False
    )
    labels = [int(t) if a else IGNORE_INDEX for t, a in zip(ids, assistant, strict=True)]
    assert trained_text(chat_tokenizer, ids.tolist(), labels) == [
        "2 + 3 = 5.<|eos|>",
        "'kiln' backwards is 'nlik'.<|eos|>",
    ]
    # Token by token: each trained token lies inside an assistant answer, none in a prompt.
    for token, is_assistant in zip(ids.tolist(), assistant.tolist(), strict=True):
        piece = chat_tokenizer.decode([token])
        if piece in ("<|user|>", "<|system|>", "<|assistant|>", "<|bos|>"):
            assert not is_assistant


def test_prompt_completion_pairs_and_bad_lines(tmp_path, chat_tokenizer):
    (tmp_path / "p.jsonl").write_text(
        json.dumps({"prompt": "Say yes.", "completion": "Yes.", "system": "Obey."}) + "\n"
    )
    (conv,) = ChatFiles(tmp_path / "p.jsonl").conversations()
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant"]
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n"
    )
    with pytest.raises(DataError, match=r"bad.jsonl:1: no assistant message"):
        list(ChatFiles(tmp_path / "bad.jsonl").conversations())


def test_packing_keeps_conversations_whole_and_restarts_positions(chat_tokenizer):
    source = ChatFiles(CHAT_DIR)
    splits = load_chat_splits(source, chat_tokenizer, validation_fraction=0.1)
    assert len(splits["train"]) + len(splits["validation"]) == 200  # both shipped files
    assert len(splits["validation"]) == 20
    assert not set(splits["train"].names) & set(splits["validation"].names)
    train = ChatDataset(splits["train"], block_size=256)
    assert train.truncated == 0
    seen = []
    for i in range(len(train)):
        item = train[i]
        assert len(item["input_ids"]) <= 256
        starts = (item["position_ids"] == 0).nonzero().flatten().tolist()
        assert len(starts) == len(train.examples[i])  # one restart per conversation
        bounds = starts + [len(item["input_ids"])]
        for k, conv in enumerate(train.examples[i]):
            piece = item["input_ids"][bounds[k] : bounds[k + 1]].numpy()
            assert (piece == splits["train"].input_ids[conv]).all()  # whole, unchanged
        seen += train.examples[i]
    assert sorted(seen) == list(range(len(splits["train"])))
    batch = CausalLMCollator(chat_tokenizer.pad_token_id)([train[0], train[1]])
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    runs = trained_text(chat_tokenizer, batch["input_ids"][0].tolist(), batch["labels"][0].tolist())
    assert runs and all(r.endswith("<|eos|>") and "<|user|>" not in r for r in runs)

    view = blocks_view(train, CausalLMCollator(chat_tokenizer.pad_token_id), chat_tokenizer, 1)
    assert f"block 0: {len(train[0]['input_ids'])} tokens" in view
    assert f"{len(train.examples[0])} document start(s)" in view
    assert "⟦" in view and "# Boundaries over the first" in view


def test_chat_dataset_template_with_the_shipped_data():
    env = ConfigEnvironment(searchpath=templatelib_searchdirs())
    cfg = env.load(
        "chat_dataset.yaml",
        data_path=str(CHAT_DIR / "conversations.jsonl"),
        block_size=256,
        tokenizer_vocab_size=400,
    )
    built = cfg.build()
    assert built["tokenizer"].chat_template == default_chat_template()
    train = built["main"]["train"]
    assert isinstance(train, ChatDataset) and len(built["splits"]["validation"]) == 16
    batch = built["data_collator"]([train[0]])
    assert (batch["labels"] != IGNORE_INDEX).sum() < batch["attention_mask"].sum()


def test_blocks_view_of_packed_text(small_source, small_tokenizer):
    from forgather.ml.data import PackedDataset, load_splits

    splits = load_splits(small_source, small_tokenizer, 0.1)
    train = PackedDataset(splits["train"], block_size=256)
    view = blocks_view(train, CausalLMCollator(0), small_tokenizer, num_blocks=2, summary_blocks=50)
    assert "PackedDataset (block_size=256)" in view
    assert "=== block 1: 256 tokens" in view
    assert "# Boundaries over the first 50 block(s)" in view
    starts = sum(len([s for s in train.segments(i) if s[1] == 0]) for i in range(2))
    assert starts >= 0 and "document 1" in view
