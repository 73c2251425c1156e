"""Multi-layer perceptrons for tabular clinical records (and flattened short signals).

Tabular inputs arrive standardized and one-hot encoded (see ``automed.tabular``), so a plain
MLP with normalization and dropout is the strong, fast baseline for hundreds of records.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec


class MLP(Architecture):
    name = "mlp"
    modalities = frozenset({"tabular", "signal"})
    description = "Multi-layer perceptron for tabular records (signals are flattened)"

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return {
            "layers": trial.suggest_int("layers", 1, 3),
            "width": trial.suggest_categorical("width", [32, 64, 128, 256]),
            "norm": trial.suggest_categorical("norm", ["batch", "layer", "none"]),
            "activation": trial.suggest_categorical("activation", ["relu", "gelu"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        return {"layers": 2, "width": 128, "norm": "batch", "activation": "relu",
                "dropout": 0.2, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4,
                "batch_size": 64, "epochs": 30 if spec.modality == "tabular" else 15,
                "label_smoothing": 0.0, "class_weight": "balanced",
                **({"augment": True} if spec.modality == "signal" else {})}

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        width, layers = int(params["width"]), int(params["layers"])
        norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm,
                "none": lambda _: nn.Identity()}[params["norm"]]
        act = nn.GELU if params["activation"] == "gelu" else nn.ReLU
        mods: list[nn.Module] = [nn.Flatten()]
        n_in = math.prod(spec.input_shape)
        for _ in range(layers):
            mods += [nn.Linear(n_in, width), norm(width), act(),
                     nn.Dropout(float(params["dropout"]))]
            n_in = width
        mods.append(nn.Linear(n_in, spec.n_classes))
        return nn.Sequential(*mods)


@hookimpl
def register_architectures(register):
    register(MLP())
