"""How fast is the config language on a deep config?

Generates a 5-level inheritance chain (each level extends the previous one,
overrides blocks and adds its own) that renders to ~2,000 YAML lines and
~500 nodes, then prints the median time to load it (preprocess + render +
parse) with a fresh environment (cold: Jinja compiles every template) and
with a reused one (warm: compiled templates cached), and to build it.

    .venv/bin/python benchmarks/config_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from forgather.config import ConfigEnvironment
from forgather.config.nodes import Node
from forgather.config.traverse import walk

LEVELS = 5
SECTIONS_PER_LEVEL = 18


def section(level: int, index: int) -> str:
    """One block of ~25 lines: a call with an anchor, a factory, a partial and a dlist."""
    name = f"s{level}_{index}"
    return f"""
    [{name}]
{name}: !call:dict
    id: {index}
    level: {level}
    label: "{{{{ prefix }}}}-{name}"
    shared: &{name}_shared !call:fractions:Fraction [{index + 1}, {level + 2}]
    again: *{name}_shared
    item: {{a: 1, b: [1, 2]}}
    table: !dlist
        first: !call:int "{index}"
        second: 2
        third: ~
    maker: !partial:dict
        y: !var {{name: scale, default: 1.0}}
    -- for i in range(8)
    k{{{{ i }}}}: {{{{ i * {level} }}}}
    -- endfor
    note: "level {level}, section {index}"
    enabled: {"true" if index % 2 else "false"}
    ratio: {index / 7:.4f}
"""


def write_chain(root: Path) -> str:
    """level0 declares an empty block per later level; level k fills block ``level{k}``."""
    for level in range(LEVELS):
        if level == 0:
            lines = ["-- set prefix = 'bench'"]
            lines += [section(0, index) for index in range(SECTIONS_PER_LEVEL)]
            lines += [f"[level{k}]\n" for k in range(1, LEVELS)]
        else:
            lines = [f"-- extends 'level{level - 1}.yaml'", f"[level{level}]"]
            lines += [section(level, index) for index in range(SECTIONS_PER_LEVEL)]
            # Override the first sections of the parent level: the chain is really used.
            for index in range(3):
                lines.append(f"    [s{level - 1}_{index}]")
                lines.append(f"s{level - 1}_{index}: !call:dict {{overridden: {level}}}")
        (root / f"level{level}.yaml").write_text("\n".join(lines) + "\n")
    return f"level{LEVELS - 1}.yaml"


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        name = write_chain(root)
        warm_env = ConfigEnvironment([root])
        cfg = warm_env.load(name)
        lines = cfg.pp.count("\n")
        nodes = sum(1 for v in walk(cfg.graph) if isinstance(v.value, Node) and v.first)
        cfg.build()  # import fractions/collections once, outside the timing

        cold = median_time(lambda: ConfigEnvironment([root]).load(name), args.repeat)
        warm = median_time(lambda: warm_env.load(name), args.repeat)
        build = median_time(cfg.build, args.repeat)
        codegen = median_time(cfg.to_python, args.repeat)

    print(f"config: {LEVELS}-level inheritance chain, {lines} rendered lines, {nodes} nodes")
    print(
        f"load, cold environment : {cold * 1000:8.1f} ms  (preprocess + compile + render + parse)"
    )
    print(f"load, warm environment : {warm * 1000:8.1f} ms  (render + parse)")
    print(f"build (all targets)    : {build * 1000:8.1f} ms")
    print(f"to_python (all targets): {codegen * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
