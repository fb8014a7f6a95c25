"""Bayesian information criterion of a Gaussian mixture with K components (scikit-learn's
``GaussianMixture.bic``, seeded by the cell), fitted to the features at each K; the smallest wins.
The score does not use the cell's clustering: it asks how many Gaussians the features hold."""

from __future__ import annotations

from typing import Annotated, Literal

from sklearn.mixture import GaussianMixture

from clusterbench.core.params import Interval

from .base import K_ESTIMATORS, KEstimatorBase


@K_ESTIMATORS.register("bic")
class BIC(KEstimatorBase):
    """Gaussian-mixture BIC (scikit-learn); min wins"""

    direction = "minimize"

    def __init__(self, covariance: Literal["full", "diag", "tied", "spherical"] = "diag",
                 n_init: Annotated[int, Interval(1, None)] = 1, reg_covar: Annotated[float, Interval(0, None)] = 1e-3):
        self.covariance, self.n_init, self.reg_covar = covariance, n_init, reg_covar

    def score(self, X, labels, k, fit, seed) -> dict:
        gm = GaussianMixture(k, covariance_type=self.covariance, n_init=self.n_init, reg_covar=self.reg_covar,
                             random_state=seed).fit(X)
        return {"value": float(gm.bic(X)), "converged": float(gm.converged_)}
