"""What is said about a registered entry, in one place for ``clusterbench list`` and the
generated methods reference: its docstring, and each parameter with its default and what its
declaration admits."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Any

from clusterbench.core.params import admitted, declared
from clusterbench.core.registry import Registry, format_value


@dataclass(frozen=True)
class ParameterInfo:
    name: str
    default: Any  # inspect.Parameter.empty when the spec must give it
    admits: str | None  # the declaration in words; None: undeclared, judged by the default's type

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def listing(self) -> str:
        """``name`` or ``name=default``, as ``clusterbench list`` prints it."""
        return self.name if self.required else f"{self.name}={self.default}"

    def default_text(self) -> str:
        """The default as a spec would write it (``true``, ``none``); empty when required."""
        return "" if self.required else format_value(self.default)


def docstring(cls: type) -> str:
    """The entry's own docstring, else its file's (one class per file)."""
    return inspect.cleandoc(cls.__dict__.get("__doc__") or sys.modules[cls.__module__].__doc__ or "")


def summary(cls: type) -> str:
    """The docstring's first line."""
    lines = docstring(cls).splitlines()
    return lines[0] if lines else ""


def first_paragraph(cls: type) -> str:
    """The docstring up to its first blank line, joined into one line."""
    paragraph = docstring(cls).split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def parameters(registry: Registry, name: str) -> list[ParameterInfo]:
    """Every spec parameter of ``name`` in signature order."""
    cls = registry.get(name)
    hints = declared(cls.__init__)
    return [ParameterInfo(p, default, admitted(hints[p], cls) if p in hints else None)
            for p, default in registry.parameters(name).items()]
