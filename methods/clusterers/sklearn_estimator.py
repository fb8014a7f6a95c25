"""Any scikit-learn style clusterer is a clusterer: a class with ``fit_predict(X)`` (or ``fit(X)``
then ``labels_``) from scikit-learn or another installed package.

Two ways in, one adapter: ``sklearn:estimator=sklearn.cluster.Birch,threshold=0.3`` names any
installed estimator by import path (its parameters checked against its signature), and a plain
class registered as a plug-in is wrapped automatically (:func:`adapt`). The harness's names stand
in for scikit-learn's where they mean the same: ``k`` is ``n_clusters`` (or ``n_components`` of a
mixture), ``seed`` is ``random_state``, so the grid's K, K sweeps and seeds reach the estimator.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache

import numpy as np

from clusterbench.core.contracts import ClusterResult, Context
from clusterbench.core.errors import UserError

from .base import CLUSTERERS, ClustererBase, check_features

# scikit-learn's name -> the harness's, for the parameters the harness fills in
RENAMED = {"n_clusters": "k", "random_state": "seed"}
K_ALIASES = ("n_clusters", "n_components")  # a mixture's components are its clusters


def _k_name(signature: inspect.Signature) -> str | None:
    return next((name for name in K_ALIASES if name in signature.parameters), None)


def sklearn_shaped(cls: type) -> bool:
    """A class with scikit-learn's clustering interface (its methods, looked up on the class)."""
    return isinstance(cls, type) and (callable(inspect.getattr_static(cls, "fit_predict", None))
                                      or callable(inspect.getattr_static(cls, "fit", None)))


class EstimatorClusterer(ClustererBase):
    """A scikit-learn style estimator behind the clusterer contract (a bound subclass per class)."""

    estimator_class: type = object
    renamed: dict[str, str] = {}  # the harness's parameter name -> the estimator's

    def __init__(self, **params):
        self.params = params

    def fit(self, X, context: Context | None = None) -> ClusterResult:
        X = check_features(X, self.params.get("k"), name=self.estimator_class.__name__)
        kwargs = {self.renamed.get(k, k): v for k, v in self.params.items()}
        estimator = self.estimator_class(**kwargs)
        # third-party objects: scikit-learn's two ways of giving labels
        if callable(getattr(estimator, "fit_predict", None)):
            labels = estimator.fit_predict(X)
        else:
            labels = getattr(estimator.fit(X), "labels_", None)
            if labels is None:
                raise UserError(f"{self.estimator_class.__name__}: fit() left no labels_ to read")
        labels = np.asarray(labels, dtype=np.int64)
        info = {"estimator": f"{self.estimator_class.__module__}.{self.estimator_class.__qualname__}"}
        return ClusterResult(labels, info=info)


@cache
def adapt(cls: type) -> type | None:
    """``cls`` behind the clusterer contract, with its own signature under the harness's names;
    None when it does not have scikit-learn's clustering interface."""
    if not sklearn_shaped(cls):
        return None
    signature = inspect.signature(cls.__init__)
    k_name = _k_name(signature)
    renamed = {"k": k_name} if k_name else {}
    if "random_state" in signature.parameters:
        renamed["seed"] = "random_state"
    theirs = {v: k for k, v in renamed.items()}
    params = [p.replace(name=theirs.get(p.name, p.name), kind=inspect.Parameter.KEYWORD_ONLY)
              for p in signature.parameters.values()
              if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if "seed" in renamed:  # the cell's seed fills it; None would make every fit differ
        params = [p.replace(default=0) if p.name == "seed" and p.default is None else p for p in params]

    def __init__(self, **params):
        self.params = params

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params])
    return type(cls.__name__, (EstimatorClusterer,), {
        "__init__": __init__, "__doc__": (cls.__doc__ or "").strip().split("\n\n")[0],
        "__module__": __name__, "estimator_class": cls, "renamed": renamed,
    })


def import_estimator(path: str) -> type:
    """The class at ``module.Name``, as one line when it cannot be had."""
    module, _, name = str(path).rpartition(".")
    if not module:
        raise UserError(f"clusterer 'sklearn': estimator={path!r} must be an import path such as "
                        "sklearn.cluster.Birch")
    try:
        cls = getattr(importlib.import_module(module), name)  # third-party: a module's attribute by name
    except ImportError as e:
        raise UserError(f"clusterer 'sklearn': estimator={path}: cannot import {module} ({e.name or e})") from None
    except AttributeError:
        raise UserError(f"clusterer 'sklearn': estimator={path}: {module} has no {name!r}") from None
    if not sklearn_shaped(cls):
        raise UserError(f"clusterer 'sklearn': estimator={path} has no fit_predict or fit: not a clusterer")
    return cls


@CLUSTERERS.register("sklearn")
class SklearnEstimator(ClustererBase):
    """Any installed scikit-learn style clusterer by import path, e.g.
    ``sklearn:estimator=sklearn.cluster.SpectralClustering,affinity=nearest_neighbors``; its other
    parameters are the estimator's own (``k`` for ``n_clusters``/``n_components``, ``seed`` for
    ``random_state``), checked against its signature."""

    def __init__(self, estimator: str):
        self.estimator = estimator

    @staticmethod
    def bind(params: dict) -> type:
        if "estimator" not in params:
            raise UserError("clusterer 'sklearn' needs parameter(s): estimator (e.g. sklearn:estimator=sklearn.cluster.Birch)")
        return adapt(import_estimator(params["estimator"]))

    def fit(self, X, context: Context | None = None) -> ClusterResult:
        raise UserError("clusterer 'sklearn': create it through the registry, which binds the estimator")
