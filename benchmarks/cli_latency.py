"""Wall time of everyday ``forgather`` commands, next to ``python -c pass``.

    .venv/bin/python benchmarks/cli_latency.py            # 15 runs of each
    .venv/bin/python benchmarks/cli_latency.py --runs 31

Each command runs as a fresh process (what a user waits for at the
terminal); the table shows the median and the minimum over the runs, and the
median minus the interpreter's own start-up (``python -c pass``, measured in
the same run, interleaved with the commands so machine load affects both
alike). ``ls -r (40 projects)`` walks a temporary workspace holding 40 copies
of ``examples/template_project``.

Aims (issue 3): ``ls`` and ``pp`` on an example project <= 0.10 s, ``ls -r``
over 40 projects <= 0.8 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TUTORIAL = EXAMPLES / "tutorials" / "project_composition"
FORGATHER = [sys.executable, "-m", "forgather.cli"]


def make_tree(root: Path, count: int) -> None:
    """A workspace with ``count`` projects copied from the template project."""
    from forgather.project import create_project, init_workspace

    init_workspace(root, name="bench")
    for i in range(count):
        create_project(root / f"group{i % 4}" / f"project_{i:02d}", name=f"Project {i}")


def time_once(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        make_tree(tree, 40)
        cases = {
            "python -c pass": ([sys.executable, "-c", "pass"], REPO),
            "forgather --help": ([*FORGATHER, "--help"], REPO),
            "ls (tutorial)": ([*FORGATHER, "ls"], TUTORIAL),
            "ls -r (examples/)": ([*FORGATHER, "ls", "-r"], EXAMPLES),
            "ls -r (40 projects)": ([*FORGATHER, "ls", "-r"], tree),
            "pp (tutorial)": ([*FORGATHER, "pp"], TUTORIAL),
            "targets (tutorial)": ([*FORGATHER, "targets"], TUTORIAL),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for cmd, cwd in cases.values():  # warm the file cache and .pyc files
            time_once(cmd, cwd)
        for _ in range(args.runs):
            for name, (cmd, cwd) in cases.items():
                times[name].append(time_once(cmd, cwd))

    base = statistics.median(times["python -c pass"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each")
    print(f"{'command':<24}{'median s':>10}{'min s':>9}{'minus python s':>16}")
    for name, samples in times.items():
        median = statistics.median(samples)
        extra = "" if name.startswith("python") else f"{median - base:16.3f}"
        print(f"{name:<24}{median:10.3f}{min(samples):9.3f}{extra}")


if __name__ == "__main__":
    main()
