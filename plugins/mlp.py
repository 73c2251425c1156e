"""Multi-layer perceptrons for tabular records, flattened short signals, and text.

Tabular inputs arrive standardized and one-hot encoded (see ``automed.data.tabular``), so a plain
MLP with normalization and dropout is the strong, fast baseline for hundreds of records.
Text goes through a word embedding pooled over the document (mean, or mean and max: SWEM /
fastText style), which on a few thousand abstracts beats recurrent models trained from
scratch at a fraction of their cost.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec


class MLP(Architecture):
    name = "mlp"
    modalities = frozenset({"tabular", "signal", "text"})
    description = ("Multi-layer perceptron for tabular records (signals flattened, text as "
                   "pooled word embeddings)")

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        stem = {}
        if spec.modality == "text":
            stem = {"embedding": trial.suggest_categorical("embedding", [64, 128, 256]),
                    "pooling": trial.suggest_categorical("pooling", ["mean", "meanmax"])}
        return {**stem,
            "layers": trial.suggest_int("layers", 1, 3),
            "width": trial.suggest_categorical("width", [32, 64, 128, 256]),
            "norm": trial.suggest_categorical("norm", ["batch", "layer", "none"]),
            "activation": trial.suggest_categorical("activation", ["relu", "gelu"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        if spec.modality == "text":
            # Many classes with a test mix like the training mix: unweighted loss for accuracy.
            return {"embedding": 128, "pooling": "meanmax", "layers": 1, "width": 256,
                    "norm": "none", "activation": "relu", "dropout": 0.3, "optimizer": "adamw",
                    "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 32, "epochs": 20,
                    "label_smoothing": 0.0, "class_weight": "none"}
        return {"layers": 2, "width": 128, "norm": "batch", "activation": "relu",
                "dropout": 0.2, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4,
                "batch_size": 64, "epochs": 30 if spec.modality == "tabular" else 15,
                "label_smoothing": 0.0, "class_weight": "balanced",
                **({"augment": True} if spec.modality == "signal" else {})}

    def priority(self, spec: Spec) -> int:
        # Pooled embeddings and plain MLPs are the fast, strong first try for text and tables.
        return 10 if spec.modality in ("text", "tabular") else 50

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        width, layers = int(params["width"]), int(params["layers"])
        norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm,
                "none": lambda _: nn.Identity()}[params["norm"]]
        act = nn.GELU if params["activation"] == "gelu" else nn.ReLU
        mods: list[nn.Module] = [nn.Flatten()]
        n_in = math.prod(spec.input_shape)
        if spec.modality == "text":
            stem = PooledEmbedding(spec.vocab_size, int(params["embedding"]), params["pooling"])
            mods, n_in = [stem], stem.out_features
        for _ in range(layers):
            mods += [nn.Linear(n_in, width), norm(width), act(),
                     nn.Dropout(float(params["dropout"]))]
            n_in = width
        mods.append(nn.Linear(n_in, spec.n_classes))
        return nn.Sequential(*mods)


class PooledEmbedding(nn.Module):
    """Token ids (0 = padding) -> the mean (and max) of their embeddings over the document."""

    def __init__(self, vocab_size: int, dim: int, pooling: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.with_max = pooling == "meanmax"
        self.out_features = dim * (2 if self.with_max else 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).unsqueeze(-1)
        h = self.embed(ids)
        mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        if not self.with_max:
            return mean
        peak = h.masked_fill(~mask, float("-inf")).amax(1)
        return torch.cat([mean, torch.where(torch.isfinite(peak), peak, 0.0)], dim=1)


@hookimpl
def register_architectures(register):
    register(MLP())
