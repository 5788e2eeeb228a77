"""Write a tiny pretrained-style base model: a Hugging Face Llama with random weights.

    python make_base_model.py base_model

Stands in for the model you would fine-tune (a Llama, Mistral, Qwen or GPT-2
directory you already have): a LlamaConfig model saved with save_pretrained,
and a byte-level BPE tokenizer trained on the shipped chat data's text. The
tokenizer has no chat template; fine-tuning adds Forgather's simple one.
Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from forgather.ml.data import SpecialTokens, train_tokenizer

CHAT = Path(__file__).resolve().parents[2] / "data" / "chat" / "conversations.jsonl"


def chat_text(path: Path) -> list[str]:
    """Every message's content, for training the tokenizer."""
    lines = path.read_text().splitlines()
    return [m["content"] for line in lines if line.strip() for m in json.loads(line)["messages"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", help="where the model goes")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=1024)
    args = parser.parse_args()

    tokenizer = train_tokenizer(
        chat_text(CHAT),
        vocab_size=args.vocab_size,
        special_tokens=SpecialTokens(bos="<|bos|>", eos="<|eos|>", pad="<|pad|>", unk="<|unk|>"),
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        intermediate_size=args.hidden_size * 3,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    params = sum(p.numel() for p in model.parameters())
    print(f"saved a {params / 1e6:.2f}M-parameter Llama to {args.output_dir}")


if __name__ == "__main__":
    main()
