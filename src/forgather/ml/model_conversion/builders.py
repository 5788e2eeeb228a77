"""The builders of converted models: ``construct()`` sources for the two families.

A model converted from Hugging Face is a regular generated model directory
(``forgather.ml.model.write_model``); what it needs is the builder, the
Python source of ``construct(**hyperparameters)``. Two cover the supported
architectures:

* :data:`LLAMA_FAMILY_BUILDER`: Llama, Mistral, Qwen2 and Qwen3 (pre-norm
  RMSNorm layers, GQA with RoPE, SwiGLU); the differences between them are
  hyperparameters (``qkv_bias``, ``qk_norm``, ``sliding_window``,
  ``rope_parameters``, ``tie_word_embeddings``), so ``config.json`` says
  which variant a directory holds;
* :data:`GPT2_BUILDER`: GPT-2 (learned positions, LayerNorm, GELU MLP,
  biases, tied head).

Decision a reader may question: the builders are written here as source
text rather than rendered from ``templatelib/models`` templates. Library code
never imports the config package (CLAUDE.md), conversion must not depend on
a workspace, and the text is what lands in ``modeling_<name>.py`` anyway, so
writing it directly keeps that file readable and the converter fast. The
components are the shipped ones, so a converted directory trains and serves
like any other.
"""

from __future__ import annotations

LLAMA_FAMILY_BUILDER = '''\
import functools

from torch.nn import SiLU
from torch.nn.init import normal_, ones_, zeros_

from .causal_attention import CausalMultiheadAttention
from .causal_lm import DecoderParts
from .decoder_layers import PreLNLayer
from .feedforward import GatedMLP
from .init_weights import init_by_regex
from .input_encoder import InputEncoder
from .layer_stack import layer_stack
from .norms import RMSNorm
from .rotary_embeddings import RotaryEmbedding


def construct(
    *,
    vocab_size,
    hidden_size,
    intermediate_size,
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    num_hidden_layers,
    rms_norm_eps,
    rope_parameters,
    max_position_embeddings,
    attention_bias=False,
    qkv_bias=None,
    mlp_bias=False,
    qk_norm=False,
    sliding_window=None,
    attention_dropout=0.0,
    initializer_range=0.02,
):
    """Llama-family decoder; Mistral, Qwen2 and Qwen3 differ only in the flags."""
    norm_factory = functools.partial(RMSNorm, normalized_shape=hidden_size, eps=rms_norm_eps)
    rotary = RotaryEmbedding(
        head_dim=head_dim,
        rope_parameters=rope_parameters,
        max_position_embeddings=max_position_embeddings,
    )
    attention_factory = functools.partial(
        CausalMultiheadAttention,
        hidden_size=hidden_size,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        bias=attention_bias,
        qkv_bias=qkv_bias,
        dropout=attention_dropout,
        rotary=rotary,
        qk_norm_factory=(
            functools.partial(RMSNorm, normalized_shape=head_dim, eps=rms_norm_eps)
            if qk_norm
            else None
        ),
        sliding_window=sliding_window,
    )
    feedforward_factory = functools.partial(
        GatedMLP,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        activation_factory=SiLU,
        bias=mlp_bias,
    )
    layer_factory = functools.partial(
        PreLNLayer,
        attention_factory=attention_factory,
        feedforward_factory=feedforward_factory,
        norm_factory=norm_factory,
    )
    init_rules = {
        r"norm\\.weight$": ones_,
        r"bias$": zeros_,
        r"weight$": functools.partial(normal_, std=initializer_range),
    }
    return DecoderParts(
        input_encoder=InputEncoder(vocab_size=vocab_size, hidden_size=hidden_size),
        layers=layer_stack(layer_factory=layer_factory, num_hidden_layers=num_hidden_layers),
        output_norm=norm_factory(),
        init_weights=functools.partial(init_by_regex, rules=init_rules),
    )
'''

GPT2_BUILDER = '''\
import functools

from torch.nn import GELU, LayerNorm, ReLU
from torch.nn.init import normal_, ones_, zeros_

from .absolute_positions import LearnedPositionalEncoding
from .causal_attention import CausalMultiheadAttention
from .causal_lm import DecoderParts
from .decoder_layers import PreLNLayer
from .feedforward import MLP
from .init_weights import init_by_regex, scaled_normal_
from .input_encoder import InputEncoder
from .layer_stack import layer_stack

# Hugging Face's activation_function names -> modules.
ACTIVATIONS = {
    "gelu_new": functools.partial(GELU, approximate="tanh"),
    "gelu_pytorch_tanh": functools.partial(GELU, approximate="tanh"),
    "gelu": GELU,
    "relu": ReLU,
}


def construct(
    *,
    vocab_size,
    hidden_size,
    intermediate_size,
    num_attention_heads,
    num_hidden_layers,
    max_position_embeddings,
    layer_norm_eps,
    activation_function="gelu_new",
    embd_pdrop=0.0,
    resid_pdrop=0.0,
    attn_pdrop=0.0,
    initializer_range=0.02,
):
    """GPT-2 decoder: learned positions, pre-norm LayerNorm layers, GELU MLP, biases."""
    norm_factory = functools.partial(LayerNorm, normalized_shape=hidden_size, eps=layer_norm_eps)
    attention_factory = functools.partial(
        CausalMultiheadAttention,
        hidden_size=hidden_size,
        num_attention_heads=num_attention_heads,
        bias=True,
        dropout=attn_pdrop,
    )
    feedforward_factory = functools.partial(
        MLP,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        activation_factory=ACTIVATIONS[activation_function],
        bias=True,
    )
    layer_factory = functools.partial(
        PreLNLayer,
        attention_factory=attention_factory,
        feedforward_factory=feedforward_factory,
        norm_factory=norm_factory,
        dropout=resid_pdrop,
    )
    positions = LearnedPositionalEncoding(
        max_position_embeddings=max_position_embeddings, hidden_size=hidden_size
    )
    init_rules = {
        r"norm\\.weight$": ones_,
        r"bias$": zeros_,
        r"(o_proj|down_proj)\\.weight$": functools.partial(
            scaled_normal_, std=initializer_range, num_hidden_layers=num_hidden_layers
        ),
        r"weight$": functools.partial(normal_, std=initializer_range),
    }
    return DecoderParts(
        input_encoder=InputEncoder(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            positional_encoder=positions,
            dropout=embd_pdrop,
        ),
        layers=layer_stack(layer_factory=layer_factory, num_hidden_layers=num_hidden_layers),
        output_norm=norm_factory(),
        init_weights=functools.partial(init_by_regex, rules=init_rules),
    )
'''

#: Builder source by family name (the ``family`` of an architecture).
BUILDERS = {"llama": LLAMA_FAMILY_BUILDER, "gpt2": GPT2_BUILDER}
