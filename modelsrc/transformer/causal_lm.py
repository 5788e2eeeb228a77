"""Hugging Face model classes around a builder-made decoder.

A generated ``modeling_<name>.py`` holds a builder, ``construct(**hyperparameters)``
returning :class:`DecoderParts`, and two thin subclasses of the classes here:

    class TinyLlamaModel(CausalTransformerModel):
        config_class = TinyLlamaConfig
        build_parts = staticmethod(construct)

    class TinyLlamaForCausalLM(CausalTransformerForCausalLM):
        config_class = TinyLlamaConfig
        base_model_class = TinyLlamaModel

The base model (what ``AutoModel`` builds) holds ``input_encoder``, ``layers``
(one ``nn.ModuleList``) and ``norm`` as direct children and runs
encoder -> layers -> norm; the causal LM adds a top-level ``lm_head``, tied
to the token embedding when ``config.tie_word_embeddings``.

Decision a reader may question: the builder is called with the values of its
own parameters read from the config (``config.hidden_size`` for
``construct(hidden_size=...)``), so ``config.json`` is the single source of
the hyperparameters: edit it and ``from_pretrained`` builds the edited model.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .attention_masks import causal_attention_mask, default_position_ids
from .causal_loss import causal_lm_loss, linear_cross_entropy
from .layer_stack import default_checkpoint, run_layers

# transformers 5.2x renamed the KV cache argument and output field from
# `past_key_values` to `cache`; the old name now warns and is announced for
# removal. A generated model must run on both sides of the rename (vLLM pins an
# older 5.x), so forward() accepts either name and outputs use whichever field
# the installed transformers declares.
CACHE_FIELD = (
    "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"
)


@dataclass
class DecoderParts:
    """What a builder returns: the modules of a decoder-only base model.

    Args:
        input_encoder: Maps token ids (or embeddings) and positions to hidden
            states; must have an ``embed_tokens`` embedding.
        layers: The decoder layers (see ``layer_stack.py``).
        output_norm: Norm after the last layer; None for post-LN stacks.
        init_weights: ``init_weights(name, param)`` initialising one parameter
            (see ``init_weights.py``); None uses transformers' generic init.
        activation_checkpointing: Recompute layer activations in backward.
    """

    input_encoder: nn.Module
    layers: nn.ModuleList
    output_norm: nn.Module | None = None
    init_weights: Callable[[str, torch.Tensor], None] | None = None
    activation_checkpointing: bool = False


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The dtype linear layers produce from ``tensor``: autocast's when it is on, else its own."""
    if tensor.is_floating_point() and torch.is_autocast_enabled(tensor.device.type):
        return torch.get_autocast_dtype(tensor.device.type)
    return tensor.dtype


def builder_arguments(builder: Callable, config) -> dict:
    """The config values named by ``builder``'s parameters."""
    names = inspect.signature(builder).parameters
    return {name: getattr(config, name) for name in names if hasattr(config, name)}


class CausalTransformerPreTrainedModel(PreTrainedModel):
    """Flags and weight initialisation shared by the base model and the LM."""

    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # Not a transformers flag: an implementation registered under its own name gets the
    # masks of the built-in one whose mask function it registers (attention_masks.mask_kind).
    masks_follow_registered_implementations = True
    _skip_keys_device_placement = ["cache", "past_key_values"]

    def _parameter_names(self, module: nn.Module) -> str | None:
        names = self.__dict__.get("_module_names")
        if names is None or module not in names:
            names = {m: n for n, m in self.named_modules()}
            self.__dict__["_module_names"] = names
        return names.get(module)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        init_fn = self._weight_init_fn()
        prefix = self._parameter_names(module) if init_fn is not None else None
        if init_fn is None or prefix is None:
            super()._init_weights(module)
            return
        for name, param in module.named_parameters(recurse=False):
            if getattr(param, "_is_hf_initialized", False):
                continue  # loaded from a checkpoint or tied to a loaded weight
            init_fn(f"{prefix}.{name}" if prefix else name, param)

    def _weight_init_fn(self) -> Callable[[str, torch.Tensor], None] | None:
        raise NotImplementedError


class CausalTransformerModel(CausalTransformerPreTrainedModel):
    """Decoder-only base model: input encoder -> layers -> final norm.

    Subclasses set ``build_parts`` (the builder) and ``config_class``.
    """

    build_parts: Callable[..., DecoderParts]

    def __init__(self, config) -> None:
        super().__init__(config)
        parts = type(self).build_parts(**builder_arguments(type(self).build_parts, config))
        self.input_encoder = parts.input_encoder
        self.layers = parts.layers
        self.norm = parts.output_norm if parts.output_norm is not None else nn.Identity()
        self.gradient_checkpointing = parts.activation_checkpointing
        # A plain attribute, not a module: the init rules are not part of the model's state.
        self.__dict__["_init_fn"] = parts.init_weights
        self._no_split_modules = sorted({type(layer).__name__ for layer in self.layers})
        # vLLM's Transformers backend reads `module.config` on every attention module
        # (the ones with a layer_idx) to route them through its own attention.
        for module in self.layers.modules():
            if hasattr(module, "layer_idx"):
                module.__dict__["config"] = config  # plain attribute, not a submodule
        # One rotary module shared by every layer (as the templates build it): its cos/sin
        # tables are computed once per forward here instead of once per layer.
        rotaries = {
            id(module.rotary): module.rotary
            for module in self.layers.modules()
            if hasattr(getattr(module, "rotary", None), "tables")
        }
        self.__dict__["_shared_rotary"] = rotaries.popitem()[1] if len(rotaries) == 1 else None
        self.post_init()

    def _weight_init_fn(self) -> Callable[[str, torch.Tensor], None] | None:
        return self.__dict__.get("_init_fn")

    def _checkpoint_fn(self) -> Callable[..., torch.Tensor]:
        """The function that checkpoints a layer: the one ``activation_checkpointing_enable``
        gave (with its kwargs, e.g. a trainer's ``context_fn``), else non-reentrant."""
        return getattr(self, "_gradient_checkpointing_func", None) or default_checkpoint

    def get_input_embeddings(self) -> nn.Module:
        # Under vLLM's pipeline parallelism a stage may hold a placeholder instead.
        return getattr(self.input_encoder, "embed_tokens", self.input_encoder)

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.input_encoder.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        past_key_values=None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        """Run the decoder.

        Args:
            input_ids: (B, T) token ids; or give ``inputs_embeds`` (B, T, D).
            attention_mask: (B, S) with 1 for real tokens, 0 for padding, where
                S counts cached tokens too.
            position_ids: (B|1, T); default: continue from the cache, skipping
                padding. Restarting at 0 inside a row starts a new document
                that cannot see the previous ones (packed sequences).
            cache: A transformers ``Cache``; created when ``use_cache``.
            use_cache: Return the cache; default ``config.use_cache`` outside training.
            output_hidden_states: Also return each layer's input and the final output.
            past_key_values: The name transformers before the rename uses for ``cache``.
            return_dict: False returns a tuple.
            **kwargs: Passed to the attention kernel.

        Returns:
            ``BaseModelOutputWithPast`` with ``last_hidden_state`` (B, T, D).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        # Options transformers may pass that no layer needs.
        for unused in ("cache_position", "output_attentions", "num_items_in_batch"):
            kwargs.pop(unused, None)
        tokens = input_ids if inputs_embeds is None else inputs_embeds
        batch, seq_len = tokens.shape[:2]
        device = tokens.device
        if use_cache is None:
            use_cache = getattr(self.config, "use_cache", True) and not self.training
        if cache is None:
            cache = past_key_values
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_length = cache.get_seq_length() if cache is not None else 0
        given_positions = position_ids
        if position_ids is None:
            position_ids = default_position_ids(attention_mask, past_length, seq_len, device)
        elif position_ids.dim() == 1:
            position_ids = given_positions = position_ids[None]  # (T,) -> (1, T): one flattened row

        hidden_states = self.input_encoder(tokens, position_ids)
        attn_implementation = self.config._attn_implementation or "eager"
        mask = causal_attention_mask(
            attn_implementation,
            batch,
            seq_len,
            past_length,
            attention_mask,
            given_positions,  # default positions never restart a document
            hidden_states.dtype,
            device,
        )
        rotary = self.__dict__.get("_shared_rotary")
        if rotary is not None:
            kwargs["rotary_tables"] = rotary.tables(
                position_ids, compute_dtype(hidden_states), device
            )
        all_hidden_states = [] if output_hidden_states else None
        hidden_states = run_layers(
            self.layers,
            hidden_states,
            checkpoint_fn=self._checkpoint_fn()
            if self.gradient_checkpointing and self.training
            else None,
            all_hidden_states=all_hidden_states,
            attention_mask=mask,
            position_ids=position_ids,
            past_key_values=cache,
            attn_implementation=attn_implementation,
            **kwargs,
        )
        hidden_states = self.norm(hidden_states)
        if all_hidden_states is not None:
            all_hidden_states.append(hidden_states)
        output = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden_states) if all_hidden_states is not None else None,
            **{CACHE_FIELD: cache if use_cache else None},
        )
        return output if return_dict is not False else output.to_tuple()


class CausalTransformerForCausalLM(CausalTransformerPreTrainedModel, GenerationMixin):
    """The base model plus a language-model head; supports ``generate()``.

    Subclasses set ``base_model_class`` and ``config_class``.
    """

    base_model_class: type[CausalTransformerModel]
    _tied_weights_keys = {"lm_head.weight": "model.input_encoder.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config) -> None:
        super().__init__(config)
        self.model = self.base_model_class(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _weight_init_fn(self) -> Callable[[str, torch.Tensor], None] | None:
        return self.model._weight_init_fn()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def _fusable_head(self, logits_to_keep: int | torch.Tensor) -> bool:
        """All positions, and a plain bias-free linear head on plain tensors."""
        head = self.lm_head
        return (
            isinstance(logits_to_keep, int)
            and logits_to_keep == 0
            and type(head) is nn.Linear
            and head.bias is None
            and type(head.weight.data) is torch.Tensor  # not a DTensor shard
        )

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        past_key_values=None,
        skip_logits: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        """Logits for every position (or the last ``logits_to_keep``), and the loss given ``labels``.

        With ``labels`` in training mode (and ``logits_to_keep`` 0), outside
        ``torch.compile``, the loss comes from :func:`linear_cross_entropy` on the final hidden states,
        which never materialises the (B, T, V) logits, and ``logits`` is None:
        a training step needs only the loss. In eval mode logits are returned
        (generation, evaluation metrics). ``skip_logits`` overrides the choice
        (the name Liger-Kernel's fused loss uses for the same switch).

        Args:
            labels: (B, T) unshifted targets, -100 where ignored.
            logits_to_keep: 0 keeps all positions; N keeps the last N; a
                tensor selects positions.
            skip_logits: True computes the loss without logits (needs
                ``labels``); False always returns logits; None (default):
                skip them in training mode when ``labels`` are given, except
                when compiled.
            Others: as :meth:`CausalTransformerModel.forward`.

        Returns:
            ``CausalLMOutputWithPast`` with ``logits`` (B, T', V) or None, and ``loss``.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if skip_logits is None:
            # Compiled code takes the loss from logits, which Inductor fuses: traced by
            # torch 2.11 on CUDA, the chunked loss's gradients came out as zeros
            # (tests/gpu/test_cuda.py).
            skip_logits = labels is not None and self.training and not torch.compiler.is_compiling()
        if skip_logits and labels is None:
            raise ValueError("skip_logits=True needs labels")
        if skip_logits and self._fusable_head(logits_to_keep):
            loss = linear_cross_entropy(
                hidden_states, self.lm_head.weight, labels, num_items_in_batch=num_items_in_batch
            )
            logits = None
        else:
            if isinstance(logits_to_keep, int):
                keep = slice(-logits_to_keep, None) if logits_to_keep else slice(None)
            else:
                keep = logits_to_keep
            logits = self.lm_head(hidden_states[:, keep, :])
            loss = None
            if labels is not None:
                loss = causal_lm_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
        )
        return output if return_dict is not False else output.to_tuple()
