"""An exponential moving average of the network's weights (a mean teacher): the features that
are clustered each epoch and the final ones come from it, so the pseudo-labels follow the slow
trend of training rather than the last few hundred SGD steps (on Fashion-MNIST 70k it kept the
per-epoch NMI from falling back in the middle epochs; the README has the runs)."""

from __future__ import annotations

import copy


def _tracked(net):
    """The tensors that define the embedding: parameters and buffers, not the epoch's top layer."""
    params = [p for name, p in net.named_parameters() if not name.startswith("top_layer.")]
    buffers = [b for name, b in net.named_buffers() if not name.startswith("top_layer.")]
    return params, buffers


class WeightAverage:
    """``decay`` per SGD step, of the network given here (its tensors are updated in place by
    SGD and by loading a checkpoint, so they are paired once). torch's
    ``swa_utils.AveragedModel`` pairs the two networks' parameters by position, which breaks
    here: the training network carries a top layer the average does not have, so the pairing
    is by name, without the top layer."""

    def __init__(self, net, decay: float):
        self.decay = decay
        top, net.top_layer = net.top_layer, None
        self.net = copy.deepcopy(net)
        net.top_layer = top
        for p in self.net.parameters():
            p.requires_grad_(False)
        (params, buffers), (avg_params, avg_buffers) = _tracked(net), _tracked(self.net)
        self._params = list(zip(avg_params, params, strict=True))
        self._buffers = list(zip(avg_buffers, buffers, strict=True))

    def update(self) -> None:
        import torch

        with torch.no_grad():
            for avg, p in self._params:
                avg.lerp_(p, 1.0 - self.decay)
            for avg, b in self._buffers:  # BatchNorm statistics (and counters)
                if avg.dtype.is_floating_point:
                    avg.lerp_(b, 1.0 - self.decay)
                else:
                    avg.copy_(b)


def lag_warning(decay: float, steps: int) -> str | None:
    """A line when the average spans a large part of the whole training of ``steps`` SGD steps (its
    horizon, 1 / (1 - decay) steps, over half of them): its features then still carry the early,
    barely trained weights. Both ends are measured: on digits (120 steps) ``ema=0.999`` ended below
    the untrained network at 2 seeds of 3; on 70k Fashion-MNIST (2,740 steps, a horizon of 37%) it
    is part of the recipe that reaches the NMI goal, so that must not warn."""
    if decay <= 0 or steps <= 0:
        return None
    horizon = 1.0 / (1.0 - decay)
    if horizon <= steps / 2:
        return None
    return (f"deepcluster: warning: ema={decay} averages the last ~{horizon:.0f} SGD steps, but this training "
            f"takes {steps}: the averaged features lag behind it (use a smaller ema or more epochs)")
