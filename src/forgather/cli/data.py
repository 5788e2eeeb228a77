"""Data commands: ``dataset`` (inspect a dataset config) and ``tokenizer`` (train one).

    forgather -t python_stdlib_dataset.yaml dataset              # sizes, examples, histograms
    forgather -t python_stdlib_dataset.yaml dataset --raw -n 3   # documents instead of packed blocks
    forgather tokenizer stdlib -o output_models/tok --vocab-size 2048
    forgather tokenizer data/*.jsonl -o tok --text-field body --chat-template simple

Decision a reader may question: ``dataset`` builds the config's ``main``
target (a mapping of split name to dataset, what the dataset templates build)
and its ``tokenizer`` target; a training config can be inspected the same way
by naming its dataset target with ``--target``.
"""

from __future__ import annotations

import argparse

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", default="main", help="target building {split: dataset} (default: main)"
    )
    parser.add_argument("-n", "--examples", type=int, default=2, help="decoded examples to show")
    parser.add_argument("--raw", action="store_true", help="show documents, not packed blocks")
    parser.add_argument(
        "--histogram-dir", default=".", metavar="DIR", help="where <split>_token_lengths.svg go"
    )
    parser.add_argument("--no-histogram", action="store_true", help="write no SVG")


def _dataset(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.ml.data.inspect import dataset_report

    config = ctx.config
    for target in (args.target, "tokenizer"):
        if target not in config.targets:
            raise CLIError(
                f"this config has no {target!r} target (targets: {', '.join(config.targets)})"
            )
    built = config.build()
    datasets = built[args.target]
    if not isinstance(datasets, dict):
        raise CLIError(
            f"target {args.target!r} built a {type(datasets).__name__}, not {{split: dataset}}"
        )
    ctx.emit(
        dataset_report(
            datasets,
            built["tokenizer"],
            num_examples=args.examples,
            packed=not args.raw,
            histogram_dir=None if args.no_histogram else args.histogram_dir,
        )
    )
    return 0


def _tokenizer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="*", help="files or directories; 'stdlib' (default) for the embedded corpus"
    )
    parser.add_argument("-O", "--output-dir", required=True, help="where to save the tokenizer")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--format", default="auto", help="auto, text, jsonl, parquet or hf")
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
