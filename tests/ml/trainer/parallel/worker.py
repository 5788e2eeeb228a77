"""One rank of a distributed trainer test: trains the runs a JSON spec lists, records results.

Run by the tests under torchrun (or alone, for single-process references):

    python -m torch.distributed.run --nproc-per-node 2 worker.py SPEC.json

The spec names a generated model directory (with initial weights), an output
directory and a list of runs; every run trains from those same weights on the
same packed data (rows of two documents, with restarting `position_ids`, made
by the real `CausalLMCollator`). Each rank writes `<out>/<run>-rank<r>.json`
with the log history, the evaluation metrics and a digest of the weights it
holds, and rank 0 writes `<out>/<run>-weights.pt`: the full final weights
(gathered for FSDP, merged for pipelines).

A run is a dict: `name`, `trainer` ("trainer" | "accel" | "pipeline"),
`batch` (per device), `accumulation`, `max_steps`, and optionally
`save_steps`, `eval_steps`, `eval_batch`, `evaluate` (evaluate after training),
`resume` (a checkpoint path), `bf16`, `step_delay` (seconds slept after each
step, so a test can signal or kill a rank mid-run), `shard` (a plain
`Trainer` reading only this rank's share of the data: an unsynchronised run),
`save_local` (each rank saves the weights it holds), `save_model` (a
directory for `save_model()`), `uneven` (rows mask `masked_labels(i)` leading
labels, so batches hold different numbers of targets), `per_rank_init` (each
rank initialises the model afresh from its own seed instead of loading the
saved weights, and the result records digests of the parameters: as built,
at the start and at the end of training), and the trainer's own options
under `options`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import textwrap
import time

import torch

from forgather.ml.trainer import TrainerCallback

TOKENS_PER_ROW = 32
DOCUMENT_LENGTHS = (20, 12)  # two packed documents per row


def packed_rows(rows: int, offset: int = 0) -> list[dict[str, torch.Tensor]]:
    """`rows` examples of ASCII bytes of textwrap's source, two documents per row."""
    with open(textwrap.__file__, "rb") as f:
        data = [b for b in f.read() if b < 128]
    start = offset * TOKENS_PER_ROW
    tokens = torch.tensor(data[start : start + rows * TOKENS_PER_ROW]).view(rows, TOKENS_PER_ROW)
    positions = torch.cat([torch.arange(n) for n in DOCUMENT_LENGTHS])  # (T,) restarts at 0
    return [{"input_ids": row, "position_ids": positions.clone()} for row in tokens]


def masked_labels(index: int) -> int:
    """How many leading labels row `index` of an `uneven` run hides (0 to 28 of 32)."""
    return index * 7 % 29


def uneven_rows(rows: int, offset: int = 0) -> list[dict]:
    """`packed_rows` that also say how many leading labels to mask."""
    return [
        {**row, "masked_labels": masked_labels(offset + i)}
        for i, row in enumerate(packed_rows(rows, offset))
    ]


class MaskingCollator:
    """`CausalLMCollator`, then -100 on each row's first `masked_labels` labels."""

    def __init__(self) -> None:
        from forgather.ml.data import CausalLMCollator

        self.collate = CausalLMCollator(pad_token_id=0)

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate(samples)
        for row, sample in enumerate(samples):
            batch["labels"][row, : sample["masked_labels"]] = -100
        return batch


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the parameters a rank holds (FSDP: the whole gathered tensors; a collective)."""
    from torch.distributed.tensor import DTensor

    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        tensor = param.full_tensor() if isinstance(param, DTensor) else param
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _Digests(TrainerCallback):
    """Records the parameter digest at the start (after setup) and at the end of training."""

    def __init__(self, trainer, digests: dict) -> None:
        self.trainer, self.digests = trainer, digests

    def on_train_begin(self, args, state, control, **kwargs):
        self.digests["start"] = parameter_digest(self.trainer.local_model)

    def on_train_end(self, args, state, control, **kwargs):
        self.digests["end"] = parameter_digest(self.trainer.local_model)


class _Delay(TrainerCallback):
    """Prints each finished step (for a parent process to watch) and sleeps."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        rank = os.environ.get("RANK", "0")
        # One write per line: the ranks share the launcher's stdout.
        sys.stdout.write(f"STEP {state.global_step} RANK {rank} PID {os.getpid()}\n")
        sys.stdout.flush()
        time.sleep(self.seconds)


def _make_trainer(spec: dict, run: dict, digests: dict):
    from forgather.ml.data import CausalLMCollator
    from forgather.ml.model import load_model
    from forgather.ml.trainer import Trainer, TrainingArguments

    rank = int(os.environ.get("RANK", "0"))
    run_dir = os.path.join(spec["out"], run["name"])
    if run.get("shard"):
        run_dir += f"-rank{rank}"  # trainers that do not know about each other
    args = TrainingArguments(
        output_dir=run_dir, logging_dir=run_dir,
        per_device_train_batch_size=run["batch"], per_device_eval_batch_size=run.get("eval_batch", 4),
        gradient_accumulation_steps=run.get("accumulation", 1), max_steps=run["max_steps"],
        learning_rate=3e-3, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
        logging_steps=1, save_steps=run.get("save_steps", 1000), save_strategy="steps",
        eval_strategy="steps" if run.get("eval_steps") else "no", eval_steps=run.get("eval_steps"),
        report_to=["json"], disable_tqdm=True, seed=3, bf16=run.get("bf16", False),
    )  # fmt: skip
    callbacks = []
    if run.get("step_delay") is not None:
        callbacks.append(_Delay(run["step_delay"]))
    if run.get("per_rank_init"):
        torch.manual_seed(1000 + rank)  # as if each process had built the model unseeded
        model = load_model(spec["model_dir"], from_weights=False)
        digests["built"] = parameter_digest(model)
    else:
        model = load_model(spec["model_dir"])
    rows, collator = packed_rows, CausalLMCollator(pad_token_id=0)
    if run.get("uneven"):
        rows, collator = uneven_rows, MaskingCollator()
    common = dict(
        model=model, args=args, train_dataset=rows(64), eval_dataset=rows(16, offset=64),
        data_collator=collator, callbacks=callbacks,
    )  # fmt: skip
    kind, options = run["trainer"], run.get("options", {})
    if kind == "trainer":
        if run.get("shard"):
            from forgather.ml.data import ResumableSampler

            world = int(os.environ.get("WORLD_SIZE", "1"))
            sampler = ResumableSampler(64, seed=args.data_seed, num_replicas=world, rank=rank)
            return Trainer(**common, train_sampler=sampler)
        return Trainer(**common)
    if kind == "accel":
        from accelerate.state import AcceleratorState

        from forgather.ml.trainer import AccelTrainer

        # Accelerate keeps one mixed-precision setting per process; runs here differ.
        AcceleratorState._reset_state()

        return AccelTrainer(**common, **options)
    from forgather.ml.trainer import PipelineTrainer

    return PipelineTrainer(**common, **options)


def _full_weights(trainer) -> dict[str, torch.Tensor] | None:
    """The whole model's weights on rank 0 (a collective for FSDP and pipelines)."""
    if hasattr(trainer, "full_state_dict"):
        return trainer.full_state_dict()
    if getattr(trainer, "strategy", None) == "fsdp":
        from forgather.ml.trainer.parallel.sharded_state import full_model_state_dict

        return full_model_state_dict(trainer.model)
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@contextlib.contextmanager
def _world_size(value: str | None):
    before = os.environ.get("WORLD_SIZE")
    if value is not None:
        os.environ["WORLD_SIZE"] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = before


def train_run(spec: dict, run: dict) -> None:
    digests: dict[str, str] = {}
    trainer = _make_trainer(spec, run, digests)
    if run.get("per_rank_init"):
        trainer.add_callback(_Digests(trainer, digests))
    alone = run["trainer"] == "trainer" and run.get("shard")
    # The negative control: each rank a one-process job of its own. Trainer refuses to be one
    # of several processes, so the control hides the job's WORLD_SIZE from it.
    with _world_size("1" if alone else os.environ.get("WORLD_SIZE")):
        trainer.train(resume_from_checkpoint=run.get("resume"))
        metrics = trainer.evaluate() if run.get("evaluate") else {}
    rank = int(os.environ.get("RANK", "0"))
    result = {"log_history": trainer.state.log_history, "metrics": metrics, "digests": digests}
    if hasattr(trainer, "pp_rank"):
        result["pp_rank"], result["dp_rank"] = trainer.pp_rank, trainer.dp_rank
    with open(os.path.join(spec["out"], f"{run['name']}-rank{rank}.json"), "w") as f:
        json.dump(result, f)
    weights = _full_weights(trainer)
    if rank == 0:
        torch.save(weights, os.path.join(spec["out"], f"{run['name']}-weights.pt"))
    if run.get("save_local"):
        local_path = os.path.join(spec["out"], f"{run['name']}-rank{rank}-local.pt")
        torch.save(
            {k: v.detach().clone() for k, v in trainer.local_model.state_dict().items()},
            local_path,
        )
    if run.get("save_model"):
        trainer.save_model(run["save_model"])


def main() -> None:
    torch.set_num_threads(1)  # the same summation order in every process, and 2 busy cores
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    only = sys.argv[2:]  # optional: names of the runs to do
    for run in spec["runs"]:
        if not only or run["name"] in only:
            train_run(spec, run)


if __name__ == "__main__":
    main()
