"""Fine-tuning pretrained causal LMs: full or LoRA, on any trainer.

    from forgather.ml.finetune import load_pretrained, merge_lora

    model = load_pretrained("models/llama", lora={"r": 8})     # frozen base + LoRA adapters
    ... train with any forgather.ml.trainer trainer; save_model() writes the adapter ...
    merge_lora("output_models/chat_lora", "output_models/chat")   # base + adapter -> one model

LoRA comes from ``peft``, an optional extra (``pip install 'forgather[lora]'``);
everything else here needs only the core dependencies. See docs/training.md,
"Fine-tuning".

Decision a reader may question: names are resolved lazily (PEP 562), so
importing this package loads neither transformers nor peft.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgather._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; never executed at run time
    from forgather.ml.finetune.loading import (
        attend_within_documents,
        load_pretrained,
        load_tokenizer,
    )
    from forgather.ml.finetune.lora import (
        ADAPTER_CONFIG_FILE,
        ADAPTER_WEIGHTS_FILE,
        apply_lora,
        is_lora_model,
        lora_config,
        require_peft,
        save_adapter,
    )
    from forgather.ml.finetune.merge import MergeResult, merge_lora

_LAZY = {
    "ADAPTER_CONFIG_FILE": "lora",
    "ADAPTER_WEIGHTS_FILE": "lora",
    "MergeResult": "merge",
    "apply_lora": "lora",
    "attend_within_documents": "loading",
    "is_lora_model": "lora",
    "load_pretrained": "loading",
    "load_tokenizer": "loading",
    "lora_config": "lora",
    "merge_lora": "merge",
    "require_peft": "lora",
    "save_adapter": "lora",
}

__all__ = [
    "ADAPTER_CONFIG_FILE",
    "ADAPTER_WEIGHTS_FILE",
    "MergeResult",
    "apply_lora",
    "attend_within_documents",
    "is_lora_model",
    "load_pretrained",
    "load_tokenizer",
    "lora_config",
    "merge_lora",
    "require_peft",
    "save_adapter",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
