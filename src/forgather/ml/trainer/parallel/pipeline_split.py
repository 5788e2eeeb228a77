"""Cutting a generated causal LM into pipeline stages.

A generated model runs `input_encoder -> layers[0..L) -> norm -> lm_head`, with
the layers in one `nn.ModuleList` and the order written in
`config.base_model_pp_plan` (the contract vLLM relies on too). A stage owns a
contiguous run of layers; the first stage also owns what runs before the
layers, the last stage what runs after them.

- `decoder_layout(model)`: where those parts are;
- `plan_stages(...)`: which layers each stage gets, balanced by layer count
  or by parameter count, or cut at named split points;
- `build_stage(...)`: a stage as a module the pipeline schedule can run;
- `merge_stage_weights(...)`: the stages' weights back into one state dict.

The decision a reader may question: a stage is the *whole* model with the
parts other stages own replaced by `PassThrough` (which returns its first
argument), not a new module assembled from the owned parts. The model's own
forward then runs on every stage: the same attention masks from
`position_ids` (packed documents stay separated on every stage), the same
kernels, and parameter names identical to the unsplit model's, so per-stage
checkpoints merge into a normal Hugging Face checkpoint by a plain union.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "DecoderLayout",
    "PassThrough",
    "StageModule",
    "build_stage",
    "decoder_layout",
    "merge_stage_weights",
    "plan_stages",
    "stage_of_parameter",
]


class PassThrough(nn.Module):
    """Stands in for a module another stage runs: returns its first argument."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x


@dataclass(frozen=True)
class DecoderLayout:
    """Where the parts of a decoder-only LM live (dotted module names)."""

    layers: str  # the nn.ModuleList of decoder layers, e.g. "model.layers"
    before: tuple[str, ...]  # run before the layers: first stage, e.g. ("model.input_encoder",)
    after: tuple[str, ...]  # run after them: last stage, e.g. ("model.norm", "lm_head")
    num_layers: int


def decoder_layout(model: nn.Module) -> DecoderLayout:
    """Find the layer list and the modules around it in a Hugging Face causal LM.

    The base model is `model.<base_model_prefix>`; the order of its parts is
    `config.base_model_pp_plan` when the config has one, else the order of the
    base model's children. Children of the LM other than the base model (the
    head) come last.

    Raises:
        ValueError: If the base model does not hold exactly one `nn.ModuleList`.
    """
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    if not isinstance(base, nn.Module):
        raise ValueError(
            f"{type(model).__name__} has no base model (base_model_prefix); the pipeline "
            "trainer splits Hugging Face causal LMs such as Forgather's generated models"
        )
    plan = getattr(getattr(model, "config", None), "base_model_pp_plan", None) or {}
    children = dict(base.named_children())
    order = [name for name in plan if name in children] or list(children)
    lists = [name for name in order if isinstance(children[name], nn.ModuleList)]
    if len(lists) != 1:
        raise ValueError(
            f"the base model must hold exactly one nn.ModuleList of layers, found {lists or 'none'}"
        )
    cut = order.index(lists[0])
    head = [name for name, _ in model.named_children() if name != prefix]
    return DecoderLayout(
        layers=f"{prefix}.{lists[0]}",
        before=tuple(f"{prefix}.{name}" for name in order[:cut]),
        after=tuple(f"{prefix}.{name}" for name in order[cut + 1 :]) + tuple(head),
        num_layers=len(children[lists[0]]),
    )


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def plan_stages(
    model: nn.Module,
    num_stages: int,
    balance: str = "layers",
    split_points: list[str] | None = None,
) -> list[range]:
    """The layers of each stage: contiguous, in order, at least one per stage.

    Args:
        model: The causal LM.
        num_stages: Stages in the whole pipeline.
        balance: "layers" (equal layer counts; earlier stages get the extra
            layers, since the last one also runs the head) or "parameters"
            (minimise the largest stage's parameter count, embedding on the
            first stage and norm + head on the last included).
        split_points: Layers at which a new stage begins, e.g.
            `["model.layers.2"]` (or `["layers.2"]`); overrides `balance`.

    Returns:
        One `range` of layer indices per stage.

    Raises:
        ValueError: On too few layers, an unknown `balance`, or bad split points.
    """
    layout = decoder_layout(model)
    count = layout.num_layers
    if count < num_stages:
        raise ValueError(f"{count} layers cannot fill {num_stages} pipeline stages")
    if split_points is not None:
        starts = [_split_index(point, layout) for point in split_points]
        if len(starts) != num_stages - 1 or starts != sorted(set(starts)) or starts[0] <= 0:
            raise ValueError(
                f"{num_stages} stages need {num_stages - 1} increasing split points after "
                f"{layout.layers}.0, got {split_points}"
            )
        bounds = [0, *starts, count]
        return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    if balance == "layers":
        sizes = [
            count // num_stages + (1 if s < count % num_stages else 0) for s in range(num_stages)
        ]
    elif balance == "parameters":
        layers = model.get_submodule(layout.layers)
        costs = [_count(layer) for layer in layers]
        first = sum(_count(model.get_submodule(n)) for n in layout.before)
        last = sum(_count(model.get_submodule(n)) for n in layout.after)
        sizes = _balanced_sizes(costs, num_stages, first, last)
    else:
        raise ValueError(f"balance must be 'layers' or 'parameters', got {balance!r}")
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _split_index(point: str, layout: DecoderLayout) -> int:
    short = layout.layers.split(".", 1)[-1]
    for prefix in (layout.layers + ".", short + "."):
        if point.startswith(prefix) and point[len(prefix) :].isdigit():
            index = int(point[len(prefix) :])
            if index < layout.num_layers:
                return index
    raise ValueError(
        f"split point {point!r} is not a layer; name one as '{layout.layers}.<i>' "
        f"with i < {layout.num_layers}"
    )


def _balanced_sizes(costs: list[int], stages: int, first: int, last: int) -> list[int]:
    """Layer counts per stage minimising the largest stage cost (exact, by dynamic programming)."""
    n = len(costs)
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)

    def cost(stage: int, a: int, b: int) -> int:
        extra = (first if stage == 0 else 0) + (last if stage == stages - 1 else 0)
        return prefix[b] - prefix[a] + extra

    # best[s][b]: smallest achievable max cost placing layers [0, b) on stages [0, s].
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(stages)]
    cut = [[0] * (n + 1) for _ in range(stages)]
    for b in range(1, n + 1):
        best[0][b] = cost(0, 0, b)
    for s in range(1, stages):
        for b in range(s + 1, n + 1):
            for a in range(s, b):  # stage s holds layers [a, b)
                value = max(best[s - 1][a], cost(s, a, b))
                if value < best[s][b]:
                    best[s][b], cut[s][b] = value, a
    sizes, b = [], n
    for s in range(stages - 1, 0, -1):
        a = cut[s][b]
        sizes.append(b - a)
        b = a
    sizes.append(b)
    return sizes[::-1]


def stage_of_parameter(name: str, layout: DecoderLayout, plan: list[range]) -> int:
    """The stage that owns parameter `name` (a dotted name of the unsplit model)."""
    if name.startswith(layout.layers + "."):
        index = int(name[len(layout.layers) + 1 :].split(".", 1)[0])
        return next(s for s, layers in enumerate(plan) if index in layers)
    if any(name.startswith(part + ".") for part in layout.before):
        return 0
    if any(name.startswith(part + ".") for part in layout.after):
        return len(plan) - 1
    raise ValueError(f"parameter {name!r} belongs to no part of the pipeline layout")


def check_no_cross_stage_ties(model: nn.Module, layout: DecoderLayout, plan: list[range]) -> None:
    """Refuse a model whose tied weights (e.g. embedding and head) would land on two stages."""
    by_param: dict[int, list[str]] = defaultdict(list)
    for name, param in model.named_parameters(remove_duplicate=False):
        by_param[id(param)].append(name)
    for names in by_param.values():
        stages = {stage_of_parameter(n, layout, plan) for n in names}
        if len(stages) > 1:
            raise ValueError(
                f"{' and '.join(names)} share one tensor but would sit on stages "
                f"{sorted(stages)}; pipeline an untied model (tie_word_embeddings: false)"
            )


class StageModule(nn.Module):
    """One stage: the pruned model run on token ids (first stage) or hidden states.

    `forward(x, position_ids, [attention_mask])` returns (B, T, D) hidden
    states, or (B, T, V) logits on the last stage. `lm` is the pruned model,
    whose state dict holds exactly this stage's weights under their unsplit names.
    """

    def __init__(self, lm: nn.Module, is_first: bool, is_last: bool) -> None:
        super().__init__()
        self.lm = lm
        self.is_first = is_first
        self.is_last = is_last

    def forward(
        self,
        x: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": x} if self.is_first else {"inputs_embeds": x}
        options = {
            "position_ids": position_ids,
            "attention_mask": attention_mask,
            "use_cache": False,
        }
        if self.is_last:
            return self.lm(**inputs, **options, return_dict=True).logits
        base = getattr(self.lm, self.lm.base_model_prefix)  # the head is not this stage's
        hidden = base(**inputs, **options, return_dict=True).last_hidden_state
        # The schedule frees a stage's outputs with an in-place detach_(), which views refuse.
        return hidden.clone() if hidden._base is not None else hidden


def build_stage(
    model: nn.Module, layout: DecoderLayout, plan: list[range], stage: int, copy_model: bool
) -> StageModule:
    """Stage `stage` of `plan`: the model with every part other stages own replaced.

    Args:
        model: The unsplit model.
        layout: `decoder_layout(model)`.
        plan: `plan_stages(...)`.
        stage: Which stage to build.
        copy_model: Prune a deep copy (when this process builds several stages)
            instead of `model` itself.
    """
    lm = copy.deepcopy(model) if copy_model else model
    last = len(plan) - 1
    for name in (layout.before if stage != 0 else ()) + (layout.after if stage != last else ()):
        parent, _, child = name.rpartition(".")
        setattr(lm.get_submodule(parent) if parent else lm, child, PassThrough())
    layers = lm.get_submodule(layout.layers)
    for index in range(layout.num_layers):
        if index not in plan[stage]:
            layers[index] = PassThrough()
    return StageModule(lm, is_first=stage == 0, is_last=stage == last)


def merge_stage_weights(stage_weights: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The union of the stages' state dicts (their names never overlap)."""
    merged: dict[str, torch.Tensor] = {}
    for weights in stage_weights:
        overlap = merged.keys() & weights.keys()
        if overlap:
            raise ValueError(f"two stages both hold {sorted(overlap)[:3]}")
        merged.update(weights)
    return merged
