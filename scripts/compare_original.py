"""Render every example config of an original-Forgather checkout with both
engines and compare the YAML object structure of the two outputs.

    .venv/bin/python scripts/compare_original.py /path/to/original [--only SUBSTR] [--show N]

The original is run from its own ``src`` (``PYTHONPATH``) with this venv's
interpreter, as an oracle for behaviour; nothing of it is imported here. Two
renders are "the same" when their parsed YAML agrees after timestamps, and
the versions block in the header comments, are set aside: comments are not
part of the object structure, so only values are compared. Mappings keep
duplicate keys (``.define:`` repeats) in order, and tags are compared by name.

Decision a reader may question: aliases are expanded, not compared as
anchors, because two renders that name their anchors differently but build
the same graph are the same config for a user.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T_ ]\d{2}[-:]\d{2}[-:]\d{2}(\.\d+)?([+-]\d{2}:\d{2})?")
_OURS = [str(Path(sys.executable).with_name("forgather"))]


class _AnyTagLoader(yaml.SafeLoader):
    """Builds (tag, value) pairs for every tagged node; mappings as pair lists."""


def _construct(loader: _AnyTagLoader, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        value = [(_construct(loader, k), _construct(loader, v)) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        value = [_construct(loader, item) for item in node.value]
    elif node.tag == "tag:yaml.org,2002:merge":
        return "<<"
    else:
        value = loader.construct_scalar(node)
        if node.tag.startswith("tag:yaml.org,2002:"):
            value = loader.construct_object(node)
    if isinstance(value, str):
        value = _TIMESTAMP.sub("<time>", value)
    tag = node.tag
    if tag.startswith("tag:yaml.org,2002:"):
        return value
    return (tag, value)


def _load(text: str):
    loader = _AnyTagLoader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _construct(loader, node)
    finally:
        loader.dispose()


def configs_of(project: Path) -> list[str]:
    """Config names of a project: YAML files below templates/configs."""
    root = project / "templates" / "configs"
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


def projects_under(original: Path) -> list[Path]:
    found = []
    for meta in sorted(original.rglob("meta.yaml")):
        if "forgather_workspace" in meta.parts:
            continue
        found.append(meta.parent)
    return found


def render(command: list[str], project: Path, config: str, env: dict) -> tuple[int, str]:
    proc = subprocess.run(
        [*command, "-t", config, "pp"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr


def first_difference(a, b, path="") -> str | None:
    """Where two parsed renders first differ, as ``path: a != b``."""
    if type(a) is not type(b):
        return f"{path or '/'}: {a!r:.120} != {b!r:.120}"
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            keys_a = [x[0] for x in a if isinstance(x, tuple)]
            keys_b = [x[0] for x in b if isinstance(x, tuple)]
            return (
                f"{path or '/'}: length {len(a)} != {len(b)} ({keys_a!r:.200} vs {keys_b!r:.200})"
            )
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            label = x[0] if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) else i
            found = first_difference(x, y, f"{path}/{label}")
            if found:
                return found
        return None
    return None if a == b else f"{path or '/'}: {a!r:.120} != {b!r:.120}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", type=Path, help="checkout of the original Forgather")
    parser.add_argument("--only", default="", help="only projects whose path contains this")
    parser.add_argument("--show", type=int, default=0, help="print the first N differences in full")
    parser.add_argument(
        "--save", type=Path, help="write both renders of each config below this folder"
    )
    args = parser.parse_args()
    original = args.original.resolve()
    env_orig = dict(os.environ, PYTHONPATH=str(original / "src"))
    orig_cmd = [
        sys.executable,
        "-c",
        "import sys; from forgather.cli import main; sys.exit(main())",
    ]
    env_ours = dict(os.environ)
    env_ours.pop("PYTHONPATH", None)
    counts = {"same": 0, "different": 0, "ours fails": 0, "original fails": 0}
    shown = 0
    for project in projects_under(original):
        if args.only not in str(project):
            continue
        for config in configs_of(project):
            name = f"{project.relative_to(original)}:{config}"
            rc_o, out_o = render(orig_cmd, project, config, env_orig)
            if rc_o != 0:
                counts["original fails"] += 1
                print(f"ORIGINAL FAILS {name}")
                continue
            rc_u, out_u = render(_OURS, project, config, env_ours)
            if args.save:
                for side, text in (("original", out_o), ("ours", out_u)):
                    target = args.save / side / name.replace("/", "__").replace(":", "__")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)
            if rc_u != 0:
                counts["ours fails"] += 1
                errors = [line for line in out_u.splitlines() if "error" in line.lower()]
                print(f"OURS FAILS     {name}: {(errors or [''])[0][:300]}")
                continue
            try:
                diff = first_difference(_load(out_o), _load(out_u))
            except yaml.YAMLError as err:
                diff = f"ours does not parse: {str(err).splitlines()[0]}"
            if diff is None:
                counts["same"] += 1
                print(f"same           {name}")
            else:
                counts["different"] += 1
                print(f"DIFFERENT      {name}: {diff}")
                if shown < args.show:
                    shown += 1
                    print("----- original\n" + out_o + "\n----- ours\n" + out_u)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
