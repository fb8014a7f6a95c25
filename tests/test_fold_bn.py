"""BatchNorm folding: same outputs, fewer modules, and nothing folded that must not be."""

import copy

import pytest
import torch
import torchvision

from clusterbench.infer.fold_bn import fold_batchnorm


def _resnet18_with_real_statistics():
    # Fresh BatchNorms are the identity (mean 0, var 1, weight 1, bias 0), which would fold to
    # nothing; random statistics make the check mean something.
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
    return model.eval()


def test_folding_keeps_the_outputs_and_removes_every_batchnorm():
    model = _resnet18_with_real_statistics()
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == 20
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_hooks_on_inner_layers_still_fire_after_folding():
    model = _resnet18_with_real_statistics()
    folded = copy.deepcopy(model)
    fold_batchnorm(folded)
    seen = {}
    model.layer3.register_forward_hook(lambda m, a, out: seen.__setitem__("plain", out))
    folded.layer3.register_forward_hook(lambda m, a, out: seen.__setitem__("folded", out))
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        model(x), folded(x)
    assert torch.allclose(seen["folded"], seen["plain"], rtol=1e-4, atol=1e-4)


def test_nothing_is_folded_in_training_mode_or_into_batchnorm_with_activation():
    timm = pytest.importorskip("timm")
    assert fold_batchnorm(torchvision.models.resnet18(weights=None).train()) == 0
    # timm's BatchNormAct2d is a BatchNorm2d subclass that also applies the activation
    net = timm.create_model("efficientnet_b0", pretrained=False).eval()
    assert fold_batchnorm(net) == 0


def test_a_model_that_does_not_trace_runs_unchanged():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: symbolic tracing fails
                return self.bn(self.conv(x))
            return x

    model = Branchy().eval()
    assert fold_batchnorm(model) == 0
    assert isinstance(model.bn, torch.nn.BatchNorm2d)
