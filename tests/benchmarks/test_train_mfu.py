"""benchmarks/train_mfu.py end to end on a CPU: the 4.4M preset, batch 4 of 16 blocks, one
warm-up, two timed and one profiled step on each side (one epoch: every block trained on
once), Forgather's Trainer against Hugging Face's Llama in a plain loop.

The figures themselves (GPU, llama_1b) are in docs/performance.md; this checks that the
script runs, that both sides train the same architecture, and what it writes.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.benchmarks.conftest import load_benchmark


@pytest.fixture(scope="module")
def train_mfu():
    return load_benchmark("train_mfu")


@pytest.fixture
def one_thread():
    """One intra-op thread: on a loaded 2-core machine two threads run many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cpu_smoke_run_reports_both_sides(train_mfu, tmp_path, one_thread):
    argv = ["--preset", "llama_4m", "--device", "cpu", "--steps", "2", "--warmup", "1",
            "--profile-steps", "1", "--batch-size", "4", "--seq-len", "32", "--out", str(tmp_path)]  # fmt: skip
    results = train_mfu.main(argv)

    ours, hf = results["sides"]["forgather"], results["sides"]["hf"]
    # The same architecture on both sides: llama_4m has 4,458,752 parameters.
    assert ours["parameters"] == hf["parameters"] == 4_458_752
    assert ours["flops_per_token"] == hf["flops_per_token"]
    for side in (ours, hf):
        assert side["batch"] == 4
        assert side["tokens_per_s"] > 0 and side["mfu_measured_peak"] > 0
        # Random tokens over a 2,048 vocabulary: the loss starts near ln(2048).
        assert abs(side["mean_loss"] - math.log(2048)) < 1.0
        before, after = side["probe_loss"]  # both sides train: the loss over the blocks falls
        assert abs(before - math.log(2048)) < 1.0 and after < before
        assert (
            "aten::"
            in (tmp_path / f"profile_{'forgather' if side is ours else 'hf'}.txt").read_text()
        )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["ratio_forgather_over_hf"] == pytest.approx(results["ratio_forgather_over_hf"])
    assert saved["spec_peak_flops"] is None  # no datasheet peak for a CPU
    assert "table" not in saved["sides"]["forgather"]["profile"]


def test_flops_per_token_counts_the_head_but_not_the_embedding(train_mfu):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=8, tie_word_embeddings=False)  # fmt: skip
    model = LlamaForCausalLM(config)
    embedding = 100 * 16
    n = sum(p.numel() for p in model.parameters()) - embedding
    # 12 * layers * (heads * head_dim) * seq_len for attention scores and values.
    assert train_mfu.flops_per_token(model, seq_len=10) == 6 * n + 12 * 2 * 16 * 10


@pytest.mark.parametrize(
    ("kernel", "kind"),
    [
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1", "matmul"),
        ("nvjet_tst_192x192_64x4_2x1_v_bz_coopB_TNN", "matmul"),
        ("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits>", "attention"),
        ("triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_0", "fused elementwise (triton)"),
        ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer, gradient norm"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", "eager elementwise / reduce"),
        ("Memcpy HtoD (Pinned -> Device)", "copy"),
    ],
)  # fmt: skip
def test_kernel_kinds(train_mfu, kernel, kind):
    assert train_mfu.kernel_kind(kernel) == kind
