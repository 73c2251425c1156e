"""Convolutional models for DNA, RNA and protein sequences.

Input is base-level ids (``spec.extra["symbols"]`` gives their order). Two encodings:
``onehot`` (ambiguity codes such as N or R become the fractions of the bases they stand for)
or ``kmer`` (an embedding of each overlapping k-mer, built here from the base ids so loaders
and preprocessing stay base-level). A first wide convolution finds motifs; dilated residual
blocks then see their arrangement. With ``rc`` the same weights read both strands and the
stronger answer counts, so a DNA motif is found in either orientation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automed.architecture import Architecture
from automed.data.alphabets import ALPHABETS, COMPLEMENT, IUPAC
from automed.hookspecs import hookimpl
from automed.spec import Spec

NUCLEOTIDES = ("dna", "rna")
# "bins" pooling keeps a coarse position: the max of each of ``bins`` stretches of the window
# (this many by default; the search also tries finer ones, bin_choices).
# Splice sites, promoters and binding sites are classified in windows centred on them, so a
# donor motif at the centre means something else than the same motif at the edge.
POSITION_BINS = 6


def _symbols(spec: Spec) -> str:
    symbols = spec.extra.get("symbols")
    if symbols:
        return symbols
    full = ALPHABETS.get(spec.alphabet or "", "")
    # A spec without symbols (third-party data): assume the alphabet's usual order.
    return full[: spec.vocab_size - 1] if len(full) >= spec.vocab_size - 1 else \
        "".join(chr(65 + i % 26) for i in range(spec.vocab_size - 1))


def _is_nucleotide(spec: Spec) -> bool:
    return spec.alphabet in NUCLEOTIDES


def _onehot_table(spec: Spec) -> torch.Tensor:
    """(vocab, channels): id -> base fractions; padding (id 0) is all zeros."""
    symbols = _symbols(spec)
    if _is_nucleotide(spec):
        bases = "ACGT"
        table = torch.zeros(spec.vocab_size, 4)
        for i, s in enumerate(symbols, 1):
            meaning = IUPAC.get(s, "ACGT")
            for b in meaning:
                table[i, bases.index(b)] = 1.0 / len(meaning)
        return table
    return torch.cat([torch.zeros(1, spec.vocab_size - 1), torch.eye(spec.vocab_size - 1)])


def _kmer_reduction(spec: Spec) -> tuple[torch.Tensor, int]:
    """Map ids onto ``1..n`` for k-mer coding: ambiguous nucleotides collapse to one N."""
    symbols = _symbols(spec)
    if _is_nucleotide(spec):
        lut = [0] + [("ACGTU".index(s) % 4) + 1 if s in "ACGTU" else 5 for s in symbols]
        return torch.tensor(lut), 5
    return torch.arange(spec.vocab_size), spec.vocab_size - 1


def _complement_ids(spec: Spec) -> torch.Tensor:
    symbols = _symbols(spec)
    index = {s: i for i, s in enumerate(symbols, 1)}
    rna = spec.alphabet == "rna"
    lut = [0]
    for s in symbols:
        c = COMPLEMENT.get(s, s)
        c = "U" if rna and c == "T" else c
        lut.append(index.get(c, index.get("N", 0)))
    return torch.tensor(lut)


def k_choices(spec: Spec) -> list[int]:
    ks = [3, 4, 5, 6] if _is_nucleotide(spec) else [1, 2, 3]
    return [k for k in ks if k <= spec.length] or [1]


def motif_choices(spec: Spec) -> list[int]:
    # Nucleotide motifs (binding sites, splice signals) span ~6-20 bases; protein motifs fewer.
    ks = [9, 15, 21] if _is_nucleotide(spec) else [5, 9, 15]
    return [k for k in ks if k <= max(spec.length, 5)] or [5]


def bin_choices(spec: Spec) -> list[int]:
    # How finely "bins" pooling keeps position. On splice (60 nt, junction at the centre) 15
    # bins scored CV 0.965 against 6 bins' 0.957 (BENCHMARKS.md, "Eighth round").
    return sorted({min(b, spec.length) for b in (POSITION_BINS, 15, 30)})


class BioSequenceModel(nn.Module):
    def __init__(self, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        self.kmer = params["encoding"] == "kmer"
        if self.kmer:
            self.k = min(int(params["k"]), spec.length)
            lut, self.n = _kmer_reduction(spec)
            self.register_buffer("reduce", lut, persistent=False)
            self.embed = nn.Embedding(self.n ** self.k + 1, int(params["kmer_dim"]),
                                      padding_idx=0)
            channels = int(params["kmer_dim"])
        else:
            self.register_buffer("onehot", _onehot_table(spec), persistent=False)
            channels = self.onehot.shape[1]
        self.rc = bool(params.get("rc", False)) and _is_nucleotide(spec)
        if self.rc:
            self.register_buffer("complement", _complement_ids(spec), persistent=False)
        filters, kernel = int(params["filters"]), int(params["motif_kernel"])
        self.motif = nn.Sequential(
            nn.Conv1d(channels, filters, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(filters), nn.ReLU())
        self.blocks = nn.ModuleList()
        for i in range(int(params["layers"])):
            d = int(params["dilation"]) ** (i + 1)
            self.blocks.append(nn.Sequential(
                nn.Conv1d(filters, filters, 3, padding=d, dilation=d, bias=False),
                nn.BatchNorm1d(filters), nn.ReLU()))
        self.pool = params["pool"]
        self.bins = min(int(params.get("bins", POSITION_BINS)), spec.length)
        width = filters * {"maxavg": 2, "bins": self.bins}.get(self.pool, 1)
        self.head = nn.Sequential(nn.Dropout(float(params["dropout"])),
                                  nn.Linear(width, spec.n_classes))

    def _encode(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.kmer:
            return self.onehot[ids].transpose(1, 2)
        windows = self.reduce[ids].unfold(1, self.k, 1)  # (B, L-k+1, k)
        powers = self.n ** torch.arange(self.k - 1, -1, -1, device=ids.device)
        codes = ((windows - 1) * powers).sum(-1) + 1
        codes = torch.where((windows > 0).all(-1), codes, torch.zeros_like(codes))
        return self.embed(codes).transpose(1, 2)

    def _features(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.motif(self._encode(ids))
        for block in self.blocks:
            h = h + block(h)  # residual: deeper stacks stay trainable on small data
        if self.pool == "maxavg":
            return torch.cat([h.amax(-1), h.mean(-1)], dim=1)
        if self.pool == "bins":  # where a motif sits matters in a centred window
            return nn.functional.adaptive_max_pool1d(h, self.bins).flatten(1)
        return h.amax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self._features(x)
        if self.rc:
            other = self._features(self.complement[x].flip(-1))
            features = torch.maximum(features, other)
        return self.head(features)


class BioSequence(Architecture):
    name = "biosequence"
    modalities = frozenset({"biosequence"})
    description = ("Motif CNN for DNA/RNA/protein: one-hot or k-mer input, dilation, "
                   "reverse-complement weight sharing")
    cpu_bf16 = True  # measured faster under bf16 autocast (BENCHMARKS.md, "bf16 on the CPU")

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        params: dict[str, Any] = {
            "encoding": trial.suggest_categorical("encoding", ["onehot", "kmer"]),
        }
        if params["encoding"] == "kmer":
            params["k"] = trial.suggest_categorical("k", k_choices(spec))
            params["kmer_dim"] = trial.suggest_categorical("kmer_dim", [16, 32, 64])
        params.update({
            "motif_kernel": trial.suggest_categorical("motif_kernel", motif_choices(spec)),
            "filters": trial.suggest_categorical("filters", [32, 64, 128]),
            "layers": trial.suggest_int("layers", 0, 3),
            "dilation": trial.suggest_categorical("dilation", [1, 2]),
            "pool": trial.suggest_categorical("pool", ["bins", "max", "maxavg"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        })
        if params["pool"] == "bins":
            params["bins"] = trial.suggest_categorical("bins", bin_choices(spec))
        if _is_nucleotide(spec):
            params["rc"] = trial.suggest_categorical("rc", [False, True])
        return params

    def default_params(self, spec: Spec) -> dict[str, Any]:
        params: dict[str, Any] = {
            "encoding": "onehot", "motif_kernel": motif_choices(spec)[0], "filters": 64,
            "layers": 2, "dilation": 2, "pool": "bins", "bins": POSITION_BINS, "dropout": 0.3,
            "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64,
            "epochs": 15, "label_smoothing": 0.0, "class_weight": "balanced",
        }
        if _is_nucleotide(spec):
            params["rc"] = False  # splice sites and most labels are strand-specific
        return params

    def priority(self, spec: Spec) -> int:
        return 10  # position-aware motif CNN: the strong first try for sequences

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return BioSequenceModel(params, spec)


@hookimpl
def register_architectures(register):
    register(BioSequence())
