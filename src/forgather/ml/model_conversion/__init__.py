"""Hugging Face <-> Forgather conversion and checks for serving with vLLM.

from forgather.ml.model_conversion import validate_vllm_plans, print_model_structure

validate_vllm_plans(model)          # raises ValueError listing every problem
print_model_structure(model, max_depth=3)
sd = convert_llama_state_dict(llama.state_dict())
"""

from .hf_weights import convert_gpt2_state_dict, convert_llama_state_dict
from .structure import count_parameters, format_count, model_structure, print_model_structure
from .vllm_plans import VLLM_TP_STYLES, validate_vllm_plans

__all__ = [
    "VLLM_TP_STYLES",
    "convert_gpt2_state_dict",
    "convert_llama_state_dict",
    "count_parameters",
    "format_count",
    "model_structure",
    "print_model_structure",
    "validate_vllm_plans",
]
