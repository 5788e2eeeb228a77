"""The trainers for several processes, and what they share (private; import from `forgather.ml.trainer`).

- `multiprocess.py`: `MultiProcessTrainer`, what every rank of a `torchrun`
  job adds to `BaseTrainer`'s loop (sharded data, global token counts,
  per-rank checkpoint files, a stop signal agreed by all ranks);
- `accel_trainer.py`: `AccelTrainer`, data parallel (DDP or FSDP2) on Accelerate;
- `pipeline_trainer.py`: `PipelineTrainer`, the model cut into stages
  (`pipeline_split.py`, `pipeline_schedules.py`, `pipeline_checkpoint.py`);
- `distributed.py`: process-group plumbing; `sharded_state.py`: DDP/FSDP
  model and optimizer state on disk.

Decision a reader may question: nothing outside this package imports it at
module level, so a single-device run never loads Accelerate or
`torch.distributed.pipelining`; `forgather.ml.trainer` resolves `AccelTrainer`,
`PipelineTrainer` and `merge_pipeline_checkpoint` here on first use.
"""

__all__: list[str] = []
