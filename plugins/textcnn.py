"""TextCNN (Kim, 2014): parallel convolutions over word embeddings, max-pooled over time.

Filters of a few widths (3, 4, 5 words) act as learned n-gram detectors; each filter's strongest
response anywhere in the document (padding masked out) feeds a dropout + linear head. Trained
from scratch here (no pretrained vectors), so on a few thousand abstracts it trails the bag of
n-grams; it is the fast convolutional family for text and for biosequence motifs alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec

WIDTHS = {"345": (3, 4, 5), "234": (2, 3, 4), "12345": (1, 2, 3, 4, 5), "357": (3, 5, 7)}


class TextCNNModel(nn.Module):
    def __init__(self, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        emb, filters = int(params["embedding"]), int(params["filters"])
        self.widths = [w for w in WIDTHS[str(params["widths"])] if w <= spec.length]
        self.embed = nn.Embedding(int(spec.vocab_size), emb, padding_idx=0)
        self.embed_dropout = nn.Dropout(float(params.get("embed_dropout", 0.0)))
        self.convs = nn.ModuleList(nn.Conv1d(emb, filters, w) for w in self.widths)
        self.act = nn.GELU() if params.get("activation") == "gelu" else nn.ReLU()
        self.head = nn.Sequential(nn.Dropout(float(params["dropout"])),
                                  nn.Linear(filters * len(self.widths), spec.n_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        real = ids > 0
        h = self.embed_dropout(self.embed(ids)).transpose(1, 2)  # (B, E, L)
        pooled = []
        for conv in self.convs:
            out = self.act(conv(h))  # (B, F, L - w + 1)
            # A window counts when its first word is real: windows wholly in padding are out.
            ok = real[:, :out.shape[2]].unsqueeze(1)
            out = out.masked_fill(~ok, torch.finfo(out.dtype).min)
            peak = out.amax(2)
            pooled.append(torch.where(ok.any(2), peak, torch.zeros_like(peak)))
        return self.head(torch.cat(pooled, dim=1))


class TextCNN(Architecture):
    name = "textcnn"
    modalities = frozenset({"text", "biosequence"})
    description = "TextCNN (Kim 2014): 1-D convolutions of several widths, max over time"
    cpu_bf16 = True  # measured faster under bf16 autocast (BENCHMARKS.md, "bf16 on the CPU")

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        small = (spec.vocab_size or 0) <= 32
        return {
            "embedding": trial.suggest_categorical(
                "embedding", [16, 32] if small else [64, 128, 200]),
            "filters": trial.suggest_categorical("filters", [64, 100, 200]),
            "widths": trial.suggest_categorical("widths", list(WIDTHS)),
            "activation": trial.suggest_categorical("activation", ["relu", "gelu"]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.6),
            "embed_dropout": trial.suggest_float("embed_dropout", 0.0, 0.3),
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        small = (spec.vocab_size or 0) <= 32
        return {"embedding": 32 if small else 128, "filters": 100, "widths": "345",
                "activation": "relu", "dropout": 0.5, "embed_dropout": 0.1,
                "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 32,
                "epochs": 10, "label_smoothing": 0.0,
                "class_weight": "none" if spec.modality == "text" else "balanced",
                "sampler": "shuffle"}

    def priority(self, spec: Spec) -> int:
        return 20 if spec.modality == "text" else 50

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return TextCNNModel(params, spec)


@hookimpl
def register_architectures(register):
    register(TextCNN())
