"""Which templates define a block, and whether they call ``super()``: a block's override chain.

``forgather why`` answers "where did this value come from?" with the line that
set it and, when that line is inside a block, every definition of that block
along the inheritance chain of the template that rendered it, most derived
first. Every block syntax (``[name]``, ``-- block name``, ``{% block %}``)
is a Jinja block after preprocessing, so the analysis reads the preprocessed
sources only.

Decision a reader may question: the analysis is static. Names and ``super()``
calls come from Jinja's AST, a block's extent from its token stream (the AST
records where a block starts, not where it ends). An ``extends`` or
``include`` whose name is computed (``-- extends base``) is not followed,
and a template used from several places is reported in the first chain that
holds it, the one a reader meets first in the tree of templates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import jinja2
from jinja2 import nodes

from .loader import STRING_TEMPLATE, TemplateSet
from .preprocess import preprocess


@dataclass(frozen=True)
class BlockDefinition:
    """One template's definition of a block.

    Attributes:
        block: the block's name.
        template: the template's name (``configs/a.yaml``, ``project.trainer``).
        file: the file holding it.
        line: the line of the block statement (``[name]``, ``-- block name``), 1-based.
        end_line: the line of its end (the next ``[block]`` line, ``endblock``).
        calls_super: whether its body calls ``super()`` (keeps its parent's text).
    """

    block: str
    template: str
    file: str
    line: int
    end_line: int
    calls_super: bool

    def holds(self, line: int) -> bool:
        """Whether template line ``line`` is inside this definition's body."""
        return self.line <= line < self.end_line or self.line == self.end_line == line


@dataclass
class _Template:
    name: str
    file: str
    extends: str | None = None  # the parent, when named by a constant
    uses: list[str] = field(default_factory=list)  # includes and imports, by constant name
    blocks: dict[str, BlockDefinition] = field(default_factory=dict)


def _calls_super(block: nodes.Block) -> bool:
    """A ``super()`` call in ``block``'s own body (a nested block's call is its own)."""
    stack: list[nodes.Node] = list(block.body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Block):
            continue
        called = isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name)
        if called and node.node.name == "super":
            return True
        stack.extend(node.iter_child_nodes())
    return False


def _extents(env: jinja2.Environment, source: str) -> dict[str, tuple[int, int]]:
    """Block name -> (line of ``block``, line of ``endblock``), from the token stream."""
    extents: dict[str, tuple[int, int]] = {}
    open_blocks: list[tuple[str, int]] = []
    statement: list[tuple[int, str]] = []  # the name tokens of the current {% ... %}
    inside = False
    for lineno, kind, value in env.lex(source):
        if kind == "block_begin":
            inside, statement = True, []
        elif kind == "block_end":
            inside = False
            words = [v for _, v in statement]
            if words[:1] == ["block"] and len(words) > 1:
                open_blocks.append((words[1], statement[0][0]))
            elif words[:1] == ["endblock"] and open_blocks:
                name, start = open_blocks.pop()
                extents[name] = (start, statement[0][0])
        elif inside and kind == "name":
            statement.append((lineno, value))
    return extents


class TemplateBlocks:
    """The blocks of a config's templates, read on demand.

    Args:
        templates: the template set the config was rendered from.
        root: the config's template name, or None for a string template.
        root_text: the string template's text (when ``root`` is None).
    """

    def __init__(self, templates: TemplateSet, root: str | None, root_text: str | None = None):
        self._templates = templates
        self._root = root or STRING_TEMPLATE
        self._root_text = root_text
        self._cache: dict[str, _Template | None] = {}

    def _read(self, name: str) -> _Template | None:
        if name in self._cache:
            return self._cache[name]
        env = self._templates.env
        self._cache[name] = None  # a template that extends itself stops here
        try:
            if name == STRING_TEMPLATE and self._root_text is not None:
                source, file = preprocess(self._root_text), STRING_TEMPLATE
            else:
                source, file, _ = env.loader.get_source(env, name)
            tree = env.parse(source)
            extents = _extents(env, source)
        except (jinja2.TemplateError, OSError, UnicodeDecodeError):
            return None
        info = _Template(name, file)
        for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            if not isinstance(node.template, nodes.Const):
                continue
            if isinstance(node, nodes.Extends):
                info.extends = info.extends or node.template.value
            else:
                info.uses.append(node.template.value)
        for block in tree.find_all(nodes.Block):
            start, end = extents.get(block.name, (block.lineno, block.lineno))
            info.blocks[block.name] = BlockDefinition(
                block.name, name, file, start, end, _calls_super(block)
            )
        self._cache[name] = info
        return info

    def _inheritance(self, name: str) -> list[_Template]:
        """``name``, its parent, its parent's parent ... as far as they are named and found."""
        chain: list[_Template] = []
        while name and all(t.name != name for t in chain):
            info = self._read(name)
            if info is None:
                break
            chain.append(info)
            name = info.extends
        return chain

    def chain_at(self, file: str, line: int) -> tuple[BlockDefinition, ...]:
        """Every definition of the innermost block holding ``file:line``, most derived first.

        The chain is that of the template rendering the line: the config
        itself, or an included template, with the templates each extends.
        Empty when the line is in no block.
        """
        seen: set[str] = set()
        queue = deque([self._root])
        while queue:
            head = queue.popleft()
            if head in seen:
                continue
            seen.add(head)
            chain = self._inheritance(head)
            for info in chain:
                if info.file != file:
                    continue
                holding = [b for b in info.blocks.values() if b.holds(line)]
                if holding:
                    name = max(holding, key=lambda b: b.line).block  # nested blocks start later
                    return tuple(t.blocks[name] for t in chain if name in t.blocks)
            for info in chain:
                queue.extend(info.uses)
        return ()
