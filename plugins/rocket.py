"""Random-convolution features for signals (MiniRocket / MultiRocket style) and a linear head.

Dempster et al.'s MiniRocket (KDD 2021) and Tan et al.'s MultiRocket (2022): 84 fixed kernels of
length 9 (weights -1, with 2 at three of the nine taps), each applied at several exponentially
spaced dilations, each output thresholded by several biases. A feature is one
``(kernel, dilation, bias)`` triple pooled over time:

- ``ppv``: proportion of positive values (MiniRocket);
- ``ppv_max``: PPV plus the maximum of each ``(kernel, dilation)`` output (ROCKET's pair);
- ``multi``: MultiRocket's four: PPV, mean of positive values, mean index of positive values,
  longest stretch of positive values.

With ``diff`` half of the features come from the first difference of the series (MultiRocket's
second representation). With ``hydra`` the features of Dempster, Schmidt & Webb's Hydra (2023)
are added (MultiRocket + Hydra is their "MultiROCKET-Hydra", the best of their comparison): 64
groups of 8 random kernels per dilation, half on the series and half on its first difference;
at each time step the kernels of a group compete, and each kernel's features are the sum of
its responses where it is the group's largest and the count of steps where it is the
smallest. Hydra's features are scaled as Hydra scales them (square root, then standardised
with zeros kept at zero and near-empty columns damped: ``HydraBank.scale``; the trained head
standardises them by its batches' statistics, zeros still kept at zero).

Half of the ``(kernel, dilation)`` pairs are pooled over the padded
output, the other half only over positions that need no padding (MiniRocket's alternation).
Multichannel signals: each ``(kernel, dilation)`` reads a random subset of the channels (sum).

Nothing in the transform is trained. The kernels, channel subsets, quantiles and biases are
buffers in the state dict, so a saved model reloads with exactly its features. The biases are
fitted from data as MiniRocket does (quantiles of the convolution output of a random training
example), lazily: the first forward pass (the training loop's first batch, before any
optimizer step) fits them from that batch and marks them fitted; later passes never touch them.
The head is one linear layer on standardised features (BatchNorm without affine weights). It is
fitted one of two ways (``head``):

- ``ridge`` (the default up to RIDGE_MAX_ROWS training rows): MiniRocket's own classifier, a
  ridge regression on +-1 targets solved in closed form (no epochs), its penalty chosen from
  RIDGE_ALPHAS by exact leave-one-out error as scikit-learn's ``RidgeClassifierCV`` does, then
  its scores scaled by one temperature fitted on those leave-one-out scores (against Platt's
  smoothed targets, so separable data do not saturate it), so that the softmax of the logits
  is a calibrated probability (ensembles blend probabilities). Training settings other than
  ``class_weight`` (balanced: row weights) do not apply to it.
- ``trained``: dropout and the linear layer trained by the search's own loop (logistic
  regression), which sees augmentation and every training setting.

Features are computed without gradients, in chunks, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import math
from itertools import combinations
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl
from automed.spec import Spec

KERNEL_LENGTH = 9
MAX_DILATIONS = 32  # per kernel, as in MiniRocket
FEATURE_KINDS = {"ppv": 1, "ppv_max": 1, "multi": 4}  # pooled values per (kernel, dil, bias)
CHUNK_ELEMENTS = 1 << 23  # samples x features x length per pooling chunk (~32 MB floats)
CACHE_VALUES = 1 << 27  # cached training features, in floats (512 MB)
GOLDEN = (math.sqrt(5) + 1) / 2
# Ridge head: MiniRocket's penalty grid (its RidgeClassifierCV), and the training-set size up
# to which ridge is the default head (the closed form costs O(min(rows, features)^3); MiniRocket
# recommends a logistic head trained by gradient for large sets).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 10))
RIDGE_MAX_ROWS = 5000
RIDGE_BIAS_ROWS = 256  # at most this many random training rows fit the biases


def fit_ridge(z: torch.Tensor, y: torch.Tensor, n_classes: int,
              class_weight: torch.Tensor | None = None,
              alphas: tuple[float, ...] = RIDGE_ALPHAS) -> dict[str, Any]:
    """Ridge regression of +-1 one-vs-rest targets on ``z`` (rows x features), with an
    intercept, its penalty chosen by exact leave-one-out squared error.

    Solved in the dual (an eigendecomposition of the rows' Gram matrix) when there are fewer
    rows than features, in the primal otherwise. ``class_weight`` (one weight per class) weighs
    the rows. Returns ``weight`` (features x classes), ``bias`` (classes), ``alpha``,
    ``temperature`` (the scale of the scores that minimises the weighted cross-entropy of
    their softmax on the leave-one-out scores, against Platt's smoothed targets), ``loss``
    (that cross-entropy) and ``loo`` (rows x classes: each row's scores from the fit without
    it).
    """
    X = z.detach().to("cpu", torch.float64, copy=True)  # centred and weighted in place
    n, p = X.shape
    labels = y.detach().long().cpu()
    Y = -torch.ones(n, n_classes, dtype=torch.float64)
    Y[torch.arange(n), labels] = 1.0
    w = (torch.ones(n, dtype=torch.float64) if class_weight is None
         else class_weight.detach().double().cpu()[labels])
    sw = w.sqrt()
    mean_z = (w @ X) / w.sum()
    mean_y = (w @ Y) / w.sum()
    X.sub_(mean_z).mul_(sw[:, None])
    T = (Y - mean_y) * sw[:, None]
    # The intercept is not penalised: its hat-matrix share, w_i / sum(w), is added to every
    # row's leverage (without it a penalty near zero looks perfect out of sample).
    intercept = w / w.sum()
    best: tuple[float, float, torch.Tensor, torch.Tensor] | None = None
    if n <= p:
        s, Q = torch.linalg.eigh(X @ X.T)
        s = s.clamp(min=0.0)
        QtT = Q.T @ T
        for a in alphas:
            d = 1.0 / (s + a)
            fitted = Q @ ((s * d)[:, None] * QtT)
            hat = (Q * Q) @ (s * d) + intercept
            residual = (T - fitted) / (1.0 - hat).clamp(min=1e-12)[:, None]
            err = float((residual ** 2).sum())  # row-weighted leave-one-out squared error
            if best is None or err < best[0]:
                best = (err, a, X.T @ (Q @ (d[:, None] * QtT)), residual)
    else:
        s, V = torch.linalg.eigh(X.T @ X)
        s = s.clamp(min=0.0)
        XV = X @ V
        VtXtT = XV.T @ T
        for a in alphas:
            d = 1.0 / (s + a)
            W = V @ (d[:, None] * VtXtT)
            hat = (XV * XV) @ d + intercept
            residual = (T - X @ W) / (1.0 - hat).clamp(min=1e-12)[:, None]
            err = float((residual ** 2).sum())
            if best is None or err < best[0]:
                best = (err, a, W, residual)
    assert best is not None
    _, alpha, W, residual = best
    loo = Y - residual / sw[:, None]  # each row's score from the fit without it
    temperature, loss = _temperature(loo, labels, w)
    bias = mean_y - mean_z @ W
    return {"weight": W, "bias": bias, "alpha": alpha, "temperature": temperature,
            "loss": loss, "loo": loo}


def _temperature(scores: torch.Tensor, labels: torch.Tensor, w: torch.Tensor
                 ) -> tuple[float, float]:
    """The scale t (from a log grid) minimising the weighted cross-entropy of softmax(t s)
    against Platt's smoothed targets: a row of a class with N rows aims at (N + 1) / (N + 2)
    for its class, the rest shared by the others. Against hard targets, separable
    leave-one-out scores drive t to the grid's end and every probability to 0 or 1 (seed
    bags of one candidate then agreed to 1e-4, and a blend could not weigh them)."""
    n_classes = scores.shape[1]
    counts = torch.bincount(labels, minlength=n_classes).double()
    own = (counts[labels] + 1.0) / (counts[labels] + 2.0)
    target = ((1.0 - own) / max(1, n_classes - 1))[:, None].expand(-1, n_classes).clone()
    target[torch.arange(len(labels)), labels] = own
    best = (math.inf, 1.0)
    for t in np.logspace(-2, 2, 81):
        ce = -(target * torch.log_softmax(float(t) * scores, dim=1)).sum(1)
        loss = float((w * ce).sum() / w.sum())
        if loss < best[0]:
            best = (loss, float(t))
    return best[1], best[0]


def _base_kernels() -> torch.Tensor:
    """(84, 9): -1 everywhere, 2 at three taps (each kernel sums to 0)."""
    w = -torch.ones(84, KERNEL_LENGTH)
    for i, taps in enumerate(combinations(range(KERNEL_LENGTH), 3)):
        w[i, list(taps)] = 2.0
    return w


def fit_dilations(length: int, n_features: int) -> tuple[list[int], list[int]]:
    """MiniRocket's dilations for a series of ``length`` and the biases (features) of each.

    Exponentially spaced from 1 up to the largest dilation whose kernel span fits the series
    (at least 1, so series shorter than one span still get dilation 1 and padding).
    """
    per_kernel = max(1, n_features // 84)
    n_dil = min(per_kernel, MAX_DILATIONS)
    multiplier = per_kernel / n_dil
    max_exponent = math.log2(max(length - 1, 1) / (KERNEL_LENGTH - 1)) if length > 1 else 0.0
    max_exponent = max(max_exponent, 0.0)
    raw = np.floor(np.logspace(0, max_exponent, n_dil, base=2)).astype(np.int64)
    dilations, counts = np.unique(raw, return_counts=True)
    per_dilation = (counts * multiplier).astype(np.int64)
    remainder = per_kernel - int(per_dilation.sum())
    i = 0
    while remainder > 0:
        per_dilation[i] += 1
        remainder -= 1
        i = (i + 1) % len(per_dilation)
    return [int(d) for d in dilations], [int(n) for n in per_dilation]


class RocketBank(nn.Module):
    """Fixed dilated kernels on one representation of the series, pooled into features."""

    def __init__(self, channels: int, length: int, n_features: int, kinds: str) -> None:
        super().__init__()
        self.kinds = kinds
        # per_dilation: the biases (features) of each kernel at each dilation
        self.dilations, self.per_dilation = fit_dilations(length, n_features)
        n_kd = 84 * len(self.dilations)
        base = _base_kernels()
        # Channel subsets per (dilation, kernel): univariate series read their one channel.
        mask = torch.ones(n_kd, channels)
        if channels > 1:
            top = math.log2(min(channels, KERNEL_LENGTH) + 1)
            for j in range(n_kd):
                k = int(2 ** (torch.rand(()).item() * top))
                k = max(1, min(k, channels))
                mask[j] = 0.0
                mask[j, torch.randperm(channels)[:k]] = 1.0
        weight = base.repeat(len(self.dilations), 1).unsqueeze(1) * mask.unsqueeze(-1)
        self.register_buffer("weight", weight)  # (n_kd, channels, 9)
        # Feature f thresholds (kernel, dilation) pair kd_index[f] at bias[f].
        kd_index = torch.cat([torch.arange(84).repeat_interleave(n) + 84 * i
                              for i, n in enumerate(self.per_dilation)])
        self.register_buffer("kd_index", kd_index)
        n = len(kd_index)
        self.register_buffer("quantile", torch.tensor(
            [(i * GOLDEN) % 1 for i in range(1, n + 1)], dtype=torch.float32))
        self.register_buffer("example", torch.rand(n_kd))  # which sample fits each pair
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        # MiniRocket alternates padding: odd pairs pool only over positions needing none.
        pad = torch.tensor([(i + j) % 2 == 0 for i in range(len(self.dilations))
                            for j in range(84)])
        self.register_buffer("padded", pad, persistent=False)

    @property
    def n_features(self) -> int:
        per = FEATURE_KINDS[self.kinds] * len(self.kd_index)
        return per + (84 * len(self.dilations) if self.kinds == "ppv_max" else 0)

    def _convolve(self, x: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """(B, n_kd, width): every (kernel, dilation) output over the input's length L (the
        input zero-padded), then -inf up to ``width`` (default L)."""
        length = x.shape[-1]
        out = x.new_empty(x.shape[0], self.weight.shape[0], width or length)
        out[..., length:] = float("-inf")
        for i, d in enumerate(self.dilations):
            w = self.weight[84 * i:84 * (i + 1)]
            out[:, 84 * i:84 * (i + 1), :length] = dilated_conv(x, w, d)
        return out

    def _valid(self, length: int, device: torch.device) -> torch.Tensor:
        """(n_kd, L) bool: the positions each pair pools over."""
        pos = torch.arange(length, device=device)
        half = torch.tensor([(KERNEL_LENGTH - 1) * d // 2 for d in self.dilations],
                            device=device).repeat_interleave(84)
        inner = (pos >= half[:, None]) & (pos < length - half[:, None])
        # A pair whose span exceeds the series has no unpadded position: it pools padded.
        use_all = self.padded.to(device) | ~inner.any(-1)
        return inner | use_all[:, None]

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Biases from quantiles of each pair's output on one random sample of ``x``."""
        conv = self._convolve(x)  # (B, n_kd, L)
        pick = (self.example * conv.shape[0]).long().clamp(max=conv.shape[0] - 1)
        series = conv[pick, torch.arange(conv.shape[1], device=conv.device)]  # (n_kd, L)
        ordered = series.sort(-1).values[self.kd_index]  # (n, L)
        at = self.quantile * (ordered.shape[-1] - 1)
        lo = at.floor().long()
        hi = (lo + 1).clamp(max=ordered.shape[-1] - 1)
        frac = at - lo
        lower = ordered.gather(1, lo[:, None])[:, 0]
        upper = ordered.gather(1, hi[:, None])[:, 0]
        self.bias.copy_(lower + frac * (upper - lower))
        self.fitted.fill_(True)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.fitted):
            self.fit(x)
        length = x.shape[-1]
        valid = self._valid(length, x.device)
        counts = valid.sum(-1).float()  # (n_kd,)
        # Positions a pair does not pool over are -inf (never above a bias); _ppv also reads
        # a width of 8k, padded with -inf.
        conv = self._convolve(x, length if self.kinds == "multi" else -(-length // 8) * 8)
        conv[..., :length].masked_fill_(~valid, float("-inf"))
        extra = [conv.amax(-1)] if self.kinds == "ppv_max" else []
        n = len(self.kd_index)
        step = max(1, CHUNK_ELEMENTS // max(1, n * length))
        pool = self._multi if self.kinds == "multi" else self._ppv
        features = torch.cat([pool(conv[start:start + step], counts)
                              for start in range(0, conv.shape[0], step)])
        return torch.cat([features, *extra], dim=1) if extra else features

    def _multi(self, conv: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """MultiRocket's four per feature: PPV, the mean of the positive values (MPV), the
        mean index of the positive values (MIPV, over the length; -1 with none) and the
        longest stretch of positive values (LSPV, over the length). One pass over time with
        the features side by side ((L, b, n): every step a contiguous slab), 3x faster than
        reductions over a last dimension of length L and a cumulative maximum for LSPV."""
        length = conv.shape[-1]
        z = conv.permute(2, 0, 1)[:, :, self.kd_index]  # (L, b, n), a copy
        z.sub_(self.bias)
        positive = z > 0
        n_pos, total, where = (z.new_zeros(z.shape[1:]) for _ in range(3))
        run = torch.zeros(z.shape[1:], dtype=torch.int16 if length < 2 ** 15 else torch.int32,
                          device=z.device)
        longest = torch.zeros_like(run)
        for t in range(length):
            p = positive[t]
            n_pos += p
            total += z[t].clamp_(min=0)
            where.add_(p, alpha=t)
            run = (run + 1) * p
            torch.maximum(longest, run, out=longest)
        some = n_pos.clamp(min=1)
        ppv = n_pos / counts[self.kd_index]
        mipv = torch.where(n_pos > 0, where / some / length, torch.full_like(n_pos, -1.0))
        return torch.cat([ppv, total / some, mipv, longest.to(z.dtype) / length], dim=1)

    def _ppv(self, conv: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """PPV alone (ECGFiveDays' 861 test series: 2.1-2.3 s, one thread, against 4.6-5.7 s
        through a gather of every feature's output and torch's sum over time; BENCHMARKS.md,
        "Thirteenth round"). ``conv`` is -inf where a pair does not pool and padded with -inf
        to a width of 8k; a dilation's 84 outputs are compared with their biases by
        broadcasting and the positives counted by :func:`count_true`."""
        out, start = [], 0
        for i, m in enumerate(self.per_dilation):
            bias = self.bias[start:start + 84 * m].view(84, m)  # kd_index's order
            start += 84 * m
            positive = conv[:, 84 * i:84 * (i + 1), None, :] > bias[None, :, :, None]
            out.append(count_true(positive).reshape(len(conv), 84 * m))
        return torch.cat(out, dim=1) / counts[self.kd_index]


def dilated_conv(x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """``F.conv1d(x, weight, dilation=d, padding=4 d)`` for kernels of 9 taps, cut to the
    input's length: the 9 shifted copies of the zero-padded input times the kernels, one
    matrix product, 2.5x faster than conv1d's dilated path on the CPU (MiniRocket's and
    Hydra's small kernels: 0.07 s against 0.18 s for 256 kernels on 861 series of 136)."""
    length, pad = x.shape[-1], (KERNEL_LENGTH - 1) * dilation // 2
    padded = F.pad(x, (pad, pad))
    taps = torch.stack([padded[..., j * dilation:j * dilation + length]
                        for j in range(KERNEL_LENGTH)], dim=2)  # (B, C, 9, L)
    return torch.einsum("ock,nckl->nol", weight, taps)


def count_true(mask: torch.Tensor) -> torch.Tensor:
    """``mask.sum(-1)`` of a contiguous bool tensor whose last dimension is a multiple of 8,
    as int32, 10-30x faster on the CPU than torch's sum over a short last dimension: the
    bytes are added 8 at a time as the lanes of int64 words (a lane holds at most
    last / 8 <= 255 ones, so none carries into the next), then the 8 lanes are added."""
    if not 0 < mask.shape[-1] <= 8 * 255:  # a lane could overflow (or none): the plain sum
        return mask.view(torch.uint8).sum(-1, dtype=torch.int32)
    lanes = mask.view(torch.uint8).view(torch.int64).sum(-1)
    return lanes.unsqueeze(-1).view(torch.uint8).sum(-1, dtype=torch.int32)


class HydraBank(nn.Module):
    """Hydra's competing kernels (Dempster, Schmidt & Webb, 2023), as its reference code.

    Per dilation 2^0 .. 2^floor(log2((L - 1) / 8)): GROUPS groups of PER_GROUP random normal
    kernels of length 9 (zero mean, unit L1 norm), half of the groups on the series and half
    on its first difference. At every time step the group's kernels compete: the winner (the
    largest response) adds its response to its "max" feature, the loser (the smallest) adds 1
    to its "min" feature. Multichannel series: each group reads a random subset of
    clip(C / 2, 2, 8) channels (summed), as Hydra's multivariate version does.
    """

    PER_GROUP = 8
    GROUPS = 64

    def __init__(self, channels: int, length: int) -> None:
        super().__init__()
        top = math.log2((length - 1) / (KERNEL_LENGTH - 1)) if length > KERNEL_LENGTH else 0.0
        self.dilations = [2 ** i for i in range(int(top) + 1)]
        half = self.GROUPS // 2
        w = torch.randn(len(self.dilations), 2, half, self.PER_GROUP, channels, KERNEL_LENGTH)
        if channels > 1:
            take = min(channels, max(2, min(channels // 2, 8)))
            mask = torch.zeros(len(self.dilations), 2, half, 1, channels, 1)
            for index in np.ndindex(len(self.dilations), 2, half):
                mask[index][0, torch.randperm(channels)[:take], 0] = 1.0
            w = w * mask
        w = w - w.mean(-1, keepdim=True)  # per channel and kernel; masked channels stay 0
        w = w / w.abs().sum((-2, -1), keepdim=True).clamp(min=1e-12)
        self.register_buffer("weight", w.reshape(len(self.dilations), 2, half * self.PER_GROUP,
                                                 channels, KERNEL_LENGTH))

    @property
    def n_features(self) -> int:
        return len(self.dilations) * self.GROUPS * self.PER_GROUP * 2  # wins and losses

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_features): the square roots of the (non-negative) max and min features."""
        n, half, k = x.shape[0], self.GROUPS // 2, self.PER_GROUP
        representations = [x, x[..., 1:] - x[..., :-1] if x.shape[-1] > 1 else x]
        out = []
        for i, d in enumerate(self.dilations):
            for r, series in enumerate(representations):
                z = dilated_conv(series, self.weight[i, r], d).view(n, half, k, -1)
                high, winner = z.max(2)
                low, loser = z.min(2)
                wins = z.new_zeros(n, half, k).scatter_add_(-1, winner, high)
                losses = z.new_zeros(n, half, k).scatter_add_(-1, loser, torch.ones_like(low))
                out += [wins, losses]
        return torch.cat(out, 1).reshape(n, -1).clamp(min=0).sqrt()

    @staticmethod
    def scale(features: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
        """The variance that makes ``(f - mean) / sqrt(var + eps)`` Hydra's SparseScaler:
        its standard deviation plus (share of zeros)^4 + 1e-8, so a column that is nearly
        all zeros is damped instead of blown up."""
        damp = (features == 0).float().mean(0) ** 4 + 1e-8
        return ((var.sqrt() + damp) ** 2 - eps).clamp(min=0.0)


class RocketModel(nn.Module):
    def __init__(self, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        channels, length = int(spec.input_shape[0]), int(spec.input_shape[-1])
        n, kinds = int(params["kernels"]), params["features"]
        self.ridge = params.get("head", "trained") == "ridge"
        self.n_classes = int(spec.n_classes)
        self.diff = bool(params.get("diff", False)) and length > 2
        if self.diff:
            self.banks = nn.ModuleList([RocketBank(channels, length, n // 2, kinds),
                                        RocketBank(channels, length - 1, n - n // 2, kinds)])
        else:
            self.banks = nn.ModuleList([RocketBank(channels, length, n, kinds)])
        self.hydra = HydraBank(channels, length) if params.get("hydra", False) else None
        # Columns from here on are Hydra's (zeros kept at zero after standardising).
        self.sparse_from = sum(b.n_features for b in self.banks)
        width = self.sparse_from + (self.hydra.n_features if self.hydra is not None else 0)
        self._cache: dict[bytes, torch.Tensor] = {}
        self.norm = nn.BatchNorm1d(width, affine=False, momentum=None)
        self.head = nn.Sequential(nn.Dropout(float(params["dropout"])),
                                  nn.Linear(width, spec.n_classes))
        nn.init.zeros_(self.head[1].weight)  # logistic regression from zero
        nn.init.zeros_(self.head[1].bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) pooled features; in training, rows seen before come from a cache.

        The transform is fixed once fitted, and the training loop shows the same rows every
        epoch (as index slices, so a row's bytes are its identity): caching them makes every
        epoch after the first cost only the head. Augmented rows differ and miss the cache.
        The cache is bounded (CACHE_VALUES floats) and is not part of the state dict.
        """
        x = x.float()
        if not (self.training and all(bool(b.fitted) for b in self.banks)):
            return self._compute(x)
        keys = [hashlib.blake2b(row.numpy().tobytes(), digest_size=16).digest()
                for row in x.detach().cpu()]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        fresh: dict[bytes, torch.Tensor] = {}
        if missing:
            new = self._compute(x[missing])
            fresh = {keys[i]: new[j] for j, i in enumerate(missing)}
            if (len(self._cache) + len(fresh)) * new.shape[1] <= CACHE_VALUES:
                self._cache.update(fresh)
        return torch.stack([fresh[k] if k in fresh else self._cache[k] for k in keys])

    def train(self, mode: bool = True) -> RocketModel:
        self._cache.clear()  # a fresh fit (or predictions) starts from an empty cache
        return super().train(mode)

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        # Full precision even under the training loop's bf16 autocast: thresholds are exact.
        with torch.autocast(x.device.type, enabled=False):
            parts = [self.banks[0](x)]
            if self.diff:
                parts.append(self.banks[1](x[..., 1:] - x[..., :-1]))
            if self.hydra is not None:
                parts.append(self.hydra(x))
        return torch.cat(parts, dim=1)

    def _nonzero(self, features: torch.Tensor) -> torch.Tensor | None:
        """Where Hydra's columns of the raw ``features`` are not zero (None without Hydra)."""
        return None if self.hydra is None else features[:, self.sparse_from:] != 0

    def _keep_zeros(self, z: torch.Tensor, nonzero: torch.Tensor | None) -> torch.Tensor:
        """The standardised ``z`` with Hydra's columns zero where the raw feature was zero
        (``nonzero`` from :meth:`_nonzero`), in place."""
        if nonzero is not None:
            z[:, self.sparse_from:] *= nonzero
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        return self.head(self._keep_zeros(self.norm(features), self._nonzero(features)))

    def _rows(self, length: int) -> int:
        """Rows per chunk so that one chunk's convolution outputs stay near 2^25 floats."""
        pairs = sum(b.weight.shape[0] for b in self.banks)
        if self.hydra is not None:  # one of its convolutions at a time
            pairs += self.hydra.weight.shape[2]
        return max(1, (1 << 25) // max(1, pairs * length))

    @torch.no_grad()
    def fit_closed_form(self, x: torch.Tensor, y: torch.Tensor,
                        class_weight: torch.Tensor | None, seed: int) -> float | None:
        """The ridge head (see the module's docstring); ``None`` for the trained head.

        The biases are fitted first, from up to RIDGE_BIAS_ROWS random training rows (a file
        sorted by class must not fit them on one class), then every row's features are
        computed once, their mean and variance become the standardisation's statistics, and
        the ridge solution (times its temperature) becomes the linear layer. Returns the
        weighted leave-one-out cross-entropy, the one loss reported for the fit.
        """
        if not self.ridge:
            return None
        x = x.float()
        rows = self._rows(x.shape[-1])
        generator = torch.Generator().manual_seed(int(seed))
        pick = torch.randperm(len(x), generator=generator)[:min(rows, RIDGE_BIAS_ROWS)]
        self._compute(x[pick.to(x.device)])  # fits every bank's biases, once
        features = torch.cat([self._compute(x[i:i + rows]) for i in range(0, len(x), rows)])
        mean = features.mean(0)
        var = features.var(0, unbiased=False)
        if self.hydra is not None:
            cut = self.sparse_from
            var[cut:] = HydraBank.scale(features[:, cut:], var[cut:], self.norm.eps)
        self.norm.running_mean.copy_(mean)
        self.norm.running_var.copy_(var)
        nonzero = self._nonzero(features)
        features.sub_(mean).div_(torch.sqrt(var + self.norm.eps))  # as the norm will
        self._keep_zeros(features, nonzero)
        fit = fit_ridge(features, y, self.n_classes, class_weight)
        t = fit["temperature"]
        linear = self.head[1]
        linear.weight.copy_((t * fit["weight"].T).to(linear.weight))
        linear.bias.copy_((t * fit["bias"]).to(linear.bias))
        return float(fit["loss"])


class Rocket(Architecture):
    name = "rocket"
    modalities = frozenset({"signal"})
    description = ("MiniRocket/MultiRocket: fixed dilated random-convolution features "
                   "(PPV, max, MultiRocket's four) and a ridge or trained linear head")
    cpu_bf16 = True  # measured faster under bf16 autocast (BENCHMARKS.md, "bf16 on the CPU")

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return {
            "kernels": trial.suggest_categorical("kernels", [1000, 2500, 5000, 10000]),
            "features": trial.suggest_categorical("features", ["ppv", "ppv_max", "multi"]),
            "diff": trial.suggest_categorical("diff", [False, True]),
            "hydra": trial.suggest_categorical("hydra", [False, True]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "head": trial.suggest_categorical("head", ["ridge", "trained"]),
        }

    def training_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        small = spec.extra.get("n_train", 1000) < 1000
        return {
            "optimizer": trial.suggest_categorical("optimizer", ["adamw", "adam"]),
            "lr": trial.suggest_float("lr", 3e-4, 3e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
            "batch_size": trial.suggest_categorical(
                "batch_size", [16, 32, 64] if small else [64, 128, 256]),
            "epochs": trial.suggest_int("epochs", 10, 60) if small else
            trial.suggest_int("epochs", 5, 30),
            "label_smoothing": trial.suggest_categorical("label_smoothing", [0.0, 0.1]),
            "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
            "sampler": trial.suggest_categorical("sampler", ["shuffle", "balanced"]),
            "augment": trial.suggest_categorical("augment", [False, True]),
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        n_train = spec.extra.get("n_train", 0)
        small = n_train < 1000
        return {
            "kernels": 10000, "features": "ppv", "diff": False, "hydra": False, "dropout": 0.0,
            "head": "ridge" if n_train <= RIDGE_MAX_ROWS else "trained",
            "optimizer": "adamw", "lr": 1e-2, "weight_decay": 1e-2,
            "batch_size": 32 if small else 128, "epochs": 40 if small else 15,
            "label_smoothing": 0.0, "class_weight": "balanced", "sampler": "shuffle",
            "augment": False,
        }

    def priority(self, spec: Spec) -> int:
        # Before cnn (10): higher 3-fold CV on the training splits of ECG200, TwoLeadECG and
        # ECGFiveDays (portfolio.json) and a few seconds per fit (BENCHMARKS_rocket.md).
        return 5

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return RocketModel(params, spec)


@hookimpl
def register_architectures(register):
    register(Rocket())
