"""Transformer encoders for text, biosequences and (cut into patches) signals.

A convolutional stem (``stem="conv"``, the default) in front gives the encoder local features
(waveform parts, motifs, n-grams) pooled ``patch`` steps at a time instead of raw patches;
the encoder is a plain transformer over them. A class token is always prepended: it gives
``cls`` pooling something to read and guarantees every row has one unmasked step, so an
all-padding input cannot produce NaN attention.
Models stay small (d_model <= 128, <= 3 layers): small medical datasets overfit big ones.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec

from ._sequence import (
    SEQUENCE_MODALITIES,
    Stem,
    default_patch,
    default_stem,
    default_training,
    head,
    masked_mean,
    patch_choices,
    pool_steps,
    sequence_training_space,
    suggest_stem,
)


def _sinusoidal(steps: int, dim: int) -> torch.Tensor:
    pos = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(steps, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table.unsqueeze(0)


class EncoderBlock(nn.Module):
    """Pre-norm self-attention + feed-forward block.

    Written on ``scaled_dot_product_attention`` rather than ``nn.TransformerEncoderLayer``:
    on CPU the fused kernel is several times faster, and dropout is applied to activations
    only (dropout on a (batch, heads, T, T) attention matrix dominated the epoch time).
    """

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim * ff_mult), nn.GELU(),
                                nn.Linear(dim * ff_mult, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        attn = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            attn_mask=mask[:, None, None, :])
        h = h + self.drop(self.out(attn.transpose(1, 2).reshape(b, t, d)))
        return h + self.drop(self.ff(self.norm2(h)))


class TransformerModel(nn.Module):
    def __init__(self, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        dim = int(params["d_model"])
        stem = {k: params[k] for k in ("patch", "stem", "stem_kernel") if k in params}
        self.stem = Stem(spec, {**stem, "embedding": dim}, dim=dim)
        steps = -(-spec.length // int(params.get("patch", 1))) + 1  # + the class token
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        if params["positions"] == "learned":
            self.pos = nn.Parameter(torch.randn(1, steps, dim) * 0.02)
        else:
            self.register_buffer("pos", _sinusoidal(steps, dim), persistent=False)
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, int(params["heads"]), int(params["ff_mult"]),
                         float(params["dropout"])) for _ in range(int(params["layers"])))
        self.norm = nn.LayerNorm(dim)
        self.pooling = params["pooling"]
        self.head = head(dim * (2 if self.pooling == "maxmean" else 1), spec.n_classes,
                         float(params["dropout"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, mask = self.stem(x)
        b = steps.shape[0]
        h = torch.cat([self.cls.expand(b, -1, -1), steps], dim=1)
        h = h + self.pos[:, :h.shape[1]]
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), mask], dim=1)
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        if self.pooling == "cls":
            return self.head(h[:, 0])
        return self.head(pool_steps(h[:, 1:], mask[:, 1:], self.pooling)
                         if self.pooling == "maxmean" else masked_mean(h, mask))


class Attention(Architecture):
    name = "attention"
    modalities = SEQUENCE_MODALITIES
    description = "Transformer encoder (positions, heads, layers, pooling); signals by patches"

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        # Signals always come in patches (single samples carry too little to attend to).
        smallest = 2 if spec.modality == "signal" else 1
        params = {k: v for k, v in suggest_stem(trial, spec, smallest).items()
                  if k != "embedding"}  # the embedding is d_model wide
        params.update({
            "d_model": trial.suggest_categorical("d_model", [32, 64, 128]),
            "heads": trial.suggest_categorical("heads", [2, 4]),
            "layers": trial.suggest_int("layers", 1, 3),
            "ff_mult": trial.suggest_categorical("ff_mult", [2, 4]),
            "positions": trial.suggest_categorical("positions", ["learned", "sinusoidal"]),
            "pooling": trial.suggest_categorical("pooling", ["cls", "mean", "maxmean"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        })
        return params

    def default_params(self, spec: Spec) -> dict[str, Any]:
        patch = None
        if spec.modality == "signal":
            patch = max(default_patch(spec), patch_choices(spec, 2)[0])
        stem = default_stem(spec, patch)
        return {**stem, "d_model": 64, "heads": 4, "layers": 2, "ff_mult": 2,
                "positions": "learned", "pooling": "mean", "dropout": 0.1,
                **default_training(spec, 1e-3)}

    def training_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return sequence_training_space(trial, spec)

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return TransformerModel(params, spec)


@hookimpl
def register_architectures(register):
    register(Attention())
