"""LSTM networks, stacked, optionally bidirectional, pooled by last state or attention.

Attention (or max+mean) pooling lets a long clinical text or a sequence be summarised by its
most telling steps instead of its final state, which forgets the beginning of long inputs.
A convolutional stem (``stem="conv"``, the default) in front makes it a CNN-LSTM (DanQ for
DNA): the LSTM reads pooled motif / waveform detectors instead of raw samples.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec

from ._sequence import (
    SEQUENCE_MODALITIES,
    AttentionPool,
    Stem,
    default_recurrent_params,
    head,
    pool_steps,
    run_recurrent,
    sequence_training_space,
    suggest_stem,
)


class LSTMModel(nn.Module):
    def __init__(self, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        # A conv stem is as wide as the recurrent layer (DanQ: as many motif filters as units).
        self.stem = Stem(spec, params, dim=int(params["hidden"])
                         if params.get("stem") == "conv" else None)
        hidden, layers = int(params["hidden"]), int(params["layers"])
        self.lstm = nn.LSTM(self.stem.out_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=bool(params["bidirectional"]),
                            dropout=float(params["dropout"]) if layers > 1 else 0.0)
        # Forget-gate bias 1 (Jozefowicz et al., 2015): the cell keeps its memory from the start
        # instead of halving it every step, so gradients reach early steps.
        for name, value in self.lstm.named_parameters():
            if name.startswith("bias_ih"):
                with torch.no_grad():
                    value[hidden:2 * hidden].fill_(1.0)
        out_dim = hidden * (2 if params["bidirectional"] else 1)
        self.pooling = params["pooling"]
        self.pool = AttentionPool(out_dim) if self.pooling == "attention" else None
        out_dim *= 2 if self.pooling == "maxmean" else 1
        self.head = head(out_dim, spec.n_classes, float(params["dropout"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, mask = self.stem(x)
        out, last = run_recurrent(self.lstm, steps, mask)
        if self.pool is not None:
            return self.head(self.pool(out, mask))
        return self.head(last if self.pooling == "last" else pool_steps(out, mask, self.pooling))


class LSTM(Architecture):
    name = "lstm"
    modalities = SEQUENCE_MODALITIES
    description = ("LSTM, stacked, optionally bidirectional, conv stem; last-state, attention "
                   "or max+mean pooling")
    cpu_bf16 = True  # measured faster under bf16 autocast (BENCHMARKS.md, "bf16 on the CPU")

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        params = suggest_stem(trial, spec)
        params.update({
            "hidden": trial.suggest_categorical("hidden", [32, 64, 128]),
            "layers": trial.suggest_int("layers", 1, 2),
            "bidirectional": trial.suggest_categorical("bidirectional", [False, True]),
            "pooling": trial.suggest_categorical("pooling", ["last", "attention", "maxmean"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        })
        return params

    def default_params(self, spec: Spec) -> dict[str, Any]:
        return default_recurrent_params(spec, pooling="attention")

    def training_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return sequence_training_space(trial, spec)

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return LSTMModel(params, spec)


@hookimpl
def register_architectures(register):
    register(LSTM())
