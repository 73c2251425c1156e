"""The rocket family: fixed kernels, biases fitted from data once, only the head trains."""

from __future__ import annotations

import io

import pytest
import torch

from automed.plugin_manager import get_plugin_manager
from automed.searching.training import fit_model, predict_proba
from automed.spec import Spec
from automed.testing import check_architecture


def _rocket():
    return get_plugin_manager().architectures()["rocket"]


def _data(spec: Spec, n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % spec.n_classes
    x = torch.randn((n, *spec.input_shape), generator=g) + y.view(-1, 1, 1).float()
    return x, y


def _params(spec: Spec, **over) -> dict:
    return {**_rocket().default_params(spec), "kernels": 1000, "epochs": 3, "batch_size": 8,
            **over}


def _buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers() if "banks" in k}


@pytest.mark.parametrize(("channels", "length"), [(1, 5), (1, 40), (3, 7), (2, 96)])
@pytest.mark.parametrize("features", ["ppv", "ppv_max", "multi"])
def test_builds_and_trains_on_any_length_even_shorter_than_one_kernel_span(
        channels, length, features):
    spec = Spec("signal", (channels, length), 3)
    x, y = _data(spec)
    torch.manual_seed(0)
    params = _params(spec, features=features, diff=features == "multi")
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0)
    proba = predict_proba(model, x)
    assert proba.shape == (len(x), 3)
    assert torch.isfinite(torch.from_numpy(proba)).all()
    # Kernel spans of 9 taps at dilation >= 1: length 5 and 7 are shorter than any span.
    assert all(b.dilations[0] == 1 for b in model.banks)


def test_kernels_and_biases_are_fixed_buffers_fitted_once_from_the_first_batch():
    spec = Spec("signal", (1, 48), 2)
    x, y = _data(spec, n=16)
    torch.manual_seed(0)
    params = _params(spec, features="multi", diff=True)
    model = _rocket().build(params, spec)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.1.weight", "head.1.bias"}  # the transform has no parameters
    before = _buffers(model)
    assert not any(bool(b.fitted) for b in model.banks)
    fit_model(model, x, y, params, spec, seed=0)
    after = _buffers(model)
    assert all(bool(b.fitted) for b in model.banks)
    for name in ("weight", "kd_index", "quantile", "example"):
        for k in [k for k in before if k.endswith(name)]:
            assert torch.equal(before[k], after[k]), k
    biases = [k for k in after if k.endswith(".bias")]
    assert biases and all(after[k].abs().sum() > 0 for k in biases)  # fitted from data
    # More training (another fit, other batches) moves only the head.
    head = model.head[1].weight.clone()
    fit_model(model, x.flip(0), y.flip(0), params, spec, seed=1)
    for k, v in _buffers(model).items():
        if not k.endswith("padded"):
            assert torch.equal(v, after[k]), k
    assert not torch.equal(head, model.head[1].weight)


def test_biases_come_from_the_data_scale():
    # Quantiles of real convolution outputs: a series 100x larger gets biases 100x larger.
    spec = Spec("signal", (1, 30), 2)
    x, _ = _data(spec)
    torch.manual_seed(0)
    small = _rocket().build(_params(spec), spec).eval()
    small(x)
    torch.manual_seed(0)
    large = _rocket().build(_params(spec), spec).eval()
    large(x * 100)
    torch.testing.assert_close(large.banks[0].bias, small.banks[0].bias * 100, rtol=1e-4,
                               atol=1e-3)


def test_training_cache_does_not_change_what_is_learned():
    # Cached features in training are the features the model computes at prediction time.
    spec = Spec("signal", (1, 32), 2)
    x, y = _data(spec, n=20)
    params = _params(spec, epochs=4)
    torch.manual_seed(0)
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0)
    model.train()
    cached = model.features(x)
    cached = model.features(x)  # second call: from the cache
    model.eval()
    torch.testing.assert_close(cached, model.features(x))


def test_a_reloaded_model_predicts_identically():
    spec = Spec("signal", (2, 40), 3)
    x, y = _data(spec, n=18)
    params = _params(spec, features="ppv_max", diff=True)
    torch.manual_seed(0)
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0)
    want = predict_proba(model, x)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)  # other random kernels and channel subsets before loading
    fresh = _rocket().build(params, spec)
    fresh.load_state_dict(torch.load(buf))
    assert all(bool(b.fitted) for b in fresh.banks)
    torch.testing.assert_close(torch.from_numpy(predict_proba(fresh, x)),
                               torch.from_numpy(want), rtol=0, atol=1e-6)


def test_rocket_passes_the_plugin_conformance_checks():
    assert check_architecture(_rocket(), n_samples=2) == []
