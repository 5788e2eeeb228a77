"""Write ``constraints.txt``: the exact version of every package ``make setup`` installs.

    make lock                     # what `make lock` runs, in a throwaway venv
    python scripts/lock.py --torch 2.13.0 --output constraints.txt
    python scripts/lock.py --compare constraints.txt   # this venv against the lock

pip's own resolver picks the newest versions that ``pyproject.toml`` allows
(with the ``dev`` extra) as if nothing were installed (``--dry-run
--ignore-installed --report``); every package of that resolution, direct or
transitive, is written as ``name==version``. ``make setup`` then installs with
``-c constraints.txt``, so a fresh clone gets exactly what CI tested.

Decision a reader may question: a constraints file, not a pylock.toml or a
hashed requirements file, because pip applies constraints to an editable
install of the project itself (``-e '.[dev]'``) and to pip's own upgrade, and
a fresh clone needs nothing but pip. torch is the one version given by hand:
only the CPU build on this machine's disk is wanted (see the README).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = """\
# The lock: every package `make setup` installs, direct and transitive, at the
# version CI tested. Made by `make lock` (scripts/lock.py) with pip's resolver
# from the ranges in pyproject.toml; do not edit by hand. torch stays at the
# CPU build ({torch}) so that no multi-GB CUDA build is pulled.
"""


def resolve(torch_version: str) -> dict[str, str]:
    """Package name -> version that pip would install for ``-e '.[dev]'`` plus pip itself."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--dry-run",
                "--ignore-installed", "--report", str(report),
                "pip", f"torch=={torch_version}", "-e", f"{REPO}[dev]",
            ],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    versions = {}
    for item in installs:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name.lower() != "forgather":
            versions[name.lower()] = version
    return versions


def read_lock(path: str) -> dict[str, str]:
    """Package name -> version from a lock written by :func:`main`."""
    versions = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            versions[name.strip().lower()] = version.strip()
    return versions


def compare(lock_path: str) -> None:
    """Print every installed package whose version differs from the lock (the `make test-latest` report)."""
    from importlib.metadata import distributions

    installed = {d.metadata["Name"].lower(): d.version for d in distributions()}
    installed.pop("forgather", None)
    locked = read_lock(lock_path)
    changes = [
        f"  {name}: {locked.get(name, '-')} -> {installed.get(name, '-')}"
        for name in sorted(set(installed) | set(locked))
        if installed.get(name) != locked.get(name)
    ]
    print(f"installed {len(installed)} packages; differences from {lock_path}:")
    print("\n".join(changes) if changes else "  none: the lock is the newest allowed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", help="the torch version to lock (the CPU build)")
    parser.add_argument("--output", default=str(REPO / "constraints.txt"))
    parser.add_argument(
        "--compare", metavar="LOCK", help="report this venv's differences from LOCK"
    )
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return 0
    if not args.torch:
        parser.error("--torch is required to write a lock")
    versions = resolve(args.torch)
    lines = [f"{name}=={version}" for name, version in sorted(versions.items())]
    Path(args.output).write_text(HEADER.format(torch=args.torch) + "\n".join(lines) + "\n")
    print(f"locked {len(lines)} packages in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
