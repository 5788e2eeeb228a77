"""Check a model against what vLLM's Transformers backend needs to shard it.

vLLM serves a ``trust_remote_code`` model with tensor parallelism by
replacing the ``nn.Linear`` modules named in ``config.base_model_tp_plan``
with sharded ones, and with pipeline parallelism by looking up the children
named in ``config.base_model_pp_plan`` on the base model, finding the one
``nn.ModuleList`` of layers and replacing what another rank owns with
identities. A plan that names nothing, or the wrong kind of module, fails
only when someone runs vLLM on several GPUs; this module finds it on a
laptop.

Decision a reader may question: problems are collected and reported
together (one line each, naming the plan key and what it matched) instead of
stopping at the first, so a broken template is fixed in one pass.
"""

from __future__ import annotations

import re
from collections import defaultdict

from torch import nn

#: Tensor-parallel styles vLLM's Transformers backend accepts.
VLLM_TP_STYLES = ("colwise", "rowwise", "replicate", "colwise_gather_output", "rowwise_split_input")

#: Config attributes vLLM reads from a Transformers-backend model.
VLLM_CONFIG_ATTRIBUTES = (
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "num_hidden_layers",
    "hidden_size",
    "vocab_size",
    "tie_word_embeddings",
)


def _key_regex(key: str) -> re.Pattern:
    # "layers.*.self_attn.q_proj": dots literal, "*" one layer index.
    return re.compile(re.escape(key).replace(r"\*", r"\d+") + r"$")


def _base_model(model: nn.Module) -> nn.Module:
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def _check_tp(base: nn.Module, tp_plan: dict) -> list[str]:
    problems = []
    modules = dict(base.named_modules())
    style_of: dict[str, str] = {}
    for key, style in tp_plan.items():
        if style not in VLLM_TP_STYLES:
            problems.append(
                f"tp_plan[{key!r}]: unknown style {style!r} (valid: {', '.join(VLLM_TP_STYLES)})"
            )
        matches = [name for name in modules if name and _key_regex(key).match(name)]
        if not matches:
            sample = ", ".join(n for n in list(modules)[1:6])
            problems.append(
                f"tp_plan[{key!r}] matches no module (module names look like: {sample}, ...)"
            )
        not_linear = [n for n in matches if not isinstance(modules[n], nn.Linear)]
        if not_linear:
            more = f" (and {len(not_linear) - 1} more)" if len(not_linear) > 1 else ""
            kind = type(modules[not_linear[0]]).__name__
            problems.append(
                f"tp_plan[{key!r}] matches {not_linear[0]}{more}, a {kind}; vLLM shards only nn.Linear"
            )
        style_of.update((name, style) for name in matches)
    # Column-wise shards must be gathered again by a row-wise sibling (q/k/v -> o, up -> down).
    # Parents are folded over layer indices (layers.*.mlp) so each mistake is reported once.
    siblings: dict[str, dict[str, str]] = defaultdict(dict)
    for name, style in style_of.items():
        parent, _, child = name.rpartition(".")
        siblings[re.sub(r"\.\d+(?=\.|$)", ".*", parent)][child] = style
    for parent, children in sorted(siblings.items()):
        styles = set(children.values())
        if "colwise" in styles and "rowwise" not in styles:
            cols = ", ".join(c for c, s in children.items() if s == "colwise")
            problems.append(
                f"{parent}: {cols} split column-wise, but no sibling is row-wise to combine the shards"
            )
        if "rowwise" in styles and "colwise" not in styles:
            rows = ", ".join(c for c, s in children.items() if s == "rowwise")
            problems.append(
                f"{parent}: {rows} split row-wise, but no sibling is column-wise to feed it"
            )
    return problems


def _check_pp(base: nn.Module, pp_plan: dict, num_hidden_layers: int | None) -> list[str]:
    problems = []
    children = dict(base.named_children())
    module_lists = []
    for key, value in pp_plan.items():
        if key not in children:
            problems.append(
                f"pp_plan[{key!r}] is not a direct child of {type(base).__name__} "
                f"(children: {', '.join(children)})"
            )
        elif isinstance(children[key], nn.ModuleList):
            module_lists.append(key)
        well_formed = (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(
                isinstance(names, (tuple, list)) and all(isinstance(n, str) for n in names)
                for names in value
            )
        )
        if not well_formed:
            problems.append(f"pp_plan[{key!r}] must be (input names, output names), got {value!r}")
    if len(module_lists) != 1:
        problems.append(
            f"pp_plan must name exactly one nn.ModuleList of layers, found {len(module_lists)}"
            + (f" ({', '.join(module_lists)})" if module_lists else "")
        )
    elif num_hidden_layers is not None and len(children[module_lists[0]]) != num_hidden_layers:
        problems.append(
            f"pp_plan[{module_lists[0]!r}] holds {len(children[module_lists[0]])} layers "
            f"but config.num_hidden_layers is {num_hidden_layers}"
        )
    for name, child in children.items():
        if name not in pp_plan and any(True for _ in child.parameters()):
            problems.append(
                f"{name} has parameters but is not in pp_plan, so no pipeline stage owns it"
            )
    return problems


def _check_layers(base: nn.Module, config) -> list[str]:
    problems = []
    for attr in VLLM_CONFIG_ATTRIBUTES:
        if not hasattr(config, attr):
            problems.append(f"config has no {attr!r}")
    if not getattr(base, "_supports_attention_backend", False):
        problems.append(f"{type(base).__name__}._supports_attention_backend is not True")
    layers = getattr(base, "layers", None)
    if isinstance(layers, nn.ModuleList):
        for i, layer in enumerate(layers):
            indices = [m.layer_idx for m in layer.modules() if hasattr(m, "layer_idx")]
            if indices != [i]:
                problems.append(
                    f"layers.{i} should hold one attention module with layer_idx={i}, found {indices}"
                )
    return problems


def validate_vllm_plans(
    model: nn.Module,
    tp_plan: dict | None = None,
    pp_plan: dict | None = None,
    strict: bool = True,
) -> list[str]:
    """Check the parallel plans (and related vLLM requirements) against ``model``.

    Args:
        model: A causal LM or its base model.
        tp_plan: Plan to check; default ``model.config.base_model_tp_plan``.
        pp_plan: Plan to check; default ``model.config.base_model_pp_plan``.
        strict: Raise when there is a problem.

    Returns:
        One line per problem; empty when the model is fine.

    Raises:
        ValueError: When ``strict`` and there are problems; the message lists them.
    """
    config = getattr(model, "config", None)
    base = _base_model(model)
    tp_plan = (
        tp_plan if tp_plan is not None else dict(getattr(config, "base_model_tp_plan", None) or {})
    )
    pp_plan = (
        pp_plan if pp_plan is not None else dict(getattr(config, "base_model_pp_plan", None) or {})
    )
    problems = []
    if not tp_plan:
        problems.append("no tensor-parallel plan (config.base_model_tp_plan is empty)")
    if not pp_plan:
        problems.append("no pipeline-parallel plan (config.base_model_pp_plan is empty)")
    problems += _check_tp(base, tp_plan)
    if pp_plan:
        problems += _check_pp(base, pp_plan, getattr(config, "num_hidden_layers", None))
    problems += _check_layers(base, config)
    if problems and strict:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ValueError(f"{type(model).__name__} is not ready for vLLM:\n{listing}")
    return problems
