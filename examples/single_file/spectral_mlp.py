"""A single-file automed plugin: an MLP on the magnitude spectrum of each signal channel.

No packaging needed: ``automed search ecg.npz --plugin examples/single_file/spectral_mlp.py``
(or ``AUTOMED_PLUGINS_PATH=examples/single_file/spectral_mlp.py``), and
``automed plugins check examples/single_file/spectral_mlp.py`` to test it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automed import Architecture, Spec, hookimpl

__version__ = "0.1.0"


class SpectralMLP(nn.Module):
    """log(1 + |FFT|) per channel, flattened, then a small MLP: shift-invariant by design."""

    def __init__(self, spec: Spec, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        features = spec.channels * (spec.length // 2 + 1)
        blocks: list[nn.Module] = [nn.LayerNorm(features)]
        for i in range(layers):
            blocks += [nn.Linear(features if i == 0 else hidden, hidden), nn.GELU(),
                       nn.Dropout(dropout)]
        blocks.append(nn.Linear(hidden, spec.n_classes))
        self.mlp = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.log1p(torch.fft.rfft(x.float(), dim=-1).abs())
        return self.mlp(spectrum.flatten(1))


class SpectralMLPArchitecture(Architecture):
    name = "spectral_mlp"
    modalities = frozenset({"signal"})
    description = "MLP on the per-channel magnitude spectrum"

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return {
            "hidden": trial.suggest_categorical("hidden", [32, 64, 128]),
            "layers": trial.suggest_int("layers", 1, 3),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return SpectralMLP(spec, int(params["hidden"]), int(params["layers"]),
                           float(params["dropout"]))


@hookimpl
def register_architectures(register):
    register(SpectralMLPArchitecture())
