"""Fold inference-mode BatchNorm into the convolution before it.

A BatchNorm after a convolution is an affine map per channel, so it can live in the
convolution's weights: the same outputs up to rounding, and one memory pass less per BatchNorm
(about 10 % of ResNet152's CPU time). The module tree is changed in place, not rebuilt, so
forward hooks and methods such as timm's ``forward_features`` keep working.
"""

from __future__ import annotations

from collections import Counter


def fold_batchnorm(model) -> int:
    """Fold every ``Conv2d -> BatchNorm2d`` pair whose convolution output feeds only that
    BatchNorm; returns how many were folded (0 when the model does not trace)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        return 0
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # data-dependent control flow etc.: run the model as it is
        return 0
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1:
            continue
        source = node.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        conv, bn = model.get_submodule(source.target), model.get_submodule(node.target)
        # exact types only: subclasses (e.g. timm's BatchNormAct2d) also apply an activation
        if (type(conv) is torch.nn.Conv2d and type(bn) is torch.nn.BatchNorm2d and bn.track_running_stats
                and calls[source.target] == 1 and calls[node.target] == 1):
            pairs.append((source.target, node.target))
    for conv_name, bn_name in pairs:
        _replace(model, conv_name, fuse_conv_bn_eval(model.get_submodule(conv_name), model.get_submodule(bn_name)))
        _replace(model, bn_name, torch.nn.Identity())
    return len(pairs)


def _replace(model, name: str, module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
