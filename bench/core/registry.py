"""One registry type for datasets, embedders and clusterers.

Entries register with a decorator in their own file; a *spec string* names an entry and its
parameters: ``name`` or ``name:key=value,key=value``. Parameters are the keyword arguments of
the entry's ``__init__`` (scikit-learn style), so the signature is the single source of truth:
its annotations declare what each value may be (:mod:`clusterbench.core.params`), checked
before anything runs.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from clusterbench.core.contracts import breaches
from clusterbench.core.errors import UserError
from clusterbench.core.params import as_declared, declared
from clusterbench.core.params import check as check_declared
from clusterbench.core.traits import Traits, derive, init_defaults


def parse_value(text: str) -> Any:
    """Spec values are typed by their look: int, float, bool, none, else a string."""
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


@dataclass(frozen=True)
class Spec:
    """A parsed spec string: the entry name and the parameters given explicitly."""

    name: str
    params: dict = field(default_factory=dict)
    # True once :meth:`Registry.validate` has checked it: creation trusts it and checks nothing again
    checked: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str | Spec) -> Spec:
        if isinstance(text, Spec):
            return text
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"empty spec {text!r}: expected 'name' or 'name:key=value,...'")
        name, _, rest = text.strip().partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise UserError(f"malformed parameter {item!r} in spec {text!r}: expected key=value")
            params[key.strip()] = parse_value(value)
        return cls(name.strip(), params)

    def with_params(self, **extra: Any) -> Spec:
        return Spec(self.name, {**self.params, **extra})  # a changed spec is checked again

    def __str__(self) -> str:
        if not self.params:
            return self.name
        body = ",".join(f"{k}={format_value(v)}" for k, v in sorted(self.params.items()))
        return f"{self.name}:{body}"


def _check_value(kind: str, name: str, key: str, value: Any, default: Any, annotation: Any) -> None:
    """A parameter whose default is a number takes a number of that kind (an int also serves a
    float); one whose default is a boolean takes true or false, unless its annotation admits more
    (``pretrained: bool | str``); other defaults (None, strings) leave the entry to judge."""
    if isinstance(default, bool):
        if annotation in (inspect.Parameter.empty, bool, "bool") and not isinstance(value, bool):
            raise UserError(f"{kind} {name!r}: {key}={format_value(value)!s} must be true or false "
                            f"(default {format_value(default)})")
        return
    if not isinstance(default, int | float):
        return
    wanted = int if isinstance(default, int) else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        noun = "an integer" if wanted is int else "a number"
        raise UserError(f"{kind} {name!r}: {key}={format_value(value)!s} must be {noun} (default {default})")


def _closest(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry:
    """Name -> class, with spec parsing and parameter validation."""

    def __init__(self, kind: str, group: str | None = None, contract: type | None = None,
                 adapt: Callable[[type], type | None] | None = None):
        self.kind = kind
        self.group = group  # the entry-point group through which other packages add entries
        self.contract = contract  # the Protocol every entry honours, checked at registration
        # turns a class that does not honour the contract but has another known shape (a plain
        # scikit-learn clusterer) into one that does; None when it has no such shape
        self.adapt = adapt
        self._entries: dict[str, type] = {}
        self._origins: dict[str, Origin] = {}
        self._traits: dict[type, Traits] = {}

    def register(self, name: str):
        """Class decorator: register the class as ``name``. A class that breaks the kind's
        contract, or a name taken, is a bug of the tree's (TypeError, ValueError at import);
        while a plug-in loads (:func:`loading_plugin`) it is held against the plug-in instead."""
        def decorator(cls: type) -> type:
            # a plug-in's registration (a bundled module a plug-in happens to import first is still ours)
            load = _LOADING[-1] if _LOADING and _origin_of(cls) != BUNDLED else None
            problem, error, entry, adapted = None, TypeError, cls, False
            if self.contract is not None and breaches(self.contract, cls) and self.adapt is not None:
                wrapped = self.adapt(cls)
                if wrapped is not None:
                    entry, adapted = wrapped, True
            if name in self._entries:
                problem, error = f"{self.kind} {name!r} registered twice (already from {self._origins[name]})", ValueError
            elif self.contract is not None and (gaps := breaches(self.contract, entry)):
                problem = f"{self.kind} {name!r} ({cls.__qualname__}) breaks the {self.kind} contract: {', '.join(gaps)}"
            if problem:
                if load is None:
                    raise error(problem)
                load.problems.append(problem)
                return cls
            if not adapted:
                cls.registry_name = name
            self._entries[name] = entry
            self._traits[entry] = derive(self.kind, entry, adapted=adapted)
            self._origins[name] = load.origin if load else _origin_of(cls)
            if load:
                load.added.append((self, name))
            return cls

        return decorator

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> type:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(self.list())
            raise UserError(f"unknown {self.kind} {name!r}{_closest(name, self._entries)}; valid: {valid}") from None

    def resolve(self, spec: str | Spec) -> type:
        """The class a spec creates: the entry, or, for an entry that binds another class by a
        parameter (``sklearn:estimator=PATH``), the class it binds."""
        spec = Spec.parse(spec)
        cls = self.get(spec.name)
        own = self._traits[cls]
        if own.bind is None or not set(own.bind_keys) <= set(spec.params):
            return cls  # a binding entry named alone (listing it, its own parameters) is itself
        bound = own.bind(spec.params)
        if bound not in self._traits:
            self._traits[bound] = derive(self.kind, bound, adapted=True)
        return bound

    def traits(self, spec: str | Spec) -> Traits:
        """What the entry a spec names can do (derived once, at registration)."""
        return self._traits[self.resolve(spec)]

    def parameters(self, spec: str | Spec) -> dict[str, Any]:
        """Parameter name -> default (``inspect.Parameter.empty`` when required); a binding entry's
        own parameters come first, then those of the class it binds for this spec."""
        spec = Spec.parse(spec)
        classes = [self.get(spec.name)]
        own = self._traits[classes[0]]
        if own.bind is not None and own.bind_keys and set(own.bind_keys) <= set(spec.params):
            classes.append(self.resolve(spec))
        out: dict[str, Any] = {}
        for cls in classes:
            out.update(init_defaults(cls))
        return out

    def accepts(self, name: str, param: str) -> bool:
        return param in self.parameters(name)

    def validate(self, spec: str | Spec) -> Spec:
        """The spec checked against its entry's declarations; the returned spec is marked checked,
        so creating from it checks nothing again."""
        spec = Spec.parse(spec)
        if spec.checked:
            return spec
        allowed = self.parameters(spec)  # a binding entry's with those of the class it binds
        for key in spec.params:
            if key not in allowed:
                valid = ", ".join(allowed) or "none"
                raise UserError(
                    f"unknown parameter {key!r} for {self.kind} {spec.name!r}{_closest(key, allowed)}; valid: {valid}"
                )
        cls = self.get(spec.name)
        hints = declared(cls.__init__)  # what each parameter may be, as its annotation declares
        spec = Spec(spec.name, {k: as_declared(v, hints[k]) if k in hints else v for k, v in spec.params.items()})
        annotations = self._annotations(spec)
        for key, value in spec.params.items():
            if key in hints:
                problem = check_declared(key, value, hints[key], cls)
                if problem:
                    raise UserError(f"{self.kind} {spec.name!r}: {problem}")
            else:  # undeclared (a plug-in or a bound estimator without annotations): judged by its default
                _check_value(self.kind, spec.name, key, value, allowed[key], annotations.get(key, inspect.Parameter.empty))
        missing = [k for k, v in allowed.items() if v is inspect.Parameter.empty and k not in spec.params]
        if missing:
            raise UserError(f"{self.kind} {spec.name!r} needs parameter(s): {', '.join(missing)} (e.g. {spec.name}:{missing[0]}=...)")
        # what one parameter's declaration cannot say (two that exclude each other): the entry's
        # declared ``check_params(params) -> problem or None`` sees them together
        combined = self._traits[cls].check_params
        problem = combined(dict(spec.params)) if combined is not None else None
        if problem:
            raise UserError(f"{self.kind} {spec.name!r}: {problem}")
        return Spec(spec.name, spec.params, checked=True)

    def _annotations(self, spec: Spec) -> dict[str, Any]:
        annotations: dict[str, Any] = {}
        for cls in {self.get(spec.name), self.resolve(spec)}:
            annotations.update({p.name: p.annotation for p in inspect.signature(cls.__init__).parameters.values()})
        return annotations

    def create(self, spec: str | Spec, **overrides: Any):
        """An instance for a spec (checked here unless :meth:`validate` already did); ``overrides``
        are values the harness fills in (the cell's seed and K, a trial's parameters)."""
        spec = self.validate(spec)
        cls = self.resolve(spec)
        own = self._traits[self.get(spec.name)].bind_keys
        params = {k: v for k, v in {**spec.params, **overrides}.items() if k not in own}
        return cls(**params)

    def origin(self, name: str) -> Origin:
        """Where the entry comes from: the plug-in's distribution and version, or clusterbench."""
        self.get(name)
        return self._origins[name]

    def holds(self, cls: type) -> bool:
        return any(entry is cls for entry in self._entries.values())

    def _forget(self, name: str) -> None:
        cls = self._entries.pop(name, None)
        self._origins.pop(name, None)
        self._traits.pop(cls, None)
        if cls is not None and cls.__dict__.get("registry_name") == name:
            del cls.registry_name


@dataclass(frozen=True)
class Origin:
    """The package an entry comes from (with its version, for a plug-in)."""

    package: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.package} {self.version}" if self.version else self.package


BUNDLED = Origin("clusterbench")


@dataclass
class PluginLoad:
    """What one plug-in registered while it loaded, and what was wrong with it."""

    origin: Origin
    problems: list[str] = field(default_factory=list)
    added: list[tuple[Registry, str]] = field(default_factory=list)

    def undo(self) -> None:
        """Unregister everything this plug-in registered (it is skipped as a whole)."""
        for registry, name in self.added:
            registry._forget(name)
        self.added.clear()


_LOADING: list[PluginLoad] = []


@contextmanager
def loading_plugin(origin: Origin) -> Iterator[PluginLoad]:
    """While a plug-in's entry point is imported: its registrations (in any registry) are
    credited to ``origin``, and a broken one is noted in the yielded record, not raised."""
    load = PluginLoad(origin)
    _LOADING.append(load)
    try:
        yield load
    finally:
        _LOADING.remove(load)


def _origin_of(cls: type) -> Origin:
    top = cls.__module__.partition(".")[0]
    return BUNDLED if top == "clusterbench" else Origin(top)
