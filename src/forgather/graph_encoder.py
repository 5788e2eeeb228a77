"""``NamePolicy``: which nodes generated code gives a variable name (the original's names).

Kept for configs and notebooks written for the original Forgather, which pass
``name_policy`` to ``forgather.codegen.generate_code``.

Decision a reader may question: our code generator always names the nodes a
config names (``@name``) and the nodes referenced from several places, and
inlines the rest (``NAMED``); ``REQUIRED`` and ``ALL`` are accepted and give
the same code, because the generated code builds the same objects either way.
"""

from __future__ import annotations

from enum import Enum


class NamePolicy(Enum):
    """When generated code names a node with a local variable."""

    REQUIRED = "required"  # only nodes referenced from several places
    NAMED = "named"  # also nodes the config names with @name (the default)
    ALL = "all"  # every call

    @classmethod
    def parse(cls, value: NamePolicy | str | None) -> NamePolicy:
        """``None`` -> ``NAMED``; a member or its value (``"all"``).

        Raises:
            ValueError: any other value.
        """
        if value is None:
            return cls.NAMED
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(
                f"name_policy must be one of 'required', 'named', 'all'; got {value!r}"
            ) from None
