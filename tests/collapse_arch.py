"""A plugin whose model always predicts class 0: the textbook collapsed candidate."""

from __future__ import annotations

import torch
from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl


class Stuck(nn.Module):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1))  # trainable, yet nothing it can learn
        offset = torch.full((n_classes,), -5.0)
        offset[0] = 5.0
        self.register_buffer("offset", offset)

    def forward(self, x):
        return self.offset.expand(x.shape[0], -1) + 0.0 * self.scale * x.flatten(1)[:, :1]


class Constant(Architecture):
    name = "constant"
    modalities = frozenset({"signal", "image"})

    def search_space(self, trial, spec):
        return {"unused": trial.suggest_categorical("unused", [0])}

    def training_space(self, trial, spec):
        return {"epochs": 12, "batch_size": 8, "lr": 1e-3, "optimizer": "adamw",
                "weight_decay": 0.0, "augment": False, "class_weight": "none",
                "sampler": "shuffle"}

    def build(self, params, spec):
        return Stuck(spec.n_classes)


@hookimpl
def register_architectures(register):
    register(Constant())
