"""The training loop: learns, checks the model's contract, fails a candidate cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from automed.errors import CandidateError
from automed.plugin_manager import get_plugin_manager
from automed.searching.training import augment_batch, fit_model, predict_proba
from automed.spec import Spec


def _separable(n: int = 64, length: int = 32):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, length, generator=g) * 0.3
    x[y == 1, :, 10:20] += 1.5  # class 1 has a bump
    return x, y


def test_cnn_learns_a_separable_signal_task():
    x, y = _separable()
    spec = Spec("signal", (1, 32), 2)
    cnn = get_plugin_manager().architectures()["cnn"]
    params = dict(cnn.default_params(spec), epochs=8, augment=False)
    torch.manual_seed(0)
    model = fit_model(cnn.build(params, spec), x, y, params, spec)
    proba = predict_proba(model, x)
    assert proba.shape == (64, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert (proba.argmax(1) == y.numpy()).mean() >= 0.95


def test_wrong_output_shape_fails_the_candidate():
    x, y = _separable()
    spec = Spec("signal", (1, 32), 2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 3))  # three logits for two classes
    with pytest.raises(CandidateError, match=r"shape \(64, 3\), expected \(64, 2\)"):
        fit_model(model, x, y, {"epochs": 1, "batch_size": 64}, spec)


class _Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(32, 2)

    def forward(self, x):
        return self.lin(x.flatten(1)) * float("nan")


def test_nan_loss_fails_the_candidate():
    x, y = _separable()
    spec = Spec("signal", (1, 32), 2)
    with pytest.raises(CandidateError, match="loss became nan"):
        fit_model(_Exploding(), x, y, {"epochs": 1}, spec)


def test_augmentation_keeps_shapes_and_changes_values():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(5, 1, 28, 28)
    out = augment_batch(img, "image", g)
    assert out.shape == img.shape and not torch.allclose(out, img)
    sig = torch.rand(5, 2, 50)
    out = augment_batch(sig, "signal", g)
    assert out.shape == sig.shape and not torch.allclose(out, sig)


class _DtypeSpy(nn.Module):
    """Records the dtype a Linear layer computes in: bf16 under CPU autocast, else float32."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(32, 2)
        self.seen: set = set()

    def forward(self, x):
        out = self.lin(x.flatten(1))
        self.seen.add(out.dtype)
        return out


@pytest.mark.parametrize("env, opted_in, expected", [
    ("1", True, torch.bfloat16),   # a family that opted in, on a CPU said to compute bf16
    ("1", False, torch.float32),   # a family that did not opt in stays in float32
    ("0", True, torch.float32),    # AUTOMED_CPU_BF16=0 keeps everything in float32
])
def test_cpu_bf16_only_for_families_that_opt_in(monkeypatch, env, opted_in, expected):
    monkeypatch.setenv("AUTOMED_CPU_BF16", env)
    x, y = _separable()
    spec = Spec("signal", (1, 32), 2)
    model = _DtypeSpy()
    fit_model(model, x, y, {"epochs": 1, "batch_size": 32}, spec, cpu_bf16=opted_in)
    assert model.seen == {expected}
    model.seen.clear()
    proba = predict_proba(model, x, cpu_bf16=opted_in)
    assert model.seen == {expected} and proba.dtype == np.float64

