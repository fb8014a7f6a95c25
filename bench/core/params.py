"""Declared parameter constraints: what each spec parameter may be, read from the entry's
``__init__`` annotations (the spirit of scikit-learn's ``_parameter_constraints``, declared in
the signature instead of a dict beside it).

An annotation is a type, a ``Literal`` of choices, ``None``, a union of those, or
``Annotated[T, marker, ...]`` where each marker narrows ``T``::

    def __init__(self, k: K = None, n_init: Annotated[int, Interval(1, None)] = 1,
                 linkage: Literal["ward", "average", "complete", "single"] = "ward",
                 root: Annotated[str, ExistingDir()] | None = None, device: Device = "auto"): ...

:func:`check` says what is wrong with a value (one line, naming the parameter, the value and
what is allowed), or nothing. Annotations it cannot read (``Any``, a class of the entry's own)
accept every value; the entry judges those itself.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from clusterbench.core.errors import UserError
from clusterbench.core.traits import declared as declared_on

# -- markers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is wrong: ``text`` follows ``key=value``; a *strong* problem (out of range, no such
    path) is preferred over a weak one (not among choices) when a union has several arms."""

    text: str
    strong: bool = True


class Marker:
    """A constraint in ``Annotated[T, marker]``."""

    def problem(self, value: Any, owner: type | None = None) -> Problem | None:
        raise NotImplementedError

    def describe(self, noun: str, owner: type | None = None) -> str:
        """``noun`` ("an integer", "a string") narrowed by this marker."""
        return noun


@dataclass(frozen=True)
class Interval(Marker):
    """``low <= value <= high`` (``None``: unbounded); ``closed`` is "both", "left", "right" or
    "neither" (which ends belong to the interval)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def __post_init__(self):
        if self.closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval closed={self.closed!r}: expected both, left, right or neither")

    def _phrase(self) -> str:
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return f"in {'[' if left else '('}{_num(self.low)}, {_num(self.high)}{']' if right else ')'}"
        if self.low is not None:
            return f"{'>=' if left else '>'} {_num(self.low)}"
        if self.high is not None:
            return f"{'<=' if right else '<'} {_num(self.high)}"
        return "finite"

    def problem(self, value, owner=None):
        if isinstance(value, float) and math.isnan(value):
            return Problem(f"must be {self._phrase()}")
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return Problem(f"must be {self._phrase()}")
        if self.high is not None and (value > self.high or (value == self.high and not right)):
            return Problem(f"must be {self._phrase()}")
        return None

    def describe(self, noun, owner=None):
        return f"{noun} {self._phrase()}"


# Path-looking strings (a separator, ~, . or a weights-file suffix): what ``only_path_like``
# markers check, leaving other strings (a weights enum name) to the entry.
_PATH_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".tar", ".npz", ".pkl", ".h5", ".onnx")


def looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith(("~", ".")) or text.lower().endswith(_PATH_SUFFIXES)


@dataclass(frozen=True)
class ExistingPath(Marker):
    """A path that exists (file or directory; ``~`` is expanded). With ``only_path_like``, a
    string that does not look like a path (no separator, no file suffix) is left to the entry."""

    only_path_like: bool = False
    noun = "an existing path"

    def _wrong(self, path: str) -> str | None:
        return None

    def problem(self, value, owner=None):
        text = str(value)
        path_like = looks_like_path(text)
        if self.only_path_like and not path_like:
            return None
        path = os.path.expanduser(text)
        if not os.path.exists(path):
            return Problem("does not exist", strong=path_like)
        wrong = self._wrong(path)
        return Problem(wrong, strong=path_like) if wrong else None

    def describe(self, noun, owner=None):
        return self.noun


@dataclass(frozen=True)
class ExistingDir(ExistingPath):
    """A directory that exists."""

    noun = "an existing directory"

    def _wrong(self, path):
        return None if os.path.isdir(path) else "is not a directory"


@dataclass(frozen=True)
class ExistingFile(ExistingPath):
    """A file that exists."""

    noun = "an existing file"

    def _wrong(self, path):
        return None if os.path.isfile(path) else "is not a file"


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class DevicePattern(Marker):
    """auto, cpu, cuda or cuda:N."""

    def problem(self, value, owner=None):
        if _DEVICE.fullmatch(str(value)):
            return None
        return Problem("is not allowed; choose one of auto, cpu, cuda, cuda:N", strong=False)

    def describe(self, noun, owner=None):
        return "auto, cpu, cuda or cuda:N"


@dataclass(frozen=True)
class ChoiceOf(Marker):
    """One of the keys of the entry class's attribute ``attribute`` (choices that differ per
    subclass sharing one ``__init__``, e.g. the splits of each torchvision set)."""

    attribute: str

    def _choices(self, owner) -> list | None:
        found = declared_on(owner, self.attribute) if owner is not None else None
        return None if found is None else [str(c) for c in found]

    def problem(self, value, owner=None):
        choices = self._choices(owner)
        if choices is None or str(value) in choices:
            return None
        return Problem(f"is not allowed; choose one of {', '.join(choices)}", strong=False)

    def describe(self, noun, owner=None):
        choices = self._choices(owner)
        return _join(choices) if choices else noun


# -- shared declarations ------------------------------------------------------------------------
PositiveInt = Annotated[int, Interval(1, None)]
Seed = Annotated[int, Interval(0, None)]
Limit = Annotated[int, Interval(1, None)] | None  # at most this many images (stratified); none: all
ImageSize = Annotated[int, Interval(1, None)] | None  # pixels; none: the method's own
K = Annotated[int, Interval(2, None)] | Literal["auto", "semantic"] | None
Device = Annotated[str, DevicePattern()]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
BatchSize = Literal["auto"] | Annotated[int, Interval(1, None)]

# -- reading annotations ------------------------------------------------------------------------


def declared(func) -> dict[str, Any]:
    """Parameter name -> its resolved annotation (``Annotated`` kept); empty when the
    annotations cannot be resolved (then the caller falls back to its default-based checks)."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001 - a plug-in's unresolvable forward reference: nothing declared
        return {}
    hints.pop("return", None)
    return hints


@dataclass(frozen=True)
class _Arm:
    """One alternative of a union: a base type (or Literal choices) with its markers."""

    base: Any  # bool, int, float, str, type(None), or None for Literal
    choices: tuple = ()
    markers: tuple = ()

    def admits_type(self, value) -> bool:
        if self.base is None:  # Literal: any value of a choice's type
            return any(type(value) is type(c) for c in self.choices)
        if self.base is bool:
            return isinstance(value, bool)
        if self.base is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if self.base is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.base is type(None):
            return value is None
        return isinstance(value, self.base)

    def problem(self, value, owner) -> Problem | None:
        if self.base is None:
            if any(type(value) is type(c) and value == c for c in self.choices):
                return None
            return Problem(f"is not allowed; choose one of {', '.join(_word(c) for c in self.choices)}", strong=False)
        for marker in self.markers:
            found = marker.problem(value, owner)
            if found is not None:
                return found
        return None

    def items(self, owner) -> list[str]:
        """What this arm admits, as list items for a message."""
        if self.base is None:
            return [_word(c) for c in self.choices]
        if self.base is bool:
            return ["true", "false"]
        if self.base is type(None):
            return ["none"]
        noun = _NOUNS.get(self.base, f"a {getattr(self.base, '__name__', self.base)}")  # third-party: a type or a typing form
        for marker in self.markers:
            noun = marker.describe(noun, owner)
        return [noun]


_NOUNS = {int: "an integer", float: "a number", str: "a string"}


def _arms(hint, markers: tuple = ()) -> list[_Arm] | None:
    """The union's alternatives; None when some alternative is beyond what is checked here
    (then every value is admitted)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extra = typing.get_args(hint)
        return _arms(base, markers + tuple(m for m in extra if isinstance(m, Marker)))
    if origin in (typing.Union, types.UnionType):
        arms: list[_Arm] = []
        for arg in typing.get_args(hint):
            sub = _arms(arg, markers)
            if sub is None:
                return None
            arms += sub
        return arms
    if origin is Literal:
        return [_Arm(None, choices=typing.get_args(hint))]
    if hint is None or hint is type(None):
        return [_Arm(type(None))]
    if hint in (bool, int, float, str):
        return [_Arm(hint, markers=markers)]
    return None


def as_declared(value: Any, hint: Any) -> Any:
    """A spec value typed by its look (``root=2024`` reads as a number) back as the text it was,
    when the declaration admits text and no number."""
    arms = _arms(hint)
    if not arms or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if any(arm.admits_type(value) for arm in arms) or not any(arm.base is str for arm in arms):
        return value
    return str(value)


def admitted(hint: Any, owner: type | None = None) -> str | None:
    """What the declaration ``hint`` admits, in the words :func:`check`'s messages use ("an
    integer >= 1 or none"); None when it cannot be read (the entry judges every value itself)."""
    arms = _arms(hint)
    return _join([item for arm in arms for item in arm.items(owner)]) if arms else None


def check(key: str, value: Any, hint: Any, owner: type | None = None) -> str | None:
    """``"key=value must be ..."`` when ``value`` breaks the declaration ``hint``; else None.
    ``owner`` is the entry's class (for markers that read its attributes)."""
    arms = _arms(hint)
    if not arms:
        return None
    matching = [arm for arm in arms if arm.admits_type(value)]
    problems = []
    for arm in matching:
        found = arm.problem(value, owner)
        if found is None:
            return None
        problems.append(found)
    shown = f"{key}={_word(value)}"
    others = [arm for arm in arms if arm.base is not type(None)]
    if len(problems) == 1 and (len(others) == 1 or problems[0].strong):
        return f"{shown} {problems[0].text}"
    strong = [p for p in problems if p.strong]
    if len(strong) == 1:
        return f"{shown} {strong[0].text}"
    if len(arms) == 1 and not matching:  # a single list of choices: name them as choices
        arm = arms[0]
        choice = arm.problem(value, owner) if arm.base is None else next(
            (m.problem(value, owner) for m in arm.markers if isinstance(m, DevicePattern | ChoiceOf)), None)
        if choice is not None:
            return f"{shown} {choice.text}"
    return f"{shown} must be {_join([item for arm in arms for item in arm.items(owner)])}"


def check_all(owner_name: str, params: dict, hints: dict, owner: type | None = None) -> None:
    """Raise ``UserError("<owner_name>: key=value must be ...")`` for the first declared
    parameter in ``params`` whose value breaks its declaration."""
    for key, value in params.items():
        if key in hints:
            problem = check(key, value, hints[key], owner)
            if problem:
                raise UserError(f"{owner_name}: {problem}")


def _word(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


def _num(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _join(items: list[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
