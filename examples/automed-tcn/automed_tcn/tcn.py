"""A temporal convolutional network (Bai, Kolter & Koltun, 2018) for signal classification.

Residual blocks of two dilated causal convolutions; dilation doubles per level, so the
receptive field grows exponentially with depth and a few levels cover a whole ECG beat.
Causal padding (left only) means each output step sees only the past, which keeps the "last"
readout meaningful; the "mean" readout pools over all steps instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automed import Architecture, Spec

MAX_LEVELS = 8


def receptive_field(levels: int, kernel: int) -> int:
    """Input steps one output step sees: two convolutions per level, dilation 2**level."""
    return 1 + 2 * (kernel - 1) * (2 ** levels - 1)


def _levels_to_cover(length: int, kernel: int) -> int:
    levels = 1
    while receptive_field(levels, kernel) < length and levels < MAX_LEVELS:
        levels += 1
    return levels


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded on the left only, so step t never sees step t + 1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int) -> None:
        super().__init__(c_in, c_out, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class TemporalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (1x1 conv when widths differ)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float,
                 norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(CausalConv1d(c_in if i == 0 else c_out, c_out, kernel, dilation))
            if norm:
                layers.append(nn.BatchNorm1d(c_out))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers)
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + self.residual(x))


class TCN(nn.Module):
    """Input ``(batch, channels, length)``, output logits ``(batch, n_classes)``."""

    def __init__(self, channels: int, n_classes: int, *, levels: int, width: int, kernel: int,
                 dropout: float, norm: bool, readout: str) -> None:
        super().__init__()
        blocks = [TemporalBlock(channels if i == 0 else width, width, kernel, 2 ** i, dropout,
                                norm) for i in range(levels)]
        self.blocks = nn.Sequential(*blocks)
        self.readout = readout
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        h = h[..., -1] if self.readout == "last" else h.mean(dim=-1)
        return self.head(h)


class TCNArchitecture(Architecture):
    """The searchable TCN family: depth, width, kernel, dropout, normalisation, readout."""

    name = "tcn"
    modalities = frozenset({"signal"})
    description = "Temporal convolutional network: dilated causal convolutions with residuals"

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        kernel = trial.suggest_categorical("kernel", [3, 5, 7])
        return {
            "kernel": kernel,
            "levels": trial.suggest_int("levels", 2, _levels_to_cover(spec.length, 3)),
            "width": trial.suggest_categorical("width", [16, 32, 64]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            "norm": trial.suggest_categorical("norm", ["batch", "none"]),
            "readout": trial.suggest_categorical("readout", ["mean", "last"]),
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        return {
            "kernel": 5, "levels": _levels_to_cover(spec.length, 5), "width": 32,
            "dropout": 0.1, "norm": "batch", "readout": "mean",
            "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64,
            "epochs": 15, "label_smoothing": 0.0, "class_weight": "balanced", "augment": True,
        }

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return TCN(spec.channels, spec.n_classes, levels=int(params["levels"]),
                   width=int(params["width"]), kernel=int(params["kernel"]),
                   dropout=float(params["dropout"]), norm=params["norm"] == "batch",
                   readout=params["readout"])
