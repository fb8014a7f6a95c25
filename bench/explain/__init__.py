"""Sanity checks of what a classifier network looks at: Grad-CAM and guided backprop.

:func:`clusterbench.explain.command.explain` backs ``clusterbench explain``;
:func:`clusterbench.explain.command.explain_artifacts` the panel ``run --explain N`` puts into
each cell's MLflow run.
"""

from .cam import METHODS, Explained, check_explainable, explain_images, sample_indices
from .command import explain, explain_artifacts

__all__ = ["METHODS", "Explained", "check_explainable", "explain", "explain_artifacts", "explain_images",
           "sample_indices"]
