"""Default tensor- and pipeline-parallel plans for models built from ``modelsrc/``.

Keys are relative to the base model (what ``AutoModel`` builds); ``*`` stands
for a layer index. vLLM's Transformers backend and transformers'
``tp_plan="auto"`` read these from ``config.base_model_tp_plan`` and
``config.base_model_pp_plan``; a model template can replace either.

Decision a reader may question: the plans name module paths, not classes, so
they hold for every shipped layer type (pre-LN, post-LN, DeepNet) because the
layers share attribute names (``self_attn.q_proj``, ``mlp.down_proj``, ...).
A plan entry that matches nothing (a plain MLP has no ``gate_proj``) is
harmless to vLLM, but :func:`forgather.ml.model_conversion.validate_vllm_plans`
reports it, so :func:`plans_for` drops such entries for a concrete model.
"""

from __future__ import annotations

import re

from torch import nn

#: Attention heads split across ranks (column-wise q/k/v, row-wise output),
#: feed-forward hidden units likewise.
DEFAULT_TP_PLAN: dict[str, str] = {
    "layers.*.self_attn.q_proj": "colwise",
    "layers.*.self_attn.k_proj": "colwise",
    "layers.*.self_attn.v_proj": "colwise",
    "layers.*.self_attn.o_proj": "rowwise",
    "layers.*.mlp.gate_proj": "colwise",
    "layers.*.mlp.up_proj": "colwise",
    "layers.*.mlp.down_proj": "rowwise",
}

#: Stage boundaries: (input names, output names) of each top-level child.
DEFAULT_PP_PLAN: dict[str, tuple[list[str], list[str]]] = {
    "input_encoder": (["input_ids"], ["inputs_embeds"]),
    "layers": (["hidden_states", "attention_mask"], ["hidden_states"]),
    "norm": (["hidden_states"], ["hidden_states"]),
}


def plan_key_regex(key: str) -> re.Pattern:
    """Compile a plan key: ``.`` is literal, ``*`` matches one layer index."""
    return re.compile(re.escape(key).replace(r"\*", r"\d+") + r"$")


def plans_for(base_model: nn.Module) -> tuple[dict[str, str], dict]:
    """The default plans, keeping only TP entries that match a module of ``base_model``."""
    names = [name for name, _ in base_model.named_modules()]
    tp_plan = {
        key: style
        for key, style in DEFAULT_TP_PLAN.items()
        if any(plan_key_regex(key).match(name) for name in names)
    }
    return tp_plan, dict(DEFAULT_PP_PLAN)
