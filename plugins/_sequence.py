"""Building blocks shared by the sequence families (rnn, lstm, attention).

Every sequence model starts with a *stem* that turns its input into steps ``(batch, T, dim)``
plus a mask of real (non-padding) steps. Token ids go through an embedding first. Then:

- ``stem="patch"``: cut into non-overlapping patches of ``patch`` steps (a strided convolution),
  which shortens long series so recurrent and attention models stay fast on CPU;
- ``stem="conv"``: a convolution of width ``stem_kernel`` (motif / n-gram / waveform detector)
  with BatchNorm and ReLU, then a max-pool of ``patch`` steps: the CNN-LSTM / DanQ input
  (Quang & Xie, 2016). The recurrent or attention layers then model how local features are
  arranged instead of learning edge and motif detectors from raw samples one step at a time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automed.spec import Spec

TOKEN_MODALITIES = frozenset({"text", "biosequence"})
SEQUENCE_MODALITIES = frozenset({"signal", "text", "biosequence"})


def embedding_choices(spec: Spec) -> list[int]:
    # A handful of residues needs far fewer dimensions than a vocabulary of words.
    return [16, 32] if (spec.vocab_size or 0) <= 32 else [32, 64, 128]


def patch_choices(spec: Spec, smallest: int = 1) -> list[int]:
    """Patch sizes that leave enough steps: >= 8 for signals, >= 32 for tokens.

    Long texts are patched too: a recurrent or attention layer over 256 words is slow on CPU,
    and a learned 4-word patch loses little for document classification.
    """
    least = 32 if spec.modality in TOKEN_MODALITIES else 8
    sizes = [p for p in (1, 2, 4, 8, 16) if p >= smallest and spec.length // p >= least]
    return sizes or [1]


def default_patch(spec: Spec) -> int:
    """A fast, known-good patch: about 24 steps for signals, 32 for tokens (CPU-friendly)."""
    choices = patch_choices(spec)
    least = 32 if spec.modality in TOKEN_MODALITIES else 24
    fitting = [p for p in choices if spec.length // p >= least]
    return max(fitting) if fitting else choices[0]


def stem_kernel_choices(spec: Spec) -> list[int]:
    """Convolution widths of the conv stem: waveform parts, nucleotide motifs, word n-grams."""
    if spec.modality == "signal":
        return [3, 5, 7, 9]
    if spec.modality == "biosequence" and (spec.vocab_size or 0) <= 32:
        return [5, 9, 15]  # motifs (splice signals, binding sites) span ~6-20 residues
    return [3, 5]


def default_stem_kernel(spec: Spec) -> int:
    choices = stem_kernel_choices(spec)
    return 7 if spec.modality == "signal" else 9 if 9 in choices else choices[0]


def suggest_stem(trial: Any, spec: Spec, smallest_patch: int = 1) -> dict[str, Any]:
    """The stem's parameters: embedding size for tokens, stem kind, kernel, patch size."""
    params: dict[str, Any] = {}
    if spec.modality in TOKEN_MODALITIES:
        params["embedding"] = trial.suggest_categorical("embedding", embedding_choices(spec))
    params["stem"] = trial.suggest_categorical("stem", ["patch", "conv"])
    if params["stem"] == "conv":
        params["stem_kernel"] = trial.suggest_categorical("stem_kernel",
                                                          stem_kernel_choices(spec))
    choices = patch_choices(spec, smallest_patch)
    if len(choices) > 1:
        params["patch"] = trial.suggest_categorical("patch", choices)
    return params


def default_stem(spec: Spec, patch: int | None = None) -> dict[str, Any]:
    """The measured default stem: conv (kernel by modality), pooled by the default patch."""
    params: dict[str, Any] = {"stem": "conv", "stem_kernel": default_stem_kernel(spec)}
    if len(patch_choices(spec)) > 1 or (patch or 1) > 1:
        params["patch"] = patch or default_patch(spec)
    return params


class Stem(nn.Module):
    """Input -> ``(steps (B, T, dim), mask (B, T) of real steps)``.

    Tokens are embedded first. ``stem="patch"`` (the default when ``stem`` is absent) merges
    ``patch`` steps at a time by a strided convolution; ``stem="conv"`` runs a same-length
    convolution of width ``stem_kernel`` + BatchNorm + ReLU, zeroes padding, and max-pools
    ``patch`` steps at a time. Inputs shorter than the kernel or the patch are padded.
    """

    def __init__(self, spec: Spec, params: dict[str, Any], dim: int | None = None) -> None:
        super().__init__()
        self.tokens = spec.modality in TOKEN_MODALITIES
        self.patch = int(params.get("patch", 1))
        self.kind = params.get("stem", "patch")
        if self.tokens:
            emb = int(params.get("embedding", 32))
            self.embed = nn.Embedding(int(spec.vocab_size), emb, padding_idx=0)
            c_in, self.out_dim = emb, dim or emb
        else:
            c_in, self.out_dim = spec.channels, dim or 32
        if self.kind == "conv":
            k = int(params.get("stem_kernel", 3))
            # Left/right padding keeps the length for even kernels too.
            self.conv_pad = ((k - 1) // 2, k // 2)
            self.merge = nn.Sequential(nn.Conv1d(c_in, self.out_dim, k, bias=False),
                                       nn.BatchNorm1d(self.out_dim), nn.ReLU())
        elif self.tokens and self.patch == 1 and self.out_dim == emb:
            self.merge = None
        else:
            self.merge = nn.Conv1d(c_in, self.out_dim, self.patch, stride=self.patch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = (-x.shape[-1]) % self.patch
        if pad:
            x = nn.functional.pad(x, (0, pad))
        if self.tokens:
            mask = x != 0
            h = self.embed(x).transpose(1, 2)
        else:
            mask = torch.ones(x.shape[0], x.shape[-1], dtype=torch.bool, device=x.device)
            h = x
        if self.kind == "conv":
            h = self.merge(nn.functional.pad(h, self.conv_pad))
            if self.tokens:
                h = h * mask.unsqueeze(1).to(h.dtype)  # ReLU >= 0: padding never wins the max
            if self.patch > 1:
                h = nn.functional.max_pool1d(h, self.patch)
        elif self.merge is not None:
            h = self.merge(h)
        if self.patch > 1:
            mask = mask.view(mask.shape[0], -1, self.patch).any(-1)
        return h.transpose(1, 2), mask


def default_training(spec: Spec, lr: float) -> dict[str, Any]:
    """Training defaults shared by the sequence families, by modality.

    - Signals (UCR-sized: ~100 series) get batches of 16 and 20 epochs: batches of 64 gave 2
      optimizer steps per epoch on ECG200's 80-series folds, 20 in all, and the models stayed
      at (or, with balanced class weights, below) the majority class.
    - Biosequences get 20 epochs too: with the conv stem, the LSTM on UCI splice went from
      0.911 (10 epochs) to 0.945 held-out accuracy (20), the biosequence CNN's 0.959 in reach.
    - Text gets an unweighted loss: accuracy over many classes whose test mix is the training
      mix, where balanced weights cost accuracy (the same finding as the mlp family's).
    """
    signal = spec.modality == "signal"
    return {"optimizer": "adamw", "lr": lr, "weight_decay": 1e-4,
            "batch_size": 16 if signal else 64,
            "epochs": 10 if spec.modality == "text" else 20,
            "label_smoothing": 0.0,
            "class_weight": "none" if spec.modality == "text" else "balanced",
            "sampler": "shuffle", **({"augment": True} if signal else {})}


class _SmallBatches:
    """A trial whose ``batch_size`` choices also offer 16 (the signal default below)."""

    def __init__(self, trial: Any) -> None:
        self._trial = trial

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name == "batch_size":
            choices = [16, *[c for c in choices if c != 16]]
        return self._trial.suggest_categorical(name, choices)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def sequence_training_space(trial: Any, spec: Spec) -> dict[str, Any]:
    """The library's training space, with batches of 16 too (tiny UCR-style signal sets)."""
    from automed.searching.training import default_training_space

    return default_training_space(_SmallBatches(trial), spec)


def default_recurrent_params(spec: Spec, **arch: Any) -> dict[str, Any]:
    """The known-good start of a recurrent family: its own ``arch`` settings plus shared ones."""
    stem = {"embedding": 32} if spec.modality in TOKEN_MODALITIES else {}
    stem.update(default_stem(spec))
    return {**stem, "hidden": 64, "layers": 1, "bidirectional": True, "dropout": 0.2, **arch,
            **default_training(spec, 3e-3)}


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = h.masked_fill(~mask.unsqueeze(-1), torch.finfo(h.dtype).min)
    out = filled.max(1).values
    return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))


def pool_steps(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """``mean``, ``max`` or ``maxmean`` (both, concatenated: 2x the width) over real steps."""
    if how == "mean":
        return masked_mean(h, mask)
    if how == "max":
        return masked_max(h, mask)
    return torch.cat([masked_max(h, mask), masked_mean(h, mask)], dim=-1)


class AttentionPool(nn.Module):
    """Additive attention over steps: a learned weighted mean that ignores padding."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(h).squeeze(-1).masked_fill(~mask, -1e4)
        weights = torch.softmax(scores, dim=1) * mask.to(h.dtype)
        return (weights.unsqueeze(-1) * h).sum(1)


def run_recurrent(rnn: nn.RNNBase, steps: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs ``(B, T, H)`` and the final state ``(B, H)`` read at each row's last real step.

    Sequences are not packed: packing made CPU epochs 4-10x slower. The forward direction's
    state is read at the last real step; the backward direction starts in the (zero-embedded)
    right padding, a small bias the model learns around.
    """
    out, _ = rnn(steps)
    hidden = rnn.hidden_size
    last_step = (mask.sum(1) - 1).clamp(min=0)
    forward = out[torch.arange(out.shape[0], device=out.device), last_step, :hidden]
    if not rnn.bidirectional:
        return out, forward
    return out, torch.cat([forward, out[:, 0, hidden:]], dim=1)


def head(dim: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))
