"""Chat and instruction data: conversations rendered with a chat template, loss on the
assistant's tokens only, packed without cutting a conversation.

Input is JSON Lines, one conversation per line, either OpenAI-style
``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}`` or a
pair ``{"prompt": ..., "completion": ...}`` (optionally with ``"system"``).

Decision a reader may question: a conversation is tokenized piece by piece (the
prompt up to each assistant turn, then that turn) rather than as one string. The
pieces are found by rendering growing prefixes with ``add_generation_prompt``, which
works with any chat template (no ``{% generation %}`` markers needed), and tokenizing
each piece on its own gives the same token boundary between prompt and answer that
a server sees at inference: it tokenizes the prompt, the model writes the rest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from forgather.ml.data.collator import IGNORE_INDEX
from forgather.ml.data.sources import (
    DataError,
    Document,
    OnError,
    SourceFile,
    _decode,
    _report,
    expand_paths,
)

log = logging.getLogger("forgather.ml.data")

CHAT_TEMPLATE_DIR = Path(__file__).parent / "chat_templates"
ROLES = ("system", "user", "assistant", "tool")


def default_chat_template() -> str:
    """The template shipped in ``chat_templates/simple.jinja`` (same output as
    :data:`~forgather.ml.data.tokenizer.SIMPLE_CHAT_TEMPLATE`)."""
    return (CHAT_TEMPLATE_DIR / "simple.jinja").read_text()


def read_chat_template(template: str | os.PathLike | None) -> str | None:
    """A chat template given as ``"default"``/``"simple"`` (the shipped one), a path to
    a Jinja file, or the template text itself; None stays None."""
    if template is None:
        return None
    if str(template) in ("default", "simple"):
        return default_chat_template()
    path = Path(template).expanduser()
    if "{" not in str(template) and path.is_file():
        return path.read_text()
    if "{" not in str(template):
        raise FileNotFoundError(f"no chat template file {template}")
    return str(template)


def with_chat_template(tokenizer, chat_template: str | os.PathLike | None = None):
    """Give ``tokenizer`` a chat template: ``chat_template`` when set (replacing its
    own), else its own, else the shipped default. Returns the same tokenizer."""
    text = read_chat_template(chat_template)
    if text is not None:
        tokenizer.chat_template = text
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = default_chat_template()
    return tokenizer


@dataclass(frozen=True)
class Conversation:
    """One conversation of a chat source.

    Attributes:
        file_index: index into the source's ``files()``.
        ordinal: position within its file (0-based, over conversations read).
        messages: ``[{"role": ..., "content": ...}, ...]``.
    """

    file_index: int
    ordinal: int
    messages: list[dict]


class ChatFiles:
    """JSON Lines conversations: ``messages`` lists, or ``prompt``/``completion`` pairs.

    Args:
        paths: files and/or directories (``pattern`` inside directories).
        messages_field: the field holding the message list.
        prompt_field, completion_field, system_field: the fields of a pair.
        pattern: glob used inside directories.
        on_error: ``"raise"`` a DataError naming file and line, or ``"skip"`` the line
            with a logged warning.

    A conversation must hold at least one assistant message with text, and every
    message a known role and string content.
    """

    kind = "chat"

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        messages_field: str = "messages",
        prompt_field: str = "prompt",
        completion_field: str = "completion",
        system_field: str = "system",
        pattern: str = "**/*.jsonl",
        on_error: OnError = "raise",
    ):
        if paths is None:
            raise ValueError("no chat data given: set data_path to a JSONL file or directory")
        self.paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        self.messages_field = messages_field
        self.prompt_field = prompt_field
        self.completion_field = completion_field
        self.system_field = system_field
        self.pattern = pattern
        self.on_error: OnError = on_error
        self._files: list[SourceFile] | None = None

    def files(self) -> list[SourceFile]:
        if self._files is None:
            self._files = expand_paths(self.paths, self.pattern)
        return self._files

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "fields": [
                self.messages_field,
                self.prompt_field,
                self.completion_field,
                self.system_field,
            ],
            "on_error": self.on_error,
        }

    def _messages(self, path: Path, lineno: int, record: object) -> list[dict]:
        if not isinstance(record, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(record).__name__}")
        if self.messages_field in record:
            messages = record[self.messages_field]
            if not isinstance(messages, list) or not messages:
                raise DataError(path, lineno, f"{self.messages_field!r} is not a non-empty list")
        elif self.prompt_field in record and self.completion_field in record:
            messages = []
            if record.get(self.system_field):
                messages.append({"role": "system", "content": record[self.system_field]})
            messages.append({"role": "user", "content": record[self.prompt_field]})
            messages.append({"role": "assistant", "content": record[self.completion_field]})
        else:
            raise DataError(
                path,
                lineno,
                f"no {self.messages_field!r} and no {self.prompt_field!r}/"
                f"{self.completion_field!r} pair (fields: {sorted(record)})",
            )
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise DataError(
                    path, lineno, f"message {i} has no role in {ROLES}: {str(message)[:80]}"
                )
            if not isinstance(message.get("content"), str):
                raise DataError(path, lineno, f"message {i} has no string 'content'")
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            raise DataError(path, lineno, "no assistant message with text: nothing to learn")
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    def conversations(self) -> Iterator[Conversation]:
        """The conversations, in file order."""
        for index, f in enumerate(self.files()):
            ordinal = 0
            with open(f.path, "rb") as stream:
                for lineno, raw in enumerate(stream, start=1):
                    if not raw.strip():
                        continue
                    try:
                        line = _decode(f.path, raw, lineno)
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError as err:
                            raise DataError(
                                f.path, lineno, f"invalid JSON: {err.msg} (column {err.colno})"
                            ) from None
                        messages = self._messages(f.path, lineno, record)
                    except DataError as err:
                        _report(self.on_error, err)
                        continue
                    yield Conversation(index, ordinal, messages)
                    ordinal += 1
            if ordinal == 0:
                _report(self.on_error, DataError(f.path, None, "file has no conversations"))

    def documents(self) -> Iterator[Document]:
        """Each conversation as plain text (contents joined by blank lines): what a
        tokenizer trains on when there is no tokenizer yet to render with."""
        for conv in self.conversations():
            yield Document(
                conv.file_index, conv.ordinal, "\n\n".join(m["content"] for m in conv.messages)
            )


def render_conversation(tokenizer, messages: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize one conversation with the tokenizer's chat template.

    Args:
        tokenizer: a transformers tokenizer with a ``chat_template``.
        messages: the conversation.

    Returns:
        ``(input_ids, is_assistant)``: (n,) int64 ids of the whole rendered
        conversation, and (n,) bool, True on the tokens of assistant turns (their
        text and the template's end-of-turn marker, not the header that opens them).

    Raises:
        ValueError: the template renders a shorter conversation as something other
            than a prefix of the longer one (it rewrites earlier turns).
    """

    def render(msgs: list[dict], generation_prompt: bool) -> str:
        if not msgs:
            return ""
        return tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=generation_prompt
        )

    full = render(messages, False)
    pieces: list[tuple[str, bool]] = []  # (text, is assistant) covering `full` in order
    done = 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:k], True)
        with_answer = render(messages[: k + 1], False)
        if (
            not (full.startswith(with_answer) and with_answer.startswith(prompt))
            or len(prompt) < done
        ):
            raise ValueError(
                "the chat template does not render conversations prefix by prefix "
                "(it rewrites earlier turns), so assistant tokens cannot be located"
            )
        # Whitespace the template puts after the end-of-turn marker is not the answer.
        end = len(with_answer.rstrip())
        pieces.append((full[done : len(prompt)], False))
        pieces.append((full[len(prompt) : end], True))
        done = end
    pieces.append((full[done:], False))
    ids: list[int] = []
    mask: list[bool] = []
    for text, assistant in pieces:
        if not text:
            continue
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [assistant] * len(piece)
    return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=bool)


@dataclass
class ChatSplit:
    """Tokenized conversations of one split.

    Attributes:
        input_ids: one (n_i,) int64 array per conversation.
        assistant: one (n_i,) bool array per conversation (True: trained on).
        names: ``file#ordinal`` of each conversation.
        name: ``"train"`` or ``"validation"``.
    """

    input_ids: list[np.ndarray]
    assistant: list[np.ndarray]
    names: list[str]
    name: str

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self))

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def load_chat_splits(
    source: ChatFiles,
    tokenizer,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, ChatSplit]:
    """Render and tokenize every conversation, then split by conversation.

    The split is the ``"document"`` split of :func:`~forgather.ml.data.split.split_corpus`
    (a hash of file name and position), so it is the same on every machine and the
    tokenizer trained on :class:`~forgather.ml.data.training_text.TrainingText` of
    the same source never saw the validation conversations.

    Args:
        source: the conversations.
        tokenizer: a tokenizer with a chat template (see :func:`with_chat_template`).
        validation_fraction: share of conversations held out (0: none).
        seed: changes which are held out.

    Returns:
        ``{"train": ChatSplit, "validation": ChatSplit}``.
    """
    from forgather.ml.data.split import held_out_documents

    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; see with_chat_template()")
    names = [f.name for f in source.files()]
    rendered, file_ids, ordinals = [], [], []
    for conv in source.conversations():
        rendered.append((render_conversation(tokenizer, conv.messages), conv))
        file_ids.append(conv.file_index)
        ordinals.append(conv.ordinal)
    if not rendered:
        raise ValueError("the chat source yielded no conversations")
    if validation_fraction > 0:
        held_out = held_out_documents(
            names, np.asarray(file_ids), np.asarray(ordinals), validation_fraction, "document", seed
        )
    else:
        held_out = np.zeros(len(rendered), dtype=bool)
    splits = {name: ChatSplit([], [], [], name) for name in ("train", "validation")}
    for ((ids, mask), conv), val in zip(rendered, held_out, strict=True):
        split = splits["validation" if val else "train"]
        split.input_ids.append(ids)
        split.assistant.append(mask)
        split.names.append(f"{names[conv.file_index]}#{conv.ordinal}")
    log.info(
        "chat data: %d train, %d validation conversations",
        len(splits["train"]),
        len(splits["validation"]),
    )
    return splits


class ChatDataset(Dataset):
    """Training examples from tokenized conversations; labels only on assistant tokens.

    Args:
        split: the conversations.
        block_size: most tokens per example. A longer conversation is cut to its
            first ``block_size`` tokens (counted in ``truncated``).
        packed: put several whole conversations in one example (next-fit, in a
            seeded random order), never cutting one across examples; False gives
            one conversation per example.
        shuffle_seed: order of conversations before packing; None keeps split order.

    Items are dicts of 1-D int64 tensors ``input_ids``, ``position_ids`` (restarting
    at 0 at each conversation, so Forgather's models attend within a conversation
    only) and ``labels`` (the token id on assistant tokens, -100 elsewhere).
    Examples have different lengths; the collator pads them.
    """

    def __init__(
        self,
        split: ChatSplit,
        block_size: int = 1024,
        packed: bool = True,
        shuffle_seed: int | None = 0,
    ):
        if block_size < 2:
            raise ValueError(f"block_size must be at least 2, got {block_size}")
        self.split = split
        self.block_size = block_size
        self.packed = packed
        lengths = np.minimum(split.lengths, block_size)
        self.truncated = int((split.lengths > block_size).sum())
        order = np.arange(len(split))
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(order)
        self.examples: list[list[int]] = []  # conversation indices of each example
        if not packed:
            self.examples = [[int(i)] for i in order]
        else:
            used = block_size
            for i in order:
                if used + lengths[i] > block_size:
                    self.examples.append([])
                    used = 0
                self.examples[-1].append(int(i))
                used += int(lengths[i])
        if self.truncated:
            log.warning(
                "%d of %d %s conversations are longer than %d tokens and were cut",
                self.truncated,
                len(split),
                split.name,
                block_size,
            )

    def __len__(self) -> int:
        return len(self.examples)

    def conversations(self, index: int) -> list[str]:
        """Names (``file#ordinal``) of the conversations in example ``index``."""
        return [self.split.names[i] for i in self.examples[index]]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids, positions, labels = [], [], []
        for i in self.examples[index]:
            tokens = self.split.input_ids[i][: self.block_size]
            assistant = self.split.assistant[i][: self.block_size]
            ids.append(tokens)
            positions.append(np.arange(len(tokens), dtype=np.int64))
            labels.append(np.where(assistant, tokens, IGNORE_INDEX))
        return {
            "input_ids": torch.from_numpy(np.concatenate(ids)),
            "position_ids": torch.from_numpy(np.concatenate(positions)),
            "labels": torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        }


def open_chat(
    paths: str | os.PathLike | Sequence[str | os.PathLike] | None,
    messages_field: str = "messages",
    on_error: OnError = "raise",
) -> ChatFiles:
    """:class:`ChatFiles` as templates call it (``paths`` None is a clear error)."""
    return ChatFiles(paths, messages_field=messages_field, on_error=on_error)
