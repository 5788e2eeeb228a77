"""Forgather: build, train and serve language models from configuration.

The top-level package exposes :class:`Project` and :class:`ConfigError`, and
the original Forgather's top-level names :class:`MetaConfig` and
``from_project`` (``!call:forgather:from_project`` in configs), all resolved
lazily (PEP 562 module ``__getattr__``).

Decision a reader may question: the names are not imported eagerly because
``import forgather`` runs before every ``forgather`` command, and the
``--help``/``ls``/``pp`` commands must start in well under a tenth of a
second: importing the config language (Jinja2, PyYAML) is paid only by code
that touches these names.
"""

from __future__ import annotations

from forgather._lazy import lazy_exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a few ms)
if TYPE_CHECKING:  # for type checkers and IDEs; never executed at run time
    from forgather.config import ConfigError
    from forgather.project import MetaConfig, Project, from_project

__all__ = ["ConfigError", "MetaConfig", "Project", "from_project"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Project": "forgather.project",
        "MetaConfig": "forgather.project",
        "from_project": "forgather.project",
        "ConfigError": "forgather.config",
    },
)
