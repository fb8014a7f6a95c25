"""What an entry can do, derived once at registration from its declarations (scikit-learn's
estimator tags are the model): the harness reads this frozen record and never probes a method.

A trait comes from the entry's ``__init__`` signature (``k`` and ``seed`` parameters), from the
class attributes its kind's contract declares (``needs``, ``owns_k``, ``has_classifier``, ...,
which registration has already checked are present) and from optional declarations that only some
entries make (``check_params``, ``skip``, the network hooks of an explainable embedder), read here
and nowhere else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

# what an embedder must expose for Grad-CAM / guided backprop to reach its network
NETWORK_API = ("build", "transform", "classes", "cam_target", "check_head")


@dataclass(frozen=True)
class Traits:
    kind: str
    params: tuple[str, ...] = ()  # the spec parameters the ``__init__`` takes
    takes_k: bool = False  # its ``k`` is the grid's K (a ``k`` parameter, not owned)
    takes_seed: bool = False  # a ``seed`` parameter the cell's seed fills
    owns_k: bool = False  # its ``k`` means something else (overclustering); the grid's K comes via context
    tunable: bool = False  # may be refitted per Optuna trial
    tune_keys: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    has_classifier: bool = False
    explainable: bool = False  # has a classifier and exposes its torch network (NETWORK_API)
    consumes: str = "images"  # embedders: what the dataset must hold
    provides: str = "images"  # datasets: what they hold
    cache_features: bool = True
    checks_files: bool = False  # datasets: ``check()`` looks at the files before anything runs
    needs_labels: bool = False  # K estimators that would leak the labels
    direction: str = "maximize"
    adapted: bool = False  # a plain scikit-learn style class wrapped by the kind's adapter
    sweeps_k: bool = False  # clusterers: ``sweep(X) -> labels_at(k)`` shares work across a K sweep
    # an entry that stands for a family of classes chosen by its own parameters (``bind_keys``):
    # ``bind(params) -> class`` (``sklearn:estimator=PATH`` binds any installed estimator)
    bind: Callable[[dict], type] | None = field(default=None, compare=False)
    bind_keys: tuple[str, ...] = ()
    check_params: Callable[[dict], str | None] | None = field(default=None, compare=False)
    skip: Callable[..., str | None] | None = field(default=None, compare=False)


def declared(cls: type, name: str, default=None):
    """``name`` as the class (or a base) declares it in its body; ``default`` when none does.
    Reading the class dictionaries (not ``getattr``) keeps an instance's state and ``__getattr__``
    tricks out of what a class declares."""
    for klass in inspect.getmro(cls):
        if name in klass.__dict__:
            value = klass.__dict__[name]
            if isinstance(value, staticmethod):
                return value.__func__
            if isinstance(value, classmethod):
                return value.__get__(None, cls)
            return value
    return default


def init_defaults(cls: type) -> dict:
    """The spec parameters ``cls.__init__`` takes -> default (``inspect.Parameter.empty``: required)."""
    sig = inspect.signature(cls.__init__)
    return {p.name: p.default for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def derive(kind: str, cls: type, *, adapted: bool = False) -> Traits:
    """The traits of ``cls`` registered as a ``kind``."""
    params = tuple(init_defaults(cls))
    owns_k = bool(declared(cls, "owns_k", False))
    has_classifier = bool(declared(cls, "has_classifier", False))
    return Traits(
        kind=kind,
        params=params,
        takes_k="k" in params and not owns_k,
        takes_seed="seed" in params,
        owns_k=owns_k,
        tunable=bool(declared(cls, "tunable", False)),
        tune_keys=frozenset(declared(cls, "tune_keys", None) or ()),
        needs=frozenset(declared(cls, "needs", None) or ()),
        has_classifier=has_classifier,
        explainable=has_classifier and "device" in params and all(callable(declared(cls, n)) for n in NETWORK_API),
        consumes=str(declared(cls, "consumes", "images")),
        provides=str(declared(cls, "provides", "images")),
        cache_features=bool(declared(cls, "cache_features", True)),
        checks_files=callable(declared(cls, "check")),
        needs_labels=bool(declared(cls, "needs_labels", False)),
        direction=str(declared(cls, "direction", "maximize")),
        adapted=adapted,
        sweeps_k=callable(declared(cls, "sweep")),
        bind=declared(cls, "bind"),
        bind_keys=params if declared(cls, "bind") is not None else (),
        check_params=declared(cls, "check_params"),
        skip=declared(cls, "skip"),
    )
