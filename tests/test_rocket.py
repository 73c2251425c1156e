"""The rocket family: fixed kernels, biases fitted from data once, only the head is fitted
(in closed form by ridge, or trained)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from automed.plugin_manager import get_plugin_manager
from automed.plugins.rocket import fit_ridge
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
@pytest.mark.parametrize("head", ["ridge", "trained"])
def test_builds_and_trains_on_any_length_even_shorter_than_one_kernel_span(
        channels, length, features, head):
    spec = Spec("signal", (channels, length), 3)
    x, y = _data(spec)
    torch.manual_seed(0)
    params = _params(spec, features=features, diff=features == "multi", head=head)
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
    params = _params(spec, features="multi", diff=True, head="trained")
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
    params = _params(spec, epochs=4, head="trained")
    torch.manual_seed(0)
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0)
    model.train()
    cached = model.features(x)
    cached = model.features(x)  # second call: from the cache
    model.eval()
    torch.testing.assert_close(cached, model.features(x))


@pytest.mark.parametrize("head", ["ridge", "trained"])
def test_a_reloaded_model_predicts_identically(head):
    spec = Spec("signal", (2, 40), 3)
    x, y = _data(spec, n=18)
    params = _params(spec, features="ppv_max", diff=True, head=head)
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


def _ridge_problem(n: int, p: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    z = torch.randn(n, p, generator=g, dtype=torch.float64)
    z[:, :3] += 1.5 * torch.nn.functional.one_hot(y, 3)  # three informative features
    return z, y


@pytest.mark.parametrize(("n", "p"), [(12, 40), (40, 6)])  # the dual and the primal solve
@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_leave_one_out_scores_are_those_of_refitting_without_each_row(n, p, weighted):
    z, y = _ridge_problem(n, p)
    weight = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64) if weighted else None
    fit = fit_ridge(z, y, 3, weight, alphas=(0.7,))
    for i in range(n):
        keep = torch.arange(n) != i
        without = fit_ridge(z[keep], y[keep], 3, weight, alphas=(0.7,))
        score = z[i] @ without["weight"] + without["bias"]
        torch.testing.assert_close(fit["loo"][i], score, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("n", "p"), [(15, 60), (60, 8)])
def test_ridge_picks_the_penalty_and_coefficients_of_scikit_learns_ridge_classifier_cv(n, p):
    from sklearn.linear_model import RidgeClassifierCV

    z, y = _ridge_problem(n, p, seed=1)
    y = y % 2  # binary: scikit-learn fits one column, the second is its negative here
    alphas = (0.01, 0.1, 1.0, 10.0, 100.0)
    fit = fit_ridge(z, y, 2, alphas=alphas)
    ref = RidgeClassifierCV(alphas=alphas).fit(z.numpy(), y.numpy())
    assert fit["alpha"] == ref.alpha_
    np.testing.assert_allclose(fit["weight"][:, 1].numpy(), np.ravel(ref.coef_), rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(fit["weight"][:, 0].numpy(), -np.ravel(ref.coef_), rtol=1e-6,
                               atol=1e-9)
    intercept = float(np.ravel(ref.intercept_)[0])
    assert fit["bias"][1].item() == pytest.approx(intercept, rel=1e-6, abs=1e-9)


def test_the_ridge_head_is_fitted_in_one_step_with_calibrated_probabilities():
    spec = Spec("signal", (1, 40), 2)
    x, y = _data(spec, n=40)
    epochs = []
    torch.manual_seed(0)
    params = _params(spec, head="ridge", epochs=5)
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0,
                      on_epoch=lambda epoch, loss: epochs.append((epoch, loss)))
    assert [e for e, _ in epochs] == [0]  # one fit, reported once: no gradient epochs
    assert 0.0 <= epochs[0][1] < np.log(2)  # leave-one-out cross-entropy, below chance
    model.eval()
    features = model.features(x)
    torch.testing.assert_close(model.norm.running_mean, features.mean(0))
    x_new, y_new = _data(spec, n=40, seed=1)
    proba = predict_proba(model, x_new)
    assert (proba.argmax(1) == y_new.numpy()).mean() >= 0.9
    # The temperature scales scores to probabilities, not to 0/1 (the train rows fit exactly).
    assert 0.6 < proba.max(1).mean() < 0.999
    trained = []
    params = _params(spec, head="trained", epochs=5)
    fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0,
              on_epoch=lambda epoch, loss: trained.append(epoch))
    assert trained == [0, 1, 2, 3, 4]


def test_ridge_is_the_default_head_on_small_sets_only():
    from automed.plugins.rocket import RIDGE_MAX_ROWS

    small = Spec("signal", (1, 40), 2, extra={"n_train": 100})
    large = Spec("signal", (1, 40), 2, extra={"n_train": RIDGE_MAX_ROWS + 1})
    assert _rocket().default_params(small)["head"] == "ridge"
    assert _rocket().default_params(large)["head"] == "trained"


def test_separable_data_do_not_saturate_the_ridge_probabilities():
    # Perfectly separated leave-one-out scores: against hard targets the temperature grew
    # until every probability was 1.000 here (100, its grid's end, on ECGFiveDays); against
    # Platt's targets a class of 20 rows aims at 21/22.
    y = torch.arange(40) % 2
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 60, generator=g, dtype=torch.float64)
    z[:, 0] += 20.0 * (2 * y - 1)
    fit = fit_ridge(z, y, 2)
    top = torch.softmax(fit["temperature"] * fit["loo"], 1).max(1).values
    assert (fit["loo"].argmax(1) == y).all()
    assert 0.9 < float(top.mean()) < 0.99


def _reference_hydra(x: torch.Tensor, weights: list[torch.Tensor], k: int = 8, g: int = 64
                     ) -> torch.Tensor:
    """Hydra's transform as its authors' reference code writes it (univariate, g > 1),
    with the given kernels (one (2, k * g / 2, 1, 9) tensor per dilation)."""
    import torch.nn.functional as F

    n, half = x.shape[0], g // 2
    max_exponent = np.log2((x.shape[-1] - 1) / (9 - 1))
    dilations = 2 ** torch.arange(int(max_exponent) + 1)
    paddings = torch.div((9 - 1) * dilations, 2, rounding_mode="floor").int()
    diff_x = torch.diff(x)
    out = []
    for di in range(len(dilations)):
        d, p = dilations[di].item(), paddings[di].item()
        for diff_index in range(2):
            z = F.conv1d(x if diff_index == 0 else diff_x, weights[di][diff_index], dilation=d,
                         padding=p).view(n, half, k, -1)
            max_values, max_indices = z.max(2)
            count_max = torch.zeros(n, half, k)
            min_values, min_indices = z.min(2)
            count_min = torch.zeros(n, half, k)
            count_max.scatter_add_(-1, max_indices, max_values)
            count_min.scatter_add_(-1, min_indices, torch.ones_like(min_values))
            out += [count_max, count_min]
    return torch.cat(out, 1).view(n, -1)


def test_hydra_features_are_those_of_the_reference_hydra_transform():
    from automed.plugins.rocket import HydraBank

    torch.manual_seed(0)
    bank = HydraBank(1, 100)
    assert bank.dilations == [1, 2, 4, 8]  # 2^0 .. 2^floor(log2(99 / 8))
    w = bank.weight  # (dilations, 2, k * g / 2, 1, 9): zero mean, unit L1 norm per kernel
    torch.testing.assert_close(w.mean(-1), torch.zeros(w.shape[:-1]), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.abs().sum(-1), torch.ones(w.shape[:-1]))
    x = torch.randn(7, 1, 100)
    want = _reference_hydra(x, [w[i] for i in range(len(bank.dilations))])
    assert bank.n_features == want.shape[1] == 4 * 2 * 2 * 32 * 8
    torch.testing.assert_close(bank(x), want.clamp(min=0).sqrt())


def test_hydra_columns_are_scaled_as_hydras_sparse_scaler_by_the_ridge_head():
    spec = Spec("signal", (1, 60), 2)
    x, y = _data(spec, n=30)
    torch.manual_seed(0)
    params = _params(spec, hydra=True, head="ridge")
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0).eval()
    features = model.features(x)
    cut = model.sparse_from
    assert features.shape[1] == cut + model.hydra.n_features
    scaled = model._keep_zeros(model.norm(features), model._nonzero(features))
    # Hydra's SparseScaler (fitted on the same rows; the population standard deviation):
    h = features[:, cut:]  # already the square roots of the clamped counts
    damp = (h == 0).float().mean(0) ** 4 + 1e-8
    want = (h - h.mean(0)) * (h != 0) / (h.std(0, unbiased=False) + damp)
    assert (h == 0).any()  # min counts of kernels that never lose: kept at zero
    torch.testing.assert_close(scaled[:, cut:], want, rtol=1e-4, atol=1e-4)
    # The rocket columns are standardised as before.
    rocket = scaled[:, :cut]
    torch.testing.assert_close(rocket.mean(0), torch.zeros(cut), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("channels", "length"), [(1, 5), (3, 7), (2, 96), (12, 30)])
@pytest.mark.parametrize("head", ["ridge", "trained"])
def test_hydra_builds_trains_and_reloads_on_any_shape(channels, length, head):
    spec = Spec("signal", (channels, length), 3)
    x, y = _data(spec)
    torch.manual_seed(0)
    params = _params(spec, features="multi", diff=True, hydra=True, head=head)
    model = fit_model(_rocket().build(params, spec), x, y, params, spec, seed=0)
    want = predict_proba(model, x)
    assert want.shape == (len(x), 3) and np.isfinite(want).all()
    if channels > 1:  # each group reads clip(C / 2, 2, 8) channels
        used = (model.hydra.weight.abs().sum(-1) > 0).sum(-1)
        assert (used == min(channels, max(2, min(channels // 2, 8)))).all()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    fresh = _rocket().build(params, spec)
    fresh.load_state_dict(torch.load(buf))
    torch.testing.assert_close(torch.from_numpy(predict_proba(fresh, x)),
                               torch.from_numpy(want), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("channels", "length", "kinds"),
                         [(1, 136, "ppv"), (3, 7, "ppv_max"), (2, 97, "ppv"), (1, 2100, "ppv"),
                          (2, 50, "multi")])
def test_pooled_features_are_the_proportions_of_positive_values_over_each_pairs_positions(
        channels, length, kinds):
    from automed.plugins.rocket import RocketBank

    torch.manual_seed(0)
    bank = RocketBank(channels, length, 2000, kinds)
    x = torch.randn(20, channels, length)
    bank.fit(x[:5])
    got = bank(x)
    # The definition, written out with conv1d: feature f thresholds pair kd_index[f]'s
    # output at bias[f], over the positions that pair pools (valid).
    import torch.nn.functional as F

    conv = torch.cat([F.conv1d(x, bank.weight[84 * i:84 * (i + 1)], dilation=d,
                               padding=4 * d)[..., :length]
                      for i, d in enumerate(bank.dilations)], dim=1)
    valid = bank._valid(length, x.device)[bank.kd_index]
    positive = (conv[:, bank.kd_index] > bank.bias[None, :, None]) & valid
    ppv = positive.float().sum(-1) / valid.sum(-1)
    n = len(bank.kd_index)
    torch.testing.assert_close(got[:, :n], ppv, rtol=0, atol=1.5 / length)  # one flip at most
    assert (got[:, :n] == ppv).float().mean() > 0.999
    if kinds == "ppv_max":
        torch.testing.assert_close(got[:, n:], conv.masked_fill(
            ~bank._valid(length, x.device), float("-inf")).amax(-1), rtol=1e-5, atol=1e-5)
    if kinds == "multi":  # MultiRocket's other three, from their definitions, row by row
        z = (conv[:, bank.kd_index] - bank.bias[None, :, None]).numpy()
        keep = positive.numpy()
        for i in range(3):
            for f in range(n):
                where = np.flatnonzero(keep[i, f])
                runs = np.diff(np.flatnonzero(np.diff(np.r_[0, keep[i, f], 0])))[::2]
                want = [z[i, f, where].mean() if len(where) else 0.0,
                        where.mean() / length if len(where) else -1.0,
                        (runs.max() if len(runs) else 0) / length]
                np.testing.assert_allclose(got[i, [n + f, 2 * n + f, 3 * n + f]].numpy(), want,
                                           rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 8), (5, 7, 136), (2, 3, 2040), (4, 2048), (1, 0)])
def test_count_true_counts_as_sum_does(shape):
    from automed.plugins.rocket import count_true

    g = torch.Generator().manual_seed(0)
    for p in (0.0, 0.3, 1.0):
        width = -(-shape[-1] // 8) * 8
        mask = torch.rand((*shape[:-1], width), generator=g) < p
        assert torch.equal(count_true(mask), mask.sum(-1).int())
