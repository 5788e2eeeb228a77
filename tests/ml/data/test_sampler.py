"""The resumable sampler: order from (seed, epoch), exact resume in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from torch.utils.data import DataLoader

from forgather.ml.data.collator import CausalLMCollator
from forgather.ml.data.packing import PackedDataset
from forgather.ml.data.sampler import ResumableSampler
from forgather.ml.data.split import split_corpus
from forgather.ml.data.tokenization import tokenize_source

from .conftest import SMALL_PACKAGES


def test_order_is_a_function_of_seed_and_epoch():
    a, b = ResumableSampler(50, seed=3), ResumableSampler(50, seed=3)
    first = list(a)
    assert first == list(b) and sorted(first) == list(range(50))
    second = list(a)  # the sampler moved on to epoch 1
    assert second != first and sorted(second) == list(range(50))
    assert second == ResumableSampler(50, seed=3).epoch_indices(1)
    assert list(ResumableSampler(50, seed=4)) != first
    assert list(ResumableSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_ranks_get_disjoint_equal_shares():
    shards = [
        ResumableSampler(10, seed=1, num_replicas=3, rank=r, drop_last=True) for r in range(3)
    ]
    parts = [list(s) for s in shards]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set().union(*parts)) == 9
    padded = [list(ResumableSampler(10, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(p) for p in padded] == [4, 4, 4] and set().union(*padded) == set(range(10))


def test_state_round_trip_mid_epoch_in_process():
    full = ResumableSampler(20, seed=9)
    expected = list(full) + list(full)
    interrupted = ResumableSampler(20, seed=9)
    it = iter(interrupted)
    head = [next(it) for _ in range(7)]
    state = json.loads(json.dumps(interrupted.state_dict()))
    resumed = ResumableSampler(20, seed=9)
    resumed.load_state_dict(state)
    assert head + list(resumed) + list(resumed) == expected


def test_state_for_another_dataset_is_refused():
    state = ResumableSampler(20, seed=9).state_dict()
    with pytest.raises(ValueError, match="cannot resume a sampler over 21 samples"):
        ResumableSampler(21, seed=9).load_state_dict(state)


RESUME_SCRIPT = """
import json, sys
from torch.utils.data import DataLoader
from forgather.ml.data import (CausalLMCollator, PackedDataset, ResumableSampler,
    load_tokenizer, python_stdlib_source, split_corpus, tokenize_source)

tokenizer_dir, state_file, packages = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tokenizer = load_tokenizer(tokenizer_dir)
corpus = tokenize_source(python_stdlib_source(packages=packages), tokenizer)
assert corpus.from_cache, "the parent process filled the cache"
train = PackedDataset(split_corpus(corpus, 0.1)["train"], block_size=256)
sampler = ResumableSampler(train, seed=7)
sampler.load_state_dict(json.load(open(state_file)))
loader = DataLoader(train, batch_size=4, sampler=sampler, collate_fn=CausalLMCollator(tokenizer.pad_token_id))
batches = [b["input_ids"].tolist() for _ in range(2) for b in loader]  # rest of epoch 0, epoch 1
print(json.dumps(batches))
"""


def test_resume_in_a_new_process_continues_exactly(small_source, small_tokenizer, tmp_path):
    small_tokenizer.save_pretrained(tmp_path / "tok")
    corpus = tokenize_source(small_source, small_tokenizer)
    train = PackedDataset(split_corpus(corpus, 0.1)["train"], block_size=256)
    collate = CausalLMCollator(small_tokenizer.pad_token_id)

    def loader(sampler):
        return DataLoader(train, batch_size=4, sampler=sampler, collate_fn=collate)

    uninterrupted_loader = loader(ResumableSampler(train, seed=7))
    uninterrupted = [b["input_ids"].tolist() for _ in range(2) for b in uninterrupted_loader]
    assert len(uninterrupted) > 10

    k = 5
    sampler = ResumableSampler(train, seed=7)
    head = []
    for batch in loader(sampler):
        head.append(batch["input_ids"].tolist())
        if len(head) == k:
            break
    (tmp_path / "state.json").write_text(json.dumps(sampler.state_dict()))

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(RESUME_SCRIPT),
            str(tmp_path / "tok"),
            str(tmp_path / "state.json"),
            json.dumps(SMALL_PACKAGES),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert head + json.loads(result.stdout) == uninterrupted
