"""The sequence families' convolutional stem: used by default, and shape-safe for any length."""

from __future__ import annotations

import pytest
import torch

from automed.plugin_manager import PluginManager
from automed.plugins._sequence import Stem
from automed.spec import Spec

_ARCHS = PluginManager(load_entry_points=False).architectures()
FAMILIES = ("rnn", "lstm", "attention")


def _spec(modality: str, length: int) -> Spec:
    if modality == "signal":
        return Spec("signal", (2, length), 3)
    if modality == "biosequence":
        return Spec("biosequence", (length,), 3, vocab_size=6, alphabet="dna",
                    extra={"symbols": "ACGTN"})
    return Spec("text", (length,), 3, vocab_size=50)


def _batch(spec: Spec, n: int = 4, real: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if spec.modality == "signal":
        return torch.randn(n, spec.channels, spec.length, generator=g)
    x = torch.randint(1, spec.vocab_size, (n, spec.length), generator=g)
    if real is not None:
        x[:, real:] = 0  # right padding
    return x


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("modality", ["signal", "biosequence", "text"])
def test_default_uses_conv_stem(family, modality):
    spec = _spec(modality, 96)
    params = _ARCHS[family].default_params(spec)
    assert params["stem"] == "conv"
    model = _ARCHS[family].build(params, spec)
    stem = model.stem
    assert stem.kind == "conv"
    conv = stem.merge[0]
    assert isinstance(conv, torch.nn.Conv1d) and conv.kernel_size == (params["stem_kernel"],)

    # The stem's convolution is on the path: its gradient is non-zero after one backward.
    model.train()
    out = model(_batch(spec))
    out.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("modality", ["signal", "biosequence", "text"])
@pytest.mark.parametrize("length", [1, 3, 7, 50, 97])
@pytest.mark.parametrize("stem", ["conv", "patch"])
def test_shapes_for_varied_lengths(family, modality, length, stem):
    # Lengths below the kernel (up to 15) and the patch (up to 16), odd lengths, and padding.
    spec = _spec(modality, length)
    arch = _ARCHS[family]
    for pooling in {"rnn": ["mean", "maxmean"], "lstm": ["attention", "maxmean"],
                    "attention": ["mean", "maxmean"]}[family]:
        params = {**arch.default_params(spec), "stem": stem, "pooling": pooling,
                  "stem_kernel": 15 if modality == "biosequence" else 9, "patch": 4}
        model = arch.build(params, spec).eval()
        with torch.no_grad():
            out = model(_batch(spec, real=max(1, length // 2)))
        assert out.shape == (4, 3)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("modality", ["biosequence", "text"])
def test_conv_stem_ignores_padding(modality):
    """Right padding does not change a row's stem output at its real steps."""
    spec = _spec(modality, 24)
    stem = Stem(spec, {"embedding": 8, "stem": "conv", "stem_kernel": 3, "patch": 4}).eval()
    short = _batch(spec, n=1)[:, :12]
    padded = torch.cat([short, torch.zeros(1, 12, dtype=short.dtype)], dim=1)
    with torch.no_grad():
        a, mask_a = stem(short)
        b, mask_b = stem(padded)
    assert mask_a.tolist() == [[True] * 3]
    assert mask_b.tolist() == [[True] * 3 + [False] * 3]
    # The padding id embeds to zeros, the same zeros the convolution pads with, and padded
    # steps are zeroed before the max-pool: the real steps are unchanged, the padded ones zero.
    assert torch.allclose(a, b[:, :3], atol=1e-6)
    assert torch.equal(b[:, 3:], torch.zeros_like(b[:, 3:]))


def test_search_space_offers_stems_and_pooling():
    import optuna

    spec = _spec("signal", 96)
    seen: dict[str, set] = {"stem": set(), "pooling": set()}
    for family in FAMILIES:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(30):
            trial = study.ask()
            params = _ARCHS[family].search_space(trial, spec)
            seen["stem"].add(params["stem"])
            seen["pooling"].add(params["pooling"])
            assert ("stem_kernel" in params) == (params["stem"] == "conv")
            study.tell(trial, 0.0)
    assert seen["stem"] == {"conv", "patch"}
    assert "maxmean" in seen["pooling"]
