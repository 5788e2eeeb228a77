"""Hugging Face <-> Forgather conversion, vocabulary updates and checks for serving with vLLM.

from forgather.ml.model_conversion import convert_model, validate_vllm_plans

result = convert_model("~/models/qwen3", "output_models/qwen3")   # logits checked
validate_vllm_plans(model)          # raises ValueError listing every problem
print_model_structure(model, max_depth=3)
sd = convert_llama_state_dict(llama.state_dict())
"""

from . import resize_embeddings
from .architectures import UnsupportedFeatureError, forgather_hyperparameters, hf_config_for
from .convert import (
    ConversionResult,
    LogitMismatchError,
    compare_logits,
    convert_model,
    forgather_to_hf,
    hf_to_forgather,
    is_forgather_model,
)
from .hf_weights import (
    convert_gpt2_state_dict,
    convert_llama_state_dict,
    gpt2_state_dict_from_forgather,
    llama_state_dict_from_forgather,
)
from .registry import (
    HFConverter,
    detect_model_type,
    detect_model_type_from_forgather,
    detect_model_type_from_hf,
    discover_and_register_converters,
    get_converter,
    list_converters,
    register_converter,
)
from .structure import count_parameters, format_count, model_structure, print_model_structure
from .vllm_plans import VLLM_TP_STYLES, validate_vllm_plans
from .vocab import TokenSpec, parse_token_spec, update_vocab, update_vocabulary

__all__ = [
    "VLLM_TP_STYLES",
    "ConversionResult",
    "HFConverter",
    "LogitMismatchError",
    "TokenSpec",
    "UnsupportedFeatureError",
    "compare_logits",
    "convert_gpt2_state_dict",
    "convert_llama_state_dict",
    "convert_model",
    "count_parameters",
    "detect_model_type",
    "detect_model_type_from_forgather",
    "detect_model_type_from_hf",
    "discover_and_register_converters",
    "forgather_hyperparameters",
    "forgather_to_hf",
    "format_count",
    "get_converter",
    "gpt2_state_dict_from_forgather",
    "hf_config_for",
    "hf_to_forgather",
    "is_forgather_model",
    "list_converters",
    "llama_state_dict_from_forgather",
    "model_structure",
    "parse_token_spec",
    "print_model_structure",
    "register_converter",
    "resize_embeddings",
    "update_vocab",
    "update_vocabulary",
    "validate_vllm_plans",
]
