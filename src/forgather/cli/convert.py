"""``forgather convert`` and ``forgather update-vocab``: Hugging Face <-> Forgather models.

    forgather convert ~/models/llama output_models/llama_fg --dtype bfloat16
    forgather convert output_models/llama_fg ~/models/llama_back        # direction detected
    forgather update-vocab --add-tokens tokens.yaml ~/models/llama ~/models/llama_chat
    forgather update-vocab --pad-token "<|pad|>" --special-token "<|im_start|>" SRC DST

Both accept the original Forgather's options (``tools/convert_model.py`` and
``tools/update_vocab.py`` are the same commands as standalone scripts); the
work is done by :mod:`forgather.ml.model_conversion`.

Decision a reader may question: a converted model whose logits differ from
its source's is an error (exit 1, nothing written), not the original's
warning. A conversion that silently changes the model is worse than none,
and ``--tolerance`` is there for the rare case that needs a looser check.
"""

from __future__ import annotations

import argparse
import logging

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gpt2")


def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src_model_path", help="model to convert (Hugging Face or Forgather)")
    parser.add_argument("dst_model_path", help="where the converted model goes (must not exist)")
    parser.add_argument(
        "--reverse", action="store_true", help="Forgather -> Hugging Face (default: detected)"
    )
    parser.add_argument(
        "--model-type",
        choices=_MODEL_TYPES,
        help="Forgather -> Hugging Face: target architecture (default: the recorded or matching one)",
    )
    parser.add_argument("--dtype", help="dtype of the saved weights (default: the source's)")
    parser.add_argument("--max-length", type=int, help="max_position_embeddings of the result")
    parser.add_argument(
        "-c",
        "--checkpoint-path",
        help="Forgather -> Hugging Face: convert this checkpoint's weights",
    )
    parser.add_argument("--device", default="cpu", help="where the logit check runs")
    parser.add_argument(
        "-g", "--generation-test", action="store_true", help="also compare greedy generation"
    )
    parser.add_argument("--dry-run", action="store_true", help="check the conversion, save nothing")
    parser.add_argument("--prompt", help="prompt of the generation test")
    parser.add_argument(
        "--debug-params", action="store_true", help="print the source's parameter names"
    )
    parser.add_argument(
        "-t", "--chat-template-path", help="Jinja chat template file for the tokenizer"
    )
    parser.add_argument("--add-tokens", metavar="YAML", help="then add these tokens (update-vocab)")
    parser.add_argument(
        "--skip-default-tokens",
        action="store_true",
        help="accepted for the original's scripts; convert adds no tokens unless asked",
    )
    parser.add_argument(
        "--converter-path", action="append", default=[], help="directory of converter plugins"
    )
    parser.add_argument("--name", help="model name of a Forgather result (default: directory name)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="allowed max |logit diff| relative to the largest |logit| (default 1e-4)",
    )
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="WARNING")


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--add-tokens", metavar="YAML", help="token spec file (see docs/models.md)")
    for role in ("bos", "eos", "pad", "unk"):
        parser.add_argument(f"--{role}-token", metavar="TOKEN", help=f"set the {role} token")
    parser.add_argument(
        "--special-token", action="append", default=[], metavar="TOKEN", help="add; repeatable"
    )
    parser.add_argument(
        "--token", action="append", default=[], metavar="TOKEN", help="add a regular token"
    )
    parser.add_argument(
        "--init", choices=("mean", "zero"), help="new rows start as the mean row (default) or zero"
    )
    parser.add_argument(
        "--skip-default-tokens",
        action="store_true",
        help="without a spec, do not add the default [PAD] token",
    )


def _update_vocab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_path", help="model to update (Hugging Face or Forgather)")
    parser.add_argument("output_path", help="where the updated model goes (must not exist)")
    _token_arguments(parser)
    parser.add_argument(
        "--save-format",
        choices=("huggingface", "sharded"),
        default="huggingface",
        help="accepted for the original's scripts; both save with save_pretrained",
    )
    parser.add_argument(
        "--safetensors", action="store_true", help="accepted; weights are always safetensors"
    )
    parser.add_argument("--dtype", help="load and save in this dtype (default: the checkpoint's)")
    parser.add_argument("--device", default="cpu", help="where the check runs")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="accepted; Forgather models are detected"
    )
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="WARNING")
    parser.add_argument("--dry-run", action="store_true", help="report the changes, save nothing")


def _token_spec(args: argparse.Namespace, default: dict | None):
    """The token spec from --add-tokens and the single-token options, else ``default``."""
    from forgather.ml.model_conversion.vocab import parse_token_spec, token_list

    spec = {}
    if args.add_tokens:
        import yaml

        with open(args.add_tokens) as f:
            spec = yaml.safe_load(f) or {}
        if not isinstance(spec, dict):
            raise ValueError(f"{args.add_tokens}: a token spec must be a mapping")
    for role in ("bos", "eos", "pad", "unk"):
        token = getattr(args, f"{role}_token", None)
        if token == "":
            raise ValueError(f"--{role}-token: an empty string is no token")
        if token:
            spec[f"{role}_token"] = token
    spec["special_tokens"] = [*token_list(spec, "special_tokens"), *args.special_token]
    spec["regular_tokens"] = [*token_list(spec, "regular_tokens"), *args.token]
    if args.init:
        spec["init"] = args.init
    given = args.add_tokens or any(spec.get(k) for k in spec if k != "init")
    if not given:
        spec = default or {}
    return parse_token_spec(spec)


def _errors():
    from forgather.ml.model_conversion import LogitMismatchError, UnsupportedFeatureError

    return (
        LogitMismatchError,
        UnsupportedFeatureError,
        FileExistsError,
        FileNotFoundError,
        ValueError,
    )


def run_convert(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Convert, check the logits, report the largest difference."""
    logging.basicConfig(level=args.log_level, format="%(levelname)s:%(name)s:%(message)s")
    from forgather.ml.model_conversion import (
        convert_model,
        discover_and_register_converters,
        get_converter,
        is_forgather_model,
        parse_token_spec,
        update_vocab,
    )
    from forgather.ml.model_conversion.convert import check_reversible
    from forgather.ml.model_conversion.registry import detect_model_type

    chat_template = args.chat_template_path
    try:
        discover_and_register_converters(args.converter_path)
        options = dict(
            dtype=args.dtype,
            max_length=args.max_length,
            chat_template_path=chat_template,
            device=args.device,
            tolerance=args.tolerance,
            generation_test=args.generation_test,
            dry_run=args.dry_run and not args.add_tokens,
        )
        if args.prompt:
            options["prompt"] = args.prompt
        if args.debug_params:
            _print_parameter_names(ctx, args.src_model_path)
        if args.reverse:
            check_reversible(args.src_model_path)
        reverse = args.reverse or is_forgather_model(args.src_model_path)
        detected = detect_model_type(args.src_model_path)
        model_type = args.model_type if reverse and args.model_type else (detected or ("", ""))[1]
        converter = get_converter(model_type)() if model_type in _registered() else None
        if converter is not None and type(converter).__module__ != _builtin_module():
            # A plugin registered for this type does the conversion its own way.
            if reverse:
                converter.convert_from_forgather(args.src_model_path, args.dst_model_path,
                                                 checkpoint_path=args.checkpoint_path, **options)  # fmt: skip
            else:
                converter.convert_to_forgather(args.src_model_path, args.dst_model_path, **options)
            ctx.emit(
                f"converted {args.src_model_path} -> {args.dst_model_path} (plugin {type(converter).__name__})\n"
            )
            return 0
        if reverse:
            options.update(model_type=args.model_type, checkpoint_path=args.checkpoint_path)
        else:
            options["name"] = args.name
        result = convert_model(args.src_model_path, args.dst_model_path, reverse=reverse, **options)
        direction = "Hugging Face -> Forgather" if result.direction == "hf_to_forgather" else (
            "Forgather -> Hugging Face")  # fmt: skip
        ctx.emit(
            f"{direction} ({result.model_type}, {result.dtype}): logits match, "
            f"max abs diff {result.max_abs_diff:.3g} (tolerance {result.tolerance:g} relative)\n"
        )
        for label, text in result.generated.items():
            ctx.emit(f"  {label}: {text!r}\n")
        if args.add_tokens:
            import shutil
            import tempfile

            final = result.output_dir
            with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.") as scratch:
                moved = f"{scratch}/model"
                shutil.move(final, moved)
                try:
                    report = update_vocab(moved, final, parse_token_spec(args.add_tokens),
                                          device=args.device, dry_run=args.dry_run)  # fmt: skip
                except BaseException:
                    shutil.move(moved, final)
                    raise
            ctx.emit(_vocab_summary(report))
        ctx.emit("dry run: nothing saved\n" if args.dry_run else f"saved {result.output_dir}\n")
    except _errors() as err:
        raise CLIError(str(err)) from err
    return 0


def _registered() -> list[str]:
    from forgather.ml.model_conversion import list_converters

    return list_converters()


def _builtin_module() -> str:
    from forgather.ml.model_conversion import registry

    return registry.__name__


def _print_parameter_names(ctx: CommandContext, model_dir: str) -> None:
    import json
    from pathlib import Path

    from safetensors import safe_open

    directory = Path(model_dir).expanduser()
    index = directory / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.is_file()
        else ["model.safetensors"]
    )
    for file in files:
        with safe_open(directory / file, "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                ctx.emit(f"  {key}  {tuple(f.get_slice(key).get_shape())}\n")


def _vocab_summary(report) -> str:
    lines = [f"vocabulary {report.old_vocab_size} -> {report.new_vocab_size}"]
    if report.added:
        lines.append("added: " + ", ".join(report.added))
    for role, token in report.set_roles.items():
        lines.append(f"{role}: {token}")
    for row, how in report.initialised.items():
        lines.append(f"row {row}: {how}")
    return "\n".join(lines) + "\n"


def run_update_vocab(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Add tokens, resize, fix the config ids, save."""
    logging.basicConfig(level=args.log_level, format="%(levelname)s:%(name)s:%(message)s")
    from forgather.ml.model_conversion.vocab import DEFAULT_TOKEN_SPEC, update_vocab

    try:
        spec = _token_spec(args, None if args.skip_default_tokens else DEFAULT_TOKEN_SPEC)
        report = update_vocab(args.model_path, args.output_path, spec, dtype=args.dtype,
                              device=args.device, dry_run=args.dry_run)  # fmt: skip
    except _errors() as err:
        raise CLIError(str(err)) from err
    ctx.emit(_vocab_summary(report))
    ctx.emit("dry run: nothing saved\n" if args.dry_run else f"saved {args.output_path}\n")
    return 0


COMMANDS = {
    "convert": Command(
        run=run_convert,
        add_arguments=_convert_arguments,
        description="Convert a model between Hugging Face (Llama, Mistral, Qwen2, Qwen3, GPT-2) "
        "and Forgather formats; the direction is detected from the source. The result must "
        "give the source's logits, or nothing is written and the exit status is 1.",
    ),
    "update-vocab": Command(
        run=run_update_vocab,
        add_arguments=_update_vocab_arguments,
        description="Add tokens to a model's vocabulary: tokenizer, embedding rows (mean or "
        "zero) and config ids. Without a spec, adds a [PAD] token if the tokenizer has none.",
    ),
}
