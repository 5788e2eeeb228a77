"""``forgather merge-lora``: fold a LoRA adapter into its base model.

    forgather merge-lora output_models/chat_lora output_models/chat
    forgather merge-lora ADAPTER_DIR OUT --base-model models/llama --dtype bfloat16

Fine-tuning with LoRA (``templatelib/finetune/finetune.yaml``) saves only the
adapter; this writes base + adapter as one model directory that
``forgather inf server``, vLLM and ``from_pretrained`` load without peft.
``tools/merge_lora.py`` is the same command as a script; the work is done by
:func:`forgather.ml.finetune.merge_lora`.

Decision a reader may question: the merged model must give the adapted
model's logits (checked in fp32, as ``forgather convert`` checks a
conversion), or nothing is written and the exit status is 1.
"""

from __future__ import annotations

import argparse

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("adapter_dir", help="the LoRA adapter (adapter_config.json + weights)")
    parser.add_argument("output_dir", help="where the merged model goes (must not exist)")
    parser.add_argument(
        "--base-model",
        metavar="DIR",
        help="the base model directory (default: the one adapter_config.json records)",
    )
    parser.add_argument("--dtype", help="dtype of the saved weights (default: the base's)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="allowed max |logit diff| relative to the largest |logit| (default 1e-4)",
    )


def run_merge_lora(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Merge, check the logits, report."""
    from forgather.ml.finetune import merge_lora

    try:
        result = merge_lora(
            args.adapter_dir,
            args.output_dir,
            base_model=args.base_model,
            dtype=args.dtype,
            tolerance=args.tolerance,
        )
    except (ImportError, FileExistsError, FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from err
    ctx.emit(
        f"merged {result.merged_layers} LoRA layers with a copy of {result.base_model} (left "
        f"as it was): logits match, max abs diff {result.max_abs_diff:.3g} "
        f"(allowed {result.tolerance:.3g})\n"
        f"saved the merged model to {result.output_dir}\n"
    )
    return 0


COMMANDS = {
    "merge-lora": Command(
        run=run_merge_lora,
        add_arguments=_merge_arguments,
        description="Write a LoRA adapter merged into its base model as one model directory "
        "(Hugging Face or Forgather, as the base). The merged model must give the adapted "
        "model's logits, or nothing is written and the exit status is 1. Needs peft: "
        "pip install 'forgather[lora]'.",
    ),
}
