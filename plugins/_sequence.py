"""Building blocks shared by the sequence families (rnn, lstm, attention).

Every sequence model starts with a *stem* that turns its input into steps ``(batch, T, dim)``
plus a mask of real (non-padding) steps: token ids go through an embedding, signals are cut
into patches of ``patch`` samples (a strided convolution), which shortens long series so
recurrent and attention models stay fast on CPU.
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


def suggest_stem(trial: Any, spec: Spec, smallest_patch: int = 1) -> dict[str, Any]:
    """The stem's parameters: embedding size for tokens, patch size when there is a choice."""
    params: dict[str, Any] = {}
    if spec.modality in TOKEN_MODALITIES:
        params["embedding"] = trial.suggest_categorical("embedding", embedding_choices(spec))
    choices = patch_choices(spec, smallest_patch)
    if len(choices) > 1:
        params["patch"] = trial.suggest_categorical("patch", choices)
    return params


class Stem(nn.Module):
    """Input -> ``(steps (B, T, dim), mask (B, T) of real steps)``.

    Tokens are embedded, then (``patch`` > 1) merged ``patch`` at a time by a strided
    convolution; signals are cut into patches the same way.
    """

    def __init__(self, spec: Spec, params: dict[str, Any], dim: int | None = None) -> None:
        super().__init__()
        self.tokens = spec.modality in TOKEN_MODALITIES
        self.patch = int(params.get("patch", 1))
        if self.tokens:
            emb = int(params.get("embedding", 32))
            self.embed = nn.Embedding(int(spec.vocab_size), emb, padding_idx=0)
            self.out_dim = dim or emb
            self.merge = (nn.Conv1d(emb, self.out_dim, self.patch, stride=self.patch)
                          if self.patch > 1 or self.out_dim != emb else None)
        else:
            self.out_dim = dim or 32
            self.merge = nn.Conv1d(spec.channels, self.out_dim, self.patch, stride=self.patch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = (-x.shape[-1]) % self.patch
        if pad:
            x = nn.functional.pad(x, (0, pad))
        if not self.tokens:
            steps = self.merge(x).transpose(1, 2)
            return steps, torch.ones(steps.shape[:2], dtype=torch.bool, device=x.device)
        mask = x != 0
        steps = self.embed(x)
        if self.merge is not None:
            steps = self.merge(steps.transpose(1, 2)).transpose(1, 2)
            mask = mask.view(mask.shape[0], -1, self.patch).any(-1)
        return steps, mask


def default_training(spec: Spec, lr: float) -> dict[str, Any]:
    """Training defaults shared by the sequence families, by modality.

    - Signals (UCR-sized: ~100 series) get batches of 16 and 20 epochs: batches of 64 gave 2
      optimizer steps per epoch on ECG200's 80-series folds, 20 in all, and the models stayed
      at (or, with balanced class weights, below) the majority class.
    - Text gets an unweighted loss: accuracy over many classes whose test mix is the training
      mix, where balanced weights cost accuracy (the same finding as the mlp family's).
    """
    signal = spec.modality == "signal"
    return {"optimizer": "adamw", "lr": lr, "weight_decay": 1e-4,
            "batch_size": 16 if signal else 64, "epochs": 20 if signal else 10,
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
    if len(patch_choices(spec)) > 1:
        stem["patch"] = default_patch(spec)
    return {**stem, "hidden": 64, "layers": 1, "bidirectional": True, "dropout": 0.2, **arch,
            **default_training(spec, 3e-3)}


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = h.masked_fill(~mask.unsqueeze(-1), torch.finfo(h.dtype).min)
    out = filled.max(1).values
    return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))


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
