"""Process wall time of ``forgather pp``, ``ls -r`` and ``model construct``,
next to the aims of issue 18 and, with ``--original``, the original Forgather.

    .venv/bin/python benchmarks/cli_speed.py                      # ours
    .venv/bin/python benchmarks/cli_speed.py --original /work/orig --runs 9

Each figure is the MINIMUM wall time over ``--runs`` fresh processes (what a
user waits for at the terminal; the minimum because other processes on a
shared machine only ever add time). Runs of all commands are interleaved, so
load drifts affect each alike; the load average is printed with the table.

* ``pp``: the tiny_llama tutorial's default config (ours:
  ``examples/tutorials/tiny_llama``; the original: the same tutorial in its
  checkout). Ours twice: ``pp`` as a user's second run finds it, its text
  replayed from the cache (nothing changed since the first), and
  ``pp --no-cache``, rendered afresh (what the first run, or a run after an
  edit, costs). The script checks that both print the same text.
* ``ls -r --no-cache``: a temporary workspace of 40 projects, copies of the
  example projects cycled in order (ours: ``examples/``; the original: its
  tutorials that use the root workspace), every config rendered (the listing cache
  is off; the original has none). The number of configs listed and of
  ``PARSE ERROR`` lines is printed, so a broken copy cannot pass as fast.
* ``model construct``: the 4.4M Llama preset (``examples/models``,
  ``-t tiny_llama.yaml``), on the CPU. The original's equivalent
  (``examples/models/llama -t 4M.yaml``) is not run: it does not build under
  the transformers this venv has.

The ``floor`` column is a process that only imports the libraries the
command cannot do without (Jinja2, PyYAML and argparse; for ``model
construct`` also torch and transformers' ``PreTrainedModel``), timed alike:
what is above it is Forgather's own import and work.

Before the timed runs one run of each command fills the caches a user's
second run finds filled: ``.pyc`` files (``PYTHONDONTWRITEBYTECODE`` is
dropped; the original runs from a temporary copy of its ``src/`` so its
checkout is not written to) and Jinja's compiled templates (ours keeps them
under ``$FORGATHER_CACHE_DIR``, here a temporary directory).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OURS = [sys.executable, "-m", "forgather.cli"]
ORIGINAL = [
    sys.executable,
    "-c",
    "import sys; from forgather.cli import main; sys.argv=['forgather', *sys.argv[1:]]; "
    "sys.exit(main())",
]
AIMS = {"pp": 0.10, "pp --no-cache": 0.10, "ls -r": 0.8, "model construct": 1.5}
#: What no Forgather command of the row can start faster than: importing the
#: libraries it needs (a process that only imports them, timed alike).
FLOORS = {
    "pp": "import argparse, json, hashlib",
    "pp --no-cache": "import jinja2.sandbox, yaml, argparse",
    "model construct": "import torch, jinja2.sandbox, yaml, argparse; "
    "from transformers.modeling_utils import PreTrainedModel",
}
PROJECTS = 40
OUR_EXAMPLES = [
    "template_project",
    "tutorials/project_composition",
    "tutorials/tiny_llama",
    "tutorials/finetune_chat",
    "tiny_experiments/attention",
    "models",
    "data/train_text",
]
# The original's tutorials that are projects using the root workspace (its tiny
# experiments need their own intermediate workspace).
ORIGINAL_EXAMPLES = [
    "tutorials/project_composition",
    "tutorials/projects_overview",
    "tutorials/tiny_llama",
]
_CONFIG_LINE = re.compile(r"^    (?:\* |  )?\S", re.M)


def copy_projects(src_root: Path, names: list[str], workspace_src: Path, forgather_dir: Path,
                  dest: Path) -> None:  # fmt: skip
    """A workspace at ``dest``: its ``forgather_workspace`` (``ns.forgather_dir``
    pointing at the checkout) and ``PROJECTS`` copies of the named projects."""
    shutil.copytree(workspace_src, dest / "forgather_workspace")
    (dest / "forgather_workspace" / "base_directories.yaml").write_text(
        f"-- set ns.forgather_dir = {str(forgather_dir)!r}\n"
    )
    ignore = shutil.ignore_patterns("output_models", "__pycache__", "tmp", "custom_models")
    for i in range(PROJECTS):
        name = names[i % len(names)]
        shutil.copytree(src_root / name, dest / f"p{i:02d}_{Path(name).name}", ignore=ignore)


def run_once(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[-4:])} in {cwd} failed:\n" + "\n".join(tail))
    return elapsed, done.stdout


def listing_counts(text: str) -> str:
    configs = len(_CONFIG_LINE.findall(text))
    errors = text.count("PARSE ERROR")
    return f"{configs} configs, {errors} PARSE ERROR"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (default: 7)")
    parser.add_argument("--original", type=Path, help="a checkout of the original Forgather")
    parser.add_argument("--skip-model", action="store_true", help="leave out model construct")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(FORGATHER_CACHE_DIR=str(tmp / "cache"), HF_HUB_OFFLINE="1")
        ours_ws = tmp / "ours"
        copy_projects(REPO / "examples", OUR_EXAMPLES, REPO / "forgather_workspace", REPO, ours_ws)
        cases: dict[tuple[str, str], tuple[list[str], Path, dict]] = {
            ("python -c pass", "ours"): ([sys.executable, "-c", "pass"], REPO, env),
            ("pp", "floor"): ([sys.executable, "-c", FLOORS["pp"]], REPO, env),
            ("pp", "ours"): ([*OURS, "pp"], REPO / "examples/tutorials/tiny_llama", env),
            ("pp --no-cache", "floor"): (
                [sys.executable, "-c", FLOORS["pp --no-cache"]],
                REPO,
                env,
            ),
            ("pp --no-cache", "ours"): (
                [*OURS, "pp", "--no-cache"],
                REPO / "examples/tutorials/tiny_llama",
                env,
            ),
            ("ls -r", "ours"): ([*OURS, "ls", "-r", "--no-cache"], ours_ws, env),
        }
        if not args.skip_model:
            model = [*OURS, "-t", "tiny_llama.yaml", "model", "construct", "--device", "cpu"]
            cases["model construct", "ours"] = (model, REPO / "examples/models", env)
            floor = [sys.executable, "-c", FLOORS["model construct"]]
            cases["model construct", "floor"] = (floor, REPO, env)
        if args.original is not None:
            original = args.original.resolve()
            src = tmp / "original_src"
            shutil.copytree(original / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
            orig_env = {**env, "PYTHONPATH": str(src)}
            orig_ws = tmp / "original"
            copy_projects(
                original / "examples",
                ORIGINAL_EXAMPLES,
                original / "forgather_workspace",
                original,
                orig_ws,
            )
            tiny = original / "examples/tutorials/tiny_llama"
            cases["pp", "original"] = ([*ORIGINAL, "pp"], tiny, orig_env)
            # ls -r is compared on the original's 40 projects: the same configs for both.
            cases["ls -r (original's projects)", "ours"] = (
                [*OURS, "ls", "-r", "--no-cache"],
                orig_ws,
                env,
            )
            cases["ls -r (original's projects)", "original"] = (
                [*ORIGINAL, "ls", "-r"],
                orig_ws,
                orig_env,
            )

        outputs = {}
        for key, (cmd, cwd, case_env) in cases.items():  # fill .pyc and template caches
            outputs[key] = run_once(cmd, cwd, case_env)[1]
        times: dict[tuple[str, str], list[float]] = {key: [] for key in cases}
        for _ in range(args.runs):
            for key, (cmd, cwd, case_env) in cases.items():
                elapsed, outputs[key] = run_once(cmd, cwd, case_env)  # pp: now replayed
                times[key].append(elapsed)
        load = os.getloadavg()

    best = {key: min(samples) for key, samples in times.items()}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; minimum of {args.runs} runs each"
    )
    print(f"python -c pass: {best['python -c pass', 'ours']:.3f} s (interpreter start-up)")
    header = f"{'command':<30}{'aim s':>7}{'ours s':>9}{'floor s':>9}"
    if args.original is not None:
        header += f"{'original s':>12}{'ours/orig':>11}"
    print(header)
    rows = ["pp", "pp --no-cache", "ls -r", "model construct", "ls -r (original's projects)"]
    for row in rows:
        if (row, "ours") not in best:
            continue
        aim = AIMS.get(row)
        line = f"{row:<30}{'' if aim is None else f'{aim:.2f}':>7}{best[row, 'ours']:9.3f}"
        line += f"{best[row, 'floor']:9.3f}" if (row, "floor") in best else f"{'':>9}"
        if (row, "original") in best:
            ratio = best[row, "ours"] / best[row, "original"]
            line += f"{best[row, 'original']:12.3f}{ratio:10.2f}x"
        elif args.original is not None:
            line += f"{'-':>12}"  # not run (model construct) or other inputs (ls -r)
        print(line)
    print("floor: a process importing only the libraries the command needs:")
    for row, code in FLOORS.items():
        print(f"  {row}: python -c {code!r}")
    same = outputs["pp", "ours"] == outputs["pp --no-cache", "ours"]
    print(f"pp (replayed) and pp --no-cache print the same text: {'yes' if same else 'NO'}")
    print(f"ls -r, ours: {listing_counts(outputs['ls -r', 'ours'])}")
    if args.original is not None:
        for who in ("ours", "original"):
            counts = listing_counts(outputs["ls -r (original's projects)", who])
            print(f"ls -r of the original's projects, {who}: {counts}")


if __name__ == "__main__":
    main()
