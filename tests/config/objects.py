"""Tiny callables for build/codegen tests (imported by SPECs as tests.config.objects)."""

import itertools

_counter = itertools.count()


class Layer:
    """A stand-in for an nn.Module: every instance has its own id."""

    def __init__(self, width: int = 1, norm=None):
        self.width = width
        self.norm = norm
        self._serial = next(_counter)  # differs per instance, ignored by comparisons

    def __eq__(self, other):
        return isinstance(other, Layer) and (self.width, self.norm) == (other.width, other.norm)

    __hash__ = object.__hash__

    def __repr__(self):
        return f"Layer({self.width}, {self.norm!r})"


class Stack:
    def __init__(self, layer_factory, n: int):
        self.layers = [layer_factory() for _ in range(n)]

    def __eq__(self, other):
        return isinstance(other, Stack) and self.layers == other.layers


def fails(value):
    raise ValueError(f"bad value {value}")


def describe_nodes(*nodes, **named):
    """A ``!meta`` callee: it sees unbuilt nodes and reports their kinds."""
    return [type(n).__name__ for n in nodes] + sorted(
        f"{k}={type(v).__name__}" for k, v in named.items()
    )


def _takes_keywords_only(**kwargs):
    return kwargs


def copied_from_config(config):
    """A copied function whose ``__wrapped__`` misdescribes it (transformers 5's from_config)."""
    return config


copied_from_config.__wrapped__ = _takes_keywords_only


def write_module(path, text):
    """Write a Python module (as the original Forgather's generate_code + write_file do)."""
    with open(path, "w") as f:
        f.write(text)
    return path
