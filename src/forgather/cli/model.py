"""``forgather model``: inspect and smoke-test a model config.

    forgather -t llama_4m.yaml model construct              # config, tokenizer, modules, sizes
    forgather -t llama.yaml model construct --device meta   # a 7B definition, no memory used
    forgather -t llama_4m.yaml model test --steps 5 --dtype bfloat16
    forgather -t llama_4m.yaml model --gradient-checkpointing test --lr 1e-2
    forgather -t llama_4m.yaml model test --dataset-project ../datasets --packed
    forgather -t llama_4m.yaml model --load-from-checkpoint output_models/x/checkpoint-8 test

Both build the config's ``model`` target (which also writes the generated
model directory), passing ``device``, ``dtype`` and ``attn_implementation``
as build-time context variables. The options are the original Forgather's
(they may come before or after ``construct``/``test``).

Decision a reader may question: ``--no-init-weights``, ``--load-from-checkpoint``
and ``--gradient-checkpointing`` act on the model the config built rather than
being passed to the config: they then work on every model config, whatever
its templates expose. ``--dtype``, ``--attn-implementation`` and
``--batch-size`` are read with ``getattr``: a config may declare options of
those names itself (many of the original's do), and the dispatcher lets the
config's option win; either way the value reaches the build.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Mapping

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.dtypes import check_dtype
from forgather.cli.errors import CLIError
from forgather.cli.values import int_at_least, non_negative_float


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("construct", "test"), help="what to do")
    parser.add_argument("--device", help="cpu, cuda, mps or meta (default: the config's)")
    parser.add_argument(
        "--dtype", help="float32/fp32, bfloat16/bf16, float16/fp16/half or float64/fp64/double"
    )
    parser.add_argument(
        "--attn-implementation", help="eager, sdpa, flash_attention_2, flex_attention"
    )
    parser.add_argument(
        "--no-init-weights",
        action="store_true",
        help="build without initialising the weights (fast; values are garbage)",
    )
    parser.add_argument(
        "--load-from-checkpoint",
        metavar="PATH",
        help="then load weights from PATH (a checkpoint or model directory, or a .safetensors file)",
    )
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="enable gradient checkpointing"
    )
    parser.add_argument(
        "--fuse-optim-with-backward",
        action="store_true",
        help="test: step each parameter's optimizer during backward (saves gradient memory)",
    )
    test = parser.add_argument_group("test options")
    test.add_argument(
        "--steps", type=int_at_least(1), default=3, help="optimizer steps (default: 3)"
    )
    test.add_argument(
        "--batch-size", type=int_at_least(1), default=2, help="rows per batch (default: 2)"
    )
    test.add_argument(
        "--sequence-length",
        "--seq-len",
        dest="seq_len",
        type=int_at_least(2),  # a row of one token has nothing to predict
        default=64,
        help="tokens per row (default: 64)",
    )
    test.add_argument(
        "--lr", type=non_negative_float, default=1e-3, help="learning rate (default: 1e-3)"
    )
    test.add_argument(
        "--dataset-project",
        metavar="DIR",
        help="train on this dataset project's train split instead of random tokens",
    )
    test.add_argument(
        "--dataset-config", metavar="NAME", help="its config (default: its default_config)"
    )
    test.add_argument(
        "--packed",
        action="store_true",
        help="pack several documents into each row (positions restart at each)",
    )
    parser.add_argument(
        "--max-depth", type=int, default=4, help="construct: depth of the module tree"
    )


def _value(args: argparse.Namespace, name: str):
    """An option's value whether we or the config added it (the config's dest may differ)."""
    return getattr(args, name, None)


#: The targets `model` builds when the config has them (the original's three, and ours).
MODEL_TARGETS = ("pretrained_config", "pretrained_tokenizer", "tokenizer", "model")


def _constructed(model, device: str | None, dtype: str | None, stack: contextlib.ExitStack):
    """The model: ``model`` itself, or what it makes when it is a constructor.

    The original Forgather's model projects make ``model`` a ``!partial``
    constructor, which its ``model`` command calls on the device (and default
    dtype) chosen; ours build the model itself.
    """
    import torch

    if isinstance(model, torch.nn.Module) or not callable(model):
        return model
    stack.enter_context(torch.device(device or "cpu"))
    if dtype is not None:
        from forgather.ml.utils import default_dtype

        stack.enter_context(default_dtype(dtype))
    return model()


def _build(ctx: CommandContext, args: argparse.Namespace):
    from forgather.project.project import build_targets

    dtype = _value(args, "dtype")
    if dtype is not None:  # "bf16" -> "bfloat16": the torch name the model build looks up
        dtype = check_dtype(str(dtype))
    config = ctx.config
    if "model" not in config.targets:
        raise CLIError(f"this config has no 'model' target (targets: {', '.join(config.targets)})")
    if args.action == "test" and args.device == "meta":
        raise CLIError("model test needs real memory: use --device cpu or cuda")
    if args.load_from_checkpoint and args.device == "meta":
        raise CLIError("--load-from-checkpoint needs real memory: use --device cpu or cuda")
    context = {
        key: value
        for key, value in (
            ("device", args.device),
            ("dtype", dtype),
            ("attn_implementation", _value(args, "attn_implementation")),
        )
        if value is not None
    }
    with contextlib.ExitStack() as stack:
        if args.no_init_weights:
            from transformers.initialization import no_init_weights

            stack.enter_context(no_init_weights())
        # The model and what describes it, as the original builds them: other targets (a
        # factory only a trainer calls, say) may not build on their own.
        wanted = [t for t in MODEL_TARGETS if t in config.targets]
        built = build_targets(config, wanted, context)
        model = _constructed(built["model"], args.device, context.get("dtype"), stack)
    tokenizer = built.get("tokenizer", built.get("pretrained_tokenizer"))
    notes = []
    if args.no_init_weights:
        notes.append("weights not initialised (--no-init-weights)")
    if args.load_from_checkpoint:
        from forgather.serve.loading import load_weights_into

        path = os.path.expanduser(args.load_from_checkpoint)
        try:
            load_weights_into(model, path)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(str(e)) from None
        notes.append(f"weights loaded from {path}")
    if args.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise CLIError(f"{type(model).__name__} does not support gradient checkpointing")
        # transformers 5 renamed it (the old names warn); older versions have only the old ones.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable()
            enabled = model.is_activation_checkpointing
        else:
            model.gradient_checkpointing_enable()
            enabled = model.is_gradient_checkpointing
        notes.append(f"gradient checkpointing: {'on' if enabled else 'off'}")
    return model, tokenizer, notes


def _run(ctx: CommandContext, args: argparse.Namespace) -> int:
    model, tokenizer, notes = _build(ctx, args)
    for note in notes:
        ctx.emit(note)
    if args.action == "construct":
        from forgather.ml.model.inspect import describe_model

        ctx.emit(describe_model(model, tokenizer, max_depth=args.max_depth))
        return 0
    from forgather.ml.model.inspect import run_model_test

    batches = None
    if args.dataset_project:
        batches = _dataset_examples(args, model)
    try:
        run_model_test(
            model,
            steps=args.steps,
            batch_size=_value(args, "batch_size") or 2,
            seq_len=args.seq_len,
            lr=args.lr,
            examples=batches,
            packed=args.packed,
            fuse_optimizer=args.fuse_optim_with_backward,
            print_fn=ctx.emit,
        )
    except ValueError as e:  # e.g. token ids beyond the model's vocabulary
        raise CLIError(str(e)) from None
    return 0


def _dataset_examples(args: argparse.Namespace, model):
    """The train split (or the first) of ``--dataset-project``'s config, as an iterable."""
    from forgather.project import Project

    project = Project.open(os.path.expanduser(args.dataset_project))
    name = args.dataset_config or project.meta.default_config
    if not name:
        raise CLIError(f"{args.dataset_project} has no default_config: give --dataset-config")
    config = project.load(name)
    # A dataset config's main, or a training config's own train_dataset.
    target = next((t for t in ("train_dataset", "main") if t in config.targets), None)
    if target is None:
        raise CLIError(
            f"{name} has neither a train_dataset nor a main target "
            f"(targets: {', '.join(config.targets)})"
        )
    datasets = config.build(target)
    if isinstance(datasets, dict):
        if not datasets:
            raise CLIError(f"{name} builds no splits")
        datasets = datasets.get("train", next(iter(datasets.values())))
    if isinstance(datasets, (str, bytes)) or not (
        hasattr(datasets, "__iter__") or hasattr(datasets, "__getitem__")
    ):
        raise CLIError(
            f"{name}'s {target} target builds a {type(datasets).__name__}, not a dataset: "
            "name a dataset config with --dataset-config"
        )
    first = next(iter(datasets), None)
    if not (isinstance(first, Mapping) and "input_ids" in first):
        raise CLIError(
            f"{name}'s {target} target gives examples without input_ids (the first: "
            f"{type(first).__name__}): name a tokenized dataset config with --dataset-config"
        )
    return datasets


COMMANDS = {"model": Command(run=_run, add_arguments=_arguments, uses_config=True)}
