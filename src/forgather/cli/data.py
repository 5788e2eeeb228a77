"""Data commands: ``dataset`` (inspect a dataset config) and ``tokenizer`` (train one).

    forgather -t python_stdlib_dataset.yaml dataset              # sizes, examples, histograms
    forgather -t python_stdlib_dataset.yaml dataset --raw -n 3   # documents instead of packed blocks
    forgather tokenizer stdlib -o output_models/tok --vocab-size 2048
    forgather tokenizer data/*.jsonl -o tok --text-field body --chat-template simple

Decision a reader may question: ``dataset`` builds the config's ``main``
target (a mapping of split name to dataset, what the dataset templates build)
and its ``tokenizer`` target; a training config can be inspected the same way
by naming its dataset target with ``--target``. Without ``--target``, a config
with a ``train_dataset_split`` target (the original Forgather's dataset
projects, whose default that was) shows that split instead, as the original did.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError
from forgather.project.project import build_targets


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=None,
        help="target building {split: dataset}, or one dataset (default: train_dataset_split "
        "where the config has one, as in the original Forgather's dataset projects, else main)",
    )
    parser.add_argument(
        "-T",
        "--tokenizer-path",
        metavar="PATH",
        help="decode with this tokenizer (a directory) instead of the config's tokenizer "
        "target; also passed to the templates as tokenizer_path",
    )
    parser.add_argument("--pp", action="store_true", help="print the config's rendered YAML first")
    parser.add_argument("-n", "--examples", type=int, default=2, help="decoded examples to show")
    parser.add_argument("--raw", action="store_true", help="show documents, not packed blocks")
    parser.add_argument(
        "--blocks",
        action="store_true",
        help="show the training config's train_dataset as the model receives it: collated "
        "blocks, document boundaries and the tokens that carry loss",
    )
    parser.add_argument(
        "--features",
        nargs="*",
        metavar="NAME",
        help="print these fields of each example as they are, instead of decoding input_ids",
    )
    parser.add_argument(
        "-s",
        "--tokenized",
        action="store_true",
        help="the examples hold input_ids: decode them (the default when they do; "
        "with -s, an example without input_ids is an error)",
    )
    parser.add_argument(
        "-H",
        "--histogram",
        action="store_true",
        help="write <split>_token_lengths.svg per split (to --histogram-dir)",
    )
    parser.add_argument(
        "--histogram-samples",
        type=int,
        metavar="N",
        help="length statistics and histograms from at most N documents per split "
        "(default: every document of our corpus splits, 1000 of other datasets)",
    )
    parser.add_argument(
        "--histogram-dir",
        metavar="DIR",
        help="where the SVGs go (default: the current directory); implies -H",
    )
    parser.add_argument("--no-histogram", action="store_true", help="write no SVG (the default)")


def _dataset_and_tokenizer(config, target: str):
    """Build ``target`` and the config's ``tokenizer`` together, or ``target`` alone (tokenizer
    None) when the config has no tokenizer of its own: none at all, or, in the original's
    dataset projects, a ``!var`` the project that trains on the data fills."""
    from forgather.config import MissingVariableError

    if "tokenizer" in config.targets:
        try:
            built = build_targets(config, [target, "tokenizer"], {})
            return built[target], built["tokenizer"]
        except MissingVariableError as err:
            if "tokenizer" not in str(err):
                raise
    return build_targets(config, [target], {})[target], None


def _dataset(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.ml.data.inspect import dataset_report

    if args.tokenizer_path:  # a template variable too, as the original passes it
        dynamic = getattr(ctx, "dynamic_args", None) or {}
        ctx.reload_config(**dynamic, tokenizer_path=args.tokenizer_path)
    config = ctx.config
    if args.blocks:
        return _blocks(ctx, config, args)
    if args.target is None:
        args.target = _default_target(config)
    if args.target not in config.targets:
        raise CLIError(
            f"this config has no {args.target!r} target (targets: {', '.join(config.targets)})"
        )
    sections = []
    if args.pp:
        sections.append("# Preprocessed configuration\n" + config.pp)
    if args.tokenizer_path:
        from forgather.ml.data import load_tokenizer

        try:  # one rule for what is a missing directory and what a hub name
            tokenizer = load_tokenizer(os.path.expanduser(args.tokenizer_path))
        except FileNotFoundError:
            raise CLIError(f"-T {args.tokenizer_path}: no tokenizer directory there") from None
        built = config.build(args.target, tokenizer=tokenizer, preprocess_args={})
    else:
        built, tokenizer = _dataset_and_tokenizer(config, args.target)
    datasets = built if isinstance(built, dict) else {args.target: built}
    for split, dataset in datasets.items():
        if isinstance(dataset, (str, bytes, Mapping)) or not (
            hasattr(dataset, "__iter__") or hasattr(dataset, "__getitem__")
        ):
            raise CLIError(
                f"--target {args.target} builds {'a' if len(datasets) == 1 else f'{split!r} as a'} "
                f"{type(dataset).__name__}, not a dataset{_dataset_targets_hint(config, args.target)}"
                f" (the config's targets: {', '.join(config.targets)})"
            )
    features = args.features
    if tokenizer is None and features is None:  # nothing decodes ids: show the fields as they are
        features = []
    histogram_dir = None
    if (args.histogram or args.histogram_dir) and not args.no_histogram:
        histogram_dir = args.histogram_dir or "."
    from forgather.ml.data.inspect import InspectError

    try:
        sections.append(
            dataset_report(
                datasets,
                tokenizer,
                num_examples=args.examples,
                packed=not args.raw,
                histogram_dir=histogram_dir,
                features=features,
                tokenized=args.tokenized,
                max_samples=args.histogram_samples,
            )
        )
    except InspectError as e:
        raise CLIError(str(e)) from None
    ctx.emit("\n".join(sections))
    return 0


_ORIGINAL_DEFAULT_TARGET = "train_dataset_split"  # the original Forgather's --target default


def _default_target(config) -> str:
    """The target ``dataset`` shows without ``--target``: the original's default,
    ``train_dataset_split``, where the config has it (its ``main`` may need variables such as
    ``tokenizer`` that only a training project fills), else ``main``."""
    return _ORIGINAL_DEFAULT_TARGET if _ORIGINAL_DEFAULT_TARGET in config.targets else "main"


_BLOCKS_TARGETS = ("train_dataset", "data_collator", "tokenizer")  # what --blocks builds


def _dataset_targets_hint(config, wrong: str) -> str:
    """``; try --target train_dataset ...``: the config's targets named like datasets, and
    ``--blocks`` when the config has what it needs; empty when there is nothing to suggest.

    By name (``train_dataset``, ``eval_dataset``, the original's ``*_dataset_split``):
    finding out by building every target would cost a build of each."""
    named = [t for t in config.targets if t != wrong and "dataset" in t.lower()]
    hints = [" or ".join(f"--target {t}" for t in named)] if named else []
    if all(t in config.targets for t in _BLOCKS_TARGETS):
        hints.append("--blocks (train_dataset as the trainer collates it)")
    return f"; try {', or '.join(hints)}" if hints else ""


def _blocks(ctx: CommandContext, config, args: argparse.Namespace) -> int:
    """``dataset --blocks``: the training split collated as the trainer would."""
    from forgather.ml.data.blocks_view import blocks_view

    names = list(_BLOCKS_TARGETS)
    missing = [name for name in names if name not in config.targets]
    if missing:
        raise CLIError(
            f"--blocks needs the targets {', '.join(names)}; this config lacks "
            f"{', '.join(missing)} (targets: {', '.join(config.targets)})"
        )
    built = build_targets(config, names, {})
    ctx.emit(
        blocks_view(
            built["train_dataset"], built["data_collator"], built["tokenizer"],
            num_blocks=args.examples,
        )
    )  # fmt: skip
    return 0


def _tokenizer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="*", help="files or directories; 'stdlib' (default) for the embedded corpus"
    )
    parser.add_argument("-O", "--output-dir", required=True, help="where to save the tokenizer")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument(
        "--format",
        default="auto",
        help="auto (from the suffix), text, jsonl, parquet, csv or saved_dataset "
        "(a directory written by datasets' save_to_disk)",
    )
    parser.add_argument("--text-field", default="text", help="JSON field / column with the text")
    parser.add_argument("--chat-template", help="'simple', a Jinja file, or a template string")
    parser.add_argument("--max-train-chars", type=int, help="read at most this many characters")
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip malformed records with a warning"
    )


def _tokenizer(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.ml.data.commands import train_tokenizer_command
    from forgather.ml.data.sources import DataError

    try:
        report = train_tokenizer_command(
            args.inputs,
            args.output_dir,
            vocab_size=args.vocab_size,
            format=args.format,
            text_field=args.text_field,
            chat_template=args.chat_template,
            max_train_chars=args.max_train_chars,
            on_error="skip" if args.skip_bad else "raise",
        )
    except DataError as e:
        raise CLIError(str(e)) from None
    ctx.emit(report)
    return 0


COMMANDS = {
    "dataset": Command(run=_dataset, add_arguments=_dataset_arguments, uses_config=True),
    "tokenizer": Command(run=_tokenizer, add_arguments=_tokenizer_arguments),
}
