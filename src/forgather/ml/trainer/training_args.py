"""`TrainingArguments`: every knob of the training loop, in one typed dataclass.

Field names and defaults follow Hugging Face's `transformers.TrainingArguments`
so a user can carry settings across; only fields this trainer implements exist
(an unknown field is a `TypeError` at construction, not a silently ignored
setting). Additions are marked "not in HF" in their comments.

Fields of the original Forgather's `TrainingArguments` are accepted too
(`original_args.py` says which are honoured, which are refused with a message
naming the field, and what differs); an existing config keeps its spellings.

The decision a reader may question: two directories. `output_dir` holds
`checkpoints/` (where `resume_from_checkpoint=True` looks) and is where
`save_model()` writes by default; `logging_dir` gets the logs, TensorBoard
events and samples. `forgather train` (`TrainingScript`) sets both to the run
directory `<model_dir>/runs/<run>`, so a run is one self-contained directory,
and resumes in the run that holds the newest checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from forgather.ml import checkpoint_layout as layout

from .original_args import IntervalStrategy, check_original_fields

#: The values of `TrainingArguments.bf16_gemm` (cpu_bf16.py).
BF16_GEMM_SETTINGS = ("auto", "float32", "native")

__all__ = ["IntervalStrategy", "TrainingArguments"]

_INTERVALS = ("no", "steps", "epoch")
_REPORTERS = ("json", "tensorboard")


@dataclass
class TrainingArguments:
    """Settings of one training run (see the module docstring for the two directories)."""

    output_dir: str = "tmp_trainer"  # holds checkpoints/; save_model()'s default directory
    # Logs and events; None: `<output_dir>/runs/<YYYYmmdd-HHMMSS>`.
    logging_dir: str | None = None

    # Batching. Tokens per optimizer step = train batch * accumulation * sequence length.
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1

    # Length of training: max_steps (optimizer steps) wins over num_train_epochs when > 0.
    num_train_epochs: float = 3.0
    max_steps: int = -1

    # Default optimizer (AdamW) and schedule, used when the Trainer gets no factories.
    learning_rate: float = 5e-5
    weight_decay: float = 0.0  # decoupled; applied to tensors with >= 2 dims only
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler_type: str = "linear"  # constant | linear | cosine | wsd
    lr_scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0  # clip the global gradient L2 norm; None or <= 0 disables

    # Numerics and speed.
    bf16: bool = False  # bf16 autocast for forward and loss; weights stay fp32
    # Not in HF: how bf16 matmuls run. "float32": as float32 GEMMs on the bf16-rounded
    # operands, rounded back to bf16 (the same numbers, 2-3x faster on a CPU without
    # native bf16); "native": torch's bf16 kernels; "auto": "float32" on a CPU without
    # AVX512-BF16 or AMX, compiled or not (not with AccelTrainer), else "native" (cpu_bf16.py).
    bf16_gemm: str = "auto"
    # True/False as in HF; "auto" (not in HF): compile runs of at least
    # AUTO_COMPILE_MIN_STEPS optimizer steps where the backend can (torch_settings.py).
    torch_compile: bool | str = "auto"
    torch_compile_mode: str | None = None  # e.g. "max-autotune"; None: torch's default
    use_cpu: bool = False  # train on the CPU even when CUDA or MPS is available
    # Not in HF: torch's CPU threads. None: the cores this process may use, shared among
    # the node's ranks, unless OMP_NUM_THREADS is set or the program set them; 0: leave
    # torch's setting (threads.py).
    torch_threads: int | None = None
    # Not in HF: return the heap's freed pages to the OS after each optimizer step, so
    # peak RSS stays what a step holds (host_memory.py). None: on when training on a CPU.
    release_host_memory: bool | None = None

    # Logging, evaluation and checkpoints: "no", "steps" (every *_steps) or "epoch".
    logging_strategy: str = "steps"
    logging_steps: int = 500
    logging_first_step: bool = False
    eval_strategy: str = "no"
    eval_steps: int | None = None  # None: same as logging_steps
    eval_on_start: bool = False
    max_eval_steps: int = -1  # not in HF: evaluate on at most this many batches; -1: all
    save_strategy: str = "steps"
    save_steps: int = 500
    save_total_limit: int | None = None  # keep only the newest N checkpoints
    # True: the newest checkpoint in <output_dir>/checkpoints (fresh start if none); str: a path.
    resume_from_checkpoint: bool | str | None = None
    report_to: list[str] | str = field(default_factory=lambda: ["json", "tensorboard"])
    disable_tqdm: bool = False

    # Reproducibility: `seed` seeds everything; `data_seed` the shuffling (None: seed).
    seed: int = 42
    data_seed: int | None = None

    # DataLoader.
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = True
    dataloader_drop_last: bool = False
    dataloader_prefetch_factor: int | None = None
    dataloader_persistent_workers: bool = False

    # --- Accepted from the original Forgather (not in HF); see original_args.py. ---
    # Batches per epoch of a training dataset without a length.
    epoch_train_steps: int = 100000
    device: str | None = None  # None: CUDA, then MPS, then CPU
    eval_delay: int = 0  # no evaluation before this step
    torch_compile_backend: str | None = None  # None: torch's default (inductor)
    torch_compile_dynamic: bool | None = None
    torch_compile_full_graph: bool = False
    gradient_checkpointing: bool = False  # the trainer's enable_activation_checkpoint_fn
    default_dtype: str | None = None  # e.g. "bfloat16": model_init builds the model in it
    construct_model_on: str = "default"  # "default" | "device"; "meta" is refused
    enable_activation_offloading: bool = False  # saved activations go to (pinned) CPU memory
    detect_anomaly: bool = False  # torch.autograd.set_detect_anomaly
    sdpa_backend: list[str] | str | None = None  # "math" | "flash" | "efficient" | "cudnn"
    sdpa_set_priority: bool = False  # a list of backends is a priority order
    float32_matmul_precision: str | None = None  # "highest" | "high" | "medium"
    dynamo_recompile_limit: int | None = None
    activation_memory_budget: float | None = None  # torch.compile's activation budget
    # Accepted for their default (or a harmless) value; others are refused.
    save_safetensors: bool = True  # checkpoints are always safetensors (tied weights stored once)
    save_on_each_node: bool = False
    overwrite_output_dir: bool = False  # no effect: nothing refuses an existing directory
    load_best_model_at_end: bool = False
    metric_for_best_model: str = "loss"
    greater_is_better: bool | None = None
    save_optimizer_state: bool = True
    save_scheduler_state: bool = True
    save_dataset_state: bool = True
    save_rng_state: bool = True
    restore_optimizer_state: bool = True
    restore_scheduler_state: bool = True
    restore_dataset_state: bool = True
    restore_rng_state: bool = True
    gc_threshold: float = 0.5  # no effect (the original's CUDA cache heuristic)
    fuse_optim_with_backward: bool = False  # same updates, stepped after backward (a warning)
    speed_metrics_start_step: int = 1  # no effect: throughput excludes eval and save time

    def __post_init__(self) -> None:
        check_original_fields(self)
        for name in ("logging_strategy", "eval_strategy", "save_strategy"):
            if getattr(self, name) not in _INTERVALS:
                raise ValueError(f"{name} must be one of {_INTERVALS}, got {getattr(self, name)!r}")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(
                f"max_steps must be >= 1, or -1 to train num_train_epochs, got {self.max_steps}"
            )
        if self.torch_compile not in (True, False, "auto"):
            raise ValueError(
                f"torch_compile must be True, False or 'auto', got {self.torch_compile!r}"
            )
        if self.torch_threads is not None and self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0 or None, got {self.torch_threads}")
        if self.bf16_gemm not in BF16_GEMM_SETTINGS:
            raise ValueError(
                f"bf16_gemm must be 'auto', 'float32' or 'native', got {self.bf16_gemm!r}"
            )
        if self.eval_steps is None:
            self.eval_steps = self.logging_steps
        if self.eval_steps < 1:
            raise ValueError(f"eval_steps must be >= 1, got {self.eval_steps}")
        if self.load_best_model_at_end:
            self._check_best_model_settings()
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError(f"save_total_limit must be >= 1 or None, got {self.save_total_limit}")
        if isinstance(self.report_to, str):
            self.report_to = {"all": list(_REPORTERS), "none": []}.get(
                self.report_to, [self.report_to]
            )
        unknown = set(self.report_to) - set(_REPORTERS) - {"none"}
        if unknown:
            raise ValueError(f"report_to: unknown {sorted(unknown)}; use {_REPORTERS} or 'none'")
        self.report_to = [r for r in self.report_to if r != "none"]
        if self.logging_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.logging_dir = os.path.join(self.output_dir, layout.RUNS_DIR, stamp)
        if self.data_seed is None:
            self.data_seed = self.seed
        if self.max_grad_norm is None:
            self.max_grad_norm = 0.0  # the original's spelling of "no clipping"

    def _check_best_model_settings(self) -> None:
        """`load_best_model_at_end` needs an evaluation at every save (as Hugging Face's does)."""
        if self.eval_strategy == "no" or self.eval_strategy != self.save_strategy:
            raise ValueError(
                "load_best_model_at_end=True needs eval_strategy and save_strategy to be the "
                f"same (and not 'no'), got {self.eval_strategy!r} and {self.save_strategy!r}"
            )
        if self.save_strategy == "steps" and self.save_steps % self.eval_steps:
            raise ValueError(
                "load_best_model_at_end=True needs save_steps to be a multiple of eval_steps, "
                f"got {self.save_steps} and {self.eval_steps}"
            )

    @property
    def checkpoints_dir(self) -> str:
        """`<output_dir>/checkpoints`, where this run's checkpoints live."""
        return os.path.join(self.output_dir, layout.CHECKPOINTS_DIR)

    def to_dict(self) -> dict[str, Any]:
        """The arguments as a JSON-serialisable dict."""
        return asdict(self)
