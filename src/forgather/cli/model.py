"""``forgather model``: inspect and smoke-test a model config.

    forgather -t llama_4m.yaml model construct              # config, tokenizer, modules, sizes
    forgather -t llama.yaml model construct --device meta   # a 7B definition, no memory used
    forgather -t llama_4m.yaml model test --steps 5 --dtype bfloat16

Both build the config's ``model`` target (which also writes the generated
model directory), passing ``device``, ``dtype`` and ``attn_implementation``
as build-time context variables.
"""

from __future__ import annotations

import argparse

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("construct", "test"), help="what to do")
    parser.add_argument("--device", help="cpu, cuda, mps or meta (construct only)")
    parser.add_argument("--dtype", help="float32, bfloat16 or float16")
    parser.add_argument(
        "--attn-implementation", help="eager, sdpa, flash_attention_2, flex_attention"
    )
    parser.add_argument("--steps", type=int, default=3, help="test: optimizer steps")
    parser.add_argument("--batch-size", type=int, default=2, help="test: rows per batch")
    parser.add_argument("--seq-len", type=int, default=64, help="test: tokens per row")
    parser.add_argument(
        "--max-depth", type=int, default=4, help="construct: depth of the module tree"
    )


def _run(ctx: CommandContext, args: argparse.Namespace) -> int:
    config = ctx.config
    if "model" not in config.targets:
        raise CLIError(f"this config has no 'model' target (targets: {', '.join(config.targets)})")
    if args.action == "test" and args.device == "meta":
        raise CLIError("model test needs real memory: use --device cpu or cuda")
    context = {
        key: value
        for key, value in (
            ("device", args.device),
            ("dtype", args.dtype),
            ("attn_implementation", args.attn_implementation),
        )
        if value is not None
    }
    built = config.build(None, **context)
    model, tokenizer = built["model"], built.get("tokenizer")
    if args.action == "construct":
        from forgather.ml.model.inspect import describe_model

        ctx.emit(describe_model(model, tokenizer, max_depth=args.max_depth))
    else:
        from forgather.ml.model.inspect import run_model_test

        run_model_test(
            model,
            steps=args.steps,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            print_fn=ctx.emit,
        )
    return 0


COMMANDS = {"model": Command(run=_run, add_arguments=_arguments, uses_config=True)}
