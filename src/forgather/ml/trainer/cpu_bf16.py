"""bf16 matmuls as float32 GEMMs on CPUs that only emulate bf16.

On a CPU without AVX512-BF16 or AMX, PyTorch's bf16 GEMM converts inside its
kernel and runs 2-3x slower than the float32 GEMM of the same shape (measured
on a 2-core Xeon: (16384 x 256) @ (256 x 768) takes 155 ms in bf16, 72 ms
converted to float32 and back). Converting the bf16 operands to float32
outside the kernel loses nothing: a product of two bf16 numbers is exact in
float32, and the bf16 GEMM accumulates in float32 too. So the result equals
the bf16 GEMM's up to the order of the summation, and is then rounded to bf16
as autocast's would be.

`Float32Gemms` is a torch-function mode the trainer enters around the
forward of a training step, inside bf16 autocast, when `bf16_gemm` resolves to
"float32" (the default on such CPUs). A mode sees the calls made from Python
while it is entered, not the backward (autograd runs that), so:

- `F.linear` under CPU bf16 autocast (whose backward would be two more bf16
  GEMMs) becomes `Bf16Linear`: it saves the bf16 operands autocast would save,
  and computes forward and backward as float32 GEMMs, rounding each result to
  bf16 as the bf16 kernels do;
- a matmul (`F.linear`, `@`, `mm`, `addmm`, `bmm`, `matmul`) of bf16 CPU
  tensors that autograd does not record (the forward of a custom autograd
  function, a no-grad forward) runs as a float32 GEMM, rounded to bf16.

A custom autograd function's own backward is out of its reach: Forgather's
generated models make the same choice in theirs (`saved_activations.matmul`).
So is the recomputation of activation checkpointing, which runs in the
backward with no mode entered: `recompute_context` is the checkpoint's
`context_fn` that enters the mode there when the forward ran under it (else
the recomputed linears save other tensors than the forward's and
`torch.utils.checkpoint` stops the step).

Anything else (other dtypes, other devices, tensor subclasses such as DTensor,
matmuls autograd records outside autocast) runs as called.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

BF16 = torch.bfloat16


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    # A torch without these private checks: assume native, which changes nothing.
    return any(getattr(torch.cpu, name, lambda: True)() for name in checks)


def resolve_bf16_gemm(setting: str, device: torch.device) -> str:
    """`TrainingArguments.bf16_gemm` for this run: "float32" or "native".

    "auto" is "float32" on a CPU without native bf16, "native" elsewhere
    (`TrainingArguments` has checked the value).
    """
    if setting != "auto":
        return setting
    return "float32" if device.type == "cpu" and not cpu_has_native_bf16() else "native"


#: Elements of the float32 copies made at a time: the copies stay a few MiB.
GEMM_CHUNK_ELEMENTS = 1 << 20


def float32_gemm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None):
    """``a @ b (+ bias)`` of 2-D bf16 matrices computed in float32, rounded to bf16.

    The operands are converted a block of rows (or, for a long inner dimension,
    of the inner dimension) at a time, so the float32 copies hold a few MiB
    however large the matrices are: peak memory stays near bf16 autocast's.
    Under ``torch.compile`` (Dynamo traces the mode) whole tensors are converted:
    the block loops would be unrolled into the graph, and Inductor plans the
    copies itself (compiling a 4-block MLP took 83 s with blocks, 13 s without).
    """
    bias32 = None if bias is None else bias.to(BF16).float()
    if torch.compiler.is_compiling():
        out = a.float() @ b.float()
        return (out if bias32 is None else out + bias32).to(BF16)
    rows, inner = a.shape
    cols = b.shape[1]
    if rows >= inner:  # chunk the rows of the result
        out = torch.empty(rows, cols, dtype=BF16, device=a.device)
        b32 = b.float()
        step = max(1, GEMM_CHUNK_ELEMENTS // max(inner, cols))
        for start in range(0, rows, step):
            part = a[start : start + step].float() @ b32
            out[start : start + step] = part if bias32 is None else part.add_(bias32)
        return out
    # A long inner dimension (a weight gradient): sum float32 products over blocks of it.
    total = torch.zeros(rows, cols, dtype=torch.float32, device=a.device)
    step = max(1, GEMM_CHUNK_ELEMENTS // max(rows, cols))
    for start in range(0, inner, step):
        total.addmm_(a[:, start : start + step].float(), b[start : start + step].float())
    return (total if bias32 is None else total.add_(bias32)).to(BF16)


class Bf16Linear(torch.autograd.Function):
    """`F.linear` under bf16 autocast, computed with float32 GEMMs.

    Saves the bf16 input and weight (what autocast's linear saves); gradients
    are rounded to bf16 (the bf16 GEMM's output) and returned in each input's
    own dtype, as autocast's casts would.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        x16, w16 = x.to(BF16), weight.to(BF16)
        with torch.autocast("cpu", enabled=False):
            out = float32_gemm(x16.flatten(0, -2), w16.T, bias)
        ctx.save_for_backward(x16, w16)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x16, w16 = ctx.saved_tensors
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        grad_x = grad_w = grad_b = None
        with torch.autocast("cpu", enabled=False):
            g = grad_out.to(BF16).flatten(0, -2)  # (N, out)
            if ctx.needs_input_grad[0]:
                grad_x = float32_gemm(g, w16).to(x_dtype).view(x16.shape)
            if ctx.needs_input_grad[1]:
                grad_w = _weight_gradient(g, x16.flatten(0, -2)).to(w_dtype)
            if ctx.needs_input_grad[2]:
                grad_b = g.float().sum(0).to(BF16).to(b_dtype)
        return grad_x, grad_w, grad_b


def _weight_gradient(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``g.T @ x`` as a float32 GEMM, rounded to bf16.

    Compiled, it is computed as ``(x.T @ g).T``: the same product, but the
    float32 copy of ``x`` is then not the forward's one, which AOT autograd
    would otherwise keep for the backward in place of the bf16 ``x`` (twice
    the memory; llama_4m bf16 compiled: +390 MiB peak RSS).
    """
    if torch.compiler.is_compiling():
        return float32_gemm(x.T, g).T
    return float32_gemm(g.T, x)


_GEMMS = {
    F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
    torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm, torch.addmm, torch.Tensor.addmm,
}  # fmt: skip


# The GEMMs that `float32_gemm` computes block by block when given two matrices.
_TWO_MATRICES = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm}  # fmt: skip


def _plain_cpu(tensor) -> bool:
    return type(tensor) in (torch.Tensor, torch.nn.Parameter) and tensor.device.type == "cpu"


class Float32Gemms(TorchFunctionMode):
    """Runs CPU bf16 matmuls as float32 GEMMs (see the module docstring)."""

    _entered = threading.local()  # how deep this thread is inside the mode

    def __enter__(self):
        Float32Gemms._entered.depth = self.active() + 1
        return super().__enter__()

    def __exit__(self, *exc):
        Float32Gemms._entered.depth -= 1
        return super().__exit__(*exc)

    @staticmethod
    def active() -> int:
        """How many times this thread has entered the mode (0: not in it)."""
        return getattr(Float32Gemms._entered, "depth", 0)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _GEMMS:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if tensors and all(_plain_cpu(t) for t in tensors):
                if func is F.linear and _autocast_bf16():
                    return Bf16Linear.apply(*_linear_args(args, kwargs))
                if not _recorded(tensors) and all(t.dtype == BF16 for t in tensors):
                    return _float32_gemm(func, args, kwargs)
        return func(*args, **kwargs)


def recompute_context():
    """`torch.utils.checkpoint`'s `context_fn` (non-reentrant): nothing around the
    forward; around its recomputation, the mode if the forward ran under it.

    Compiled, the checkpoint is traced into the graph (its recomputation with it) and
    `context_fn` must give two dispatch modes: selective checkpointing that recomputes
    every operator, which is what a plain checkpoint does.
    """
    if torch.compiler.is_compiling():
        from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

        return create_selective_checkpoint_contexts(
            lambda ctx, op, *args, **kwargs: CheckpointPolicy.PREFER_RECOMPUTE
        )
    recompute = Float32Gemms() if Float32Gemms.active() else contextlib.nullcontext()
    return contextlib.nullcontext(), recompute


def _autocast_bf16() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == BF16


def _recorded(tensors: list[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _linear_args(args, kwargs):
    x, weight, *rest = args
    bias = rest[0] if rest else kwargs.get("bias")
    return x, weight, bias


def _float32_gemm(func, args, kwargs):
    """`func` on its bf16 tensors as float32 GEMMs, rounded back to bf16."""
    out = kwargs.pop("out", None)
    with torch.autocast("cpu", enabled=False):
        if func in _TWO_MATRICES and not kwargs and all(a.dim() == 2 for a in args):
            result = float32_gemm(*args)
        else:  # batched, broadcast or scaled forms: whole float32 copies
            args32 = [a.float() if isinstance(a, torch.Tensor) else a for a in args]
            result = func(*args32, **kwargs).to(BF16)
    if out is not None:
        return out.copy_(result)
    return result
