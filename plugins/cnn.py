"""Convolutional networks: 2-D for images, 1-D for signals.

A stack of blocks (conv -> norm -> ReLU, repeated, then pooling), global average pooling and a
linear head. Global pooling keeps the head small whatever the input size, which matters on
small medical datasets; BatchNorm and dropout are searchable regularisers.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec


def _max_blocks(spec: Spec) -> int:
    # Each block halves the resolution; stop before the feature map collapses below 3.
    size = min(spec.input_shape[1:])
    return max(1, min(4, int(math.log2(max(size, 2) / 3)) + 1))


class CNN(Architecture):
    name = "cnn"
    modalities = frozenset({"image", "signal"})
    description = "Convolutional network (2-D for images, 1-D for signals) with global pooling"
    cpu_bf16 = True  # measured faster under bf16 autocast (BENCHMARKS.md, "bf16 on the CPU")

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        is_signal = spec.modality == "signal"
        kernels = [3, 5, 7, 9] if is_signal else [3, 5]
        return {
            "blocks": trial.suggest_int("blocks", 1, _max_blocks(spec)),
            "width": trial.suggest_categorical("width", [16, 32, 64]),
            "convs_per_block": trial.suggest_int("convs_per_block", 1, 2),
            "kernel": trial.suggest_categorical("kernel", kernels),
            "pool": trial.suggest_categorical("pool", ["max", "avg"]),
            "norm": trial.suggest_categorical("norm", ["batch", "none"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        # The recipe measured in BENCHMARKS.md: BN-CNN 32/64/128, class-weighted loss and
        # affine augmentation (no flips: they hurt chest X-rays). Small training sets need
        # more optimiser steps, so they get smaller batches and more epochs.
        small = spec.extra.get("n_train", 0) < 2000
        return {
            "blocks": min(3, _max_blocks(spec)), "width": 32, "convs_per_block": 1,
            "kernel": 5 if spec.modality == "signal" else 3, "pool": "max", "norm": "batch",
            "dropout": 0.1,
            "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4,
            "batch_size": 32 if small else 128, "epochs": 30 if small else 15,
            "label_smoothing": 0.0, "class_weight": "balanced", "sampler": "balanced",
            "augment": True,
        }

    def priority(self, spec: Spec) -> int:
        return 10  # the measured recipe for images; FCN-like for signals

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        two_d = spec.modality == "image"
        conv = nn.Conv2d if two_d else nn.Conv1d
        norm = nn.BatchNorm2d if two_d else nn.BatchNorm1d
        pool = {"max": nn.MaxPool2d if two_d else nn.MaxPool1d,
                "avg": nn.AvgPool2d if two_d else nn.AvgPool1d}[params["pool"]]
        gap = nn.AdaptiveAvgPool2d(1) if two_d else nn.AdaptiveAvgPool1d(1)
        k = int(params["kernel"])
        layers: list[nn.Module] = []
        c_in = spec.channels
        blocks = min(int(params["blocks"]), _max_blocks(spec))
        for b in range(blocks):
            c_out = min(int(params["width"]) * 2 ** b, 256)
            for _ in range(int(params["convs_per_block"])):
                use_norm = params["norm"] == "batch"
                layers += [conv(c_in, c_out, k, padding=k // 2, bias=not use_norm)]
                if use_norm:
                    layers.append(norm(c_out))
                layers.append(nn.ReLU(inplace=True))
                c_in = c_out
            if b < blocks - 1:
                layers.append(pool(2))
        layers += [gap, nn.Flatten(), nn.Dropout(float(params["dropout"])),
                   nn.Linear(c_in, spec.n_classes)]
        return nn.Sequential(*layers)


@hookimpl
def register_architectures(register):
    register(CNN())
