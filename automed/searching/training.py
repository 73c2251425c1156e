"""Fit one model on in-memory tensors, as fast as a hand-written loop, and predict.

The whole (small) training set is one tensor on the device for the whole fit; batches are
index slices, so there is no per-sample Python work and no DataLoader overhead.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from automed.contract import TRAINING_DEFAULTS, TRAINING_KEYS, validate_training_params
from automed.errors import CandidateError
from automed.searching.interrupts import check_stop
from automed.spec import Spec

SMALL_DATA = 1000  # training sets below this many samples get smaller batches, more epochs


def default_training_space(trial: Any, spec: Spec) -> dict[str, Any]:
    """Training settings whose ranges suit hundreds to tens of thousands of samples.

    Shrunk where candidates collapsed most (benchmarks/collapse_regions.py, BENCHMARKS.md):
    SGD gets its own, higher learning-rate range (SGD below 1e-3 predicted one class after two
    epochs on BreastMNIST), and small training sets get batches of 16-64 and at least 15 epochs
    (with batches of 64-128, ECG200's 67-sample folds saw 1-2 optimizer steps per epoch and
    most candidates ended predicting one class).
    """
    small = spec.extra.get("n_train", SMALL_DATA) < SMALL_DATA
    optimizer = trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    params = {
        "optimizer": optimizer,
        "lr": (trial.suggest_float("lr", 2e-3, 3e-2, log=True) if optimizer == "sgd"
               else trial.suggest_float("lr", 3e-4, 1e-2, log=True)),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size",
                                                [16, 32, 64] if small else [32, 64, 128]),
        "epochs": trial.suggest_int("epochs", 15, 40) if small else
        trial.suggest_int("epochs", 8, 30),
        "loss": "cross_entropy",
        "label_smoothing": trial.suggest_categorical("label_smoothing", [0.0, 0.1]),
        # Images always train with a class-balanced loss (not searched, like augmentation
        # below): a medical image set's prevalence is rarely the one its model meets
        # (PneumoniaMNIST: 74 % pneumonia in training, 62.5 % in its test split), and a model
        # fitted to the training prevalence wins CV and loses there. The image default
        # without class weights or balanced sampler scored 0.886 on that test set, with
        # either 0.914-0.917, with both 0.926 (BENCHMARKS.md, "Fourteenth round: images
        # trained class-balanced"). The sampler is still searched.
        "class_weight": ("balanced" if spec.modality == "image" else
                         trial.suggest_categorical("class_weight", ["none", "balanced"])),
        # "balanced" draws every class equally often per epoch: the other imbalance remedy.
        "sampler": trial.suggest_categorical("sampler", ["shuffle", "balanced"]),
    }
    if spec.modality == "signal":
        params["augment"] = trial.suggest_categorical("augment", [False, True])
    elif spec.modality == "image":
        # Always on, not searched: cross-validation cannot see what it buys. On
        # PneumoniaMNIST a candidate without it had the best CV (0.972 against 0.924) and
        # scored 0.854-0.869 on the test set; the same candidate with it 0.901-0.905
        # (BENCHMARKS.md, "Images: augmentation, longer schedules and seed bagging").
        params["augment"] = True
    return params


def training_params(params: dict[str, Any]) -> dict[str, Any]:
    merged = dict(TRAINING_DEFAULTS)
    merged.update({k: params[k] for k in TRAINING_KEYS if k in params})
    return merged


# -- augmentation on whole batches ---------------------------------------------------------
def augment_batch(x: torch.Tensor, modality: str, generator: torch.Generator) -> torch.Tensor:
    """Cheap label-preserving jitter: small affine warps for images, shift/scale for signals."""
    n = x.shape[0]
    dev = x.device
    if modality == "image":
        rand = torch.rand(n, 4, generator=generator).to(dev)
        angle = (rand[:, 0] - 0.5) * (2 * math.pi * 10 / 360)  # +-10 degrees
        scale = 1.0 + (rand[:, 1] - 0.5) * 0.2  # 0.9 .. 1.1
        tx, ty = (rand[:, 2] - 0.5) * 0.2, (rand[:, 3] - 0.5) * 0.2  # +-10 % shift
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    if modality == "signal":
        length = x.shape[-1]
        rand = torch.rand(n, 2, generator=generator)
        scale = (0.9 + 0.2 * rand[:, 0]).to(dev).view(n, 1, 1)
        shifts = ((rand[:, 1] - 0.5) * 0.1 * length).round().long()
        idx = (torch.arange(length).view(1, -1) - shifts.view(-1, 1)).clamp(0, length - 1)
        idx = idx.to(dev).unsqueeze(1).expand(-1, x.shape[1], -1)
        return torch.gather(x, 2, idx) * scale
    return x


# -- fit and predict -------------------------------------------------------------------------
def _class_weights(y: torch.Tensor, n_classes: int, mode: str) -> torch.Tensor | None:
    if mode != "balanced":
        return None
    counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
    return (counts.sum() / (n_classes * counts)).to(y.device)


def epoch_order(y: torch.Tensor, n_classes: int, mode: str,
                generator: torch.Generator) -> torch.Tensor:
    """Sample indexes for one epoch: a permutation, or class-balanced draws with replacement."""
    n = len(y)
    if mode != "balanced":
        return torch.randperm(n, generator=generator)
    counts = torch.bincount(y.cpu(), minlength=n_classes).double()
    weights = (1.0 / counts.clamp(min=1))[y.cpu()]
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def squared_hinge(logits: torch.Tensor, y: torch.Tensor,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """One-vs-rest squared hinge (scikit-learn's LinearSVC loss), summed over classes and
    averaged over samples (weighted like ``F.cross_entropy``'s ``weight``)."""
    target = -torch.ones_like(logits)
    target[torch.arange(len(y), device=y.device), y] = 1.0
    per_sample = torch.clamp(1.0 - target * logits, min=0.0).pow(2).sum(1)
    if weight is None:
        return per_sample.mean()
    w = weight[y]
    return (per_sample * w).sum() / w.sum()


def _loss(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
          p: dict[str, Any]) -> torch.Tensor:
    if p["loss"] == "squared_hinge":
        return squared_hinge(logits, y, weight)
    return F.cross_entropy(logits, y, weight=weight, label_smoothing=p["label_smoothing"])


def _make_optimizer(model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
    if p["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=0.9, nesterov=True,
                               weight_decay=p["weight_decay"])
    params = [q for q in model.parameters() if q.requires_grad]
    # One fused kernel per step: 4.5x faster than the default on a 2M-parameter embedding
    # table on CPU (BENCHMARKS.md, text families), where the optimizer step dominated.
    fused = bool(params) and all(q.is_floating_point() and q.device.type in ("cpu", "cuda")
                                 for q in params)
    cls = torch.optim.Adam if p["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=p["lr"], weight_decay=p["weight_decay"], fused=fused or None)


def _channels_last(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    # NHWC lets oneDNN/cuDNN pick faster convolutions: measured 5.5 -> 3.1 s per PneumoniaMNIST
    # epoch on 2 CPU cores for the default CNN (BENCHMARKS.md).
    if x.dim() == 4:
        return (model.to(memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last))
    return model, x


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16), or the environment says.

    ``AUTOMED_CPU_BF16=0`` keeps every family in float32 on the CPU; ``=1`` allows bf16 even
    where the CPU would emulate it (slower: only for experiments).
    """
    forced = os.environ.get("AUTOMED_CPU_BF16", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # a torch without these probes: stay in float32
        return False


def _autocast(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on a GPU always; on the CPU only for families that measured faster in it
    (``Architecture.cpu_bf16``) and only on CPUs that compute bf16 natively."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16 and device.type == "cpu" and cpu_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def fit_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: dict[str, Any],
    spec: Spec,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Any = None,
    cpu_bf16: bool = False,
    on_step: Any = None,
) -> nn.Module:
    """Train ``model`` on ``(x, y)`` with the training settings in ``params``.

    Raises :class:`CandidateError` when the model returns logits of the wrong shape or the loss
    stops being finite: that fails the candidate, never the search.
    ``on_epoch(epoch, loss)`` is called after every epoch (progress, pruning, time limits);
    ``on_step(epoch, step, steps_per_epoch)`` before every gradient step (a heartbeat: one
    long epoch is still a progress line).
    ``cpu_bf16``: the family's ``Architecture.cpu_bf16`` (bf16 autocast on a capable CPU).

    A model with a ``fit_closed_form(x, y, class_weight, seed)`` method may fit itself without
    gradient steps (the built-in rocket's ridge head): when that returns a loss, training is
    done, ``on_epoch(0, loss)`` is the one epoch reported, and the optimizer settings are
    unused. When it returns ``None`` the model trains by gradient as any other.
    """
    p = training_params(params)
    validate_training_params(p)
    device = torch.device(device)
    model = model.to(device)
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    closed_form = getattr(model, "fit_closed_form", None)
    if callable(closed_form):
        model.train()
        loss = closed_form(x, y, _class_weights(y, spec.n_classes, p["class_weight"]), seed)
        if loss is not None:
            if not math.isfinite(float(loss)):
                raise CandidateError(f"the closed-form fit's loss is {loss}; the candidate "
                                     "failed (its features may hold NaN or infinite values)")
            if on_epoch is not None:
                on_epoch(0, float(loss))
            return model
    model, x = _channels_last(model, x)
    n = len(y)
    batch_size = int(min(p["batch_size"], n))
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    epochs = int(p["epochs"])
    optimizer = _make_optimizer(model, p)
    total_steps = epochs * steps_per_epoch
    if total_steps >= 10:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=p["lr"], total_steps=total_steps, pct_start=0.25)
    else:  # too few steps for a warm-up and a decay (OneCycle divides by zero)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    weight = _class_weights(y, spec.n_classes, p["class_weight"])
    generator = torch.Generator().manual_seed(seed)
    augment = bool(p["augment"]) and spec.modality in ("image", "signal")
    checked = False
    model.train()
    for epoch in range(epochs):
        order = epoch_order(y, spec.n_classes, p["sampler"], generator).to(device)
        total = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            check_stop()  # a worker's stop that a signal handler could not raise (QA)
            if on_step is not None:
                on_step(epoch, step, steps_per_epoch)
            idx = order[step * batch_size:(step + 1) * batch_size]
            if len(idx) < 2 and step > 0:
                continue  # a 1-sample tail batch breaks BatchNorm and adds nothing
            xb, yb = x[idx], y[idx]
            if augment:
                xb = augment_batch(xb, spec.modality, generator)
            with _autocast(device, cpu_bf16):
                logits = model(xb)
            if not checked:
                expected = (len(idx), spec.n_classes)
                if not isinstance(logits, torch.Tensor):
                    raise CandidateError(
                        f"model returned a {type(logits).__name__}, not a logits tensor of "
                        f"shape {expected} (batch, n_classes); return the logits alone")
                if tuple(logits.shape) != expected:
                    raise CandidateError(
                        f"model returned logits of shape {tuple(logits.shape)}, expected "
                        f"{expected} (batch, n_classes)"
                    )
                if not logits.is_floating_point():  # QA: "does not require grad" said
                    raise CandidateError(f"model returned {logits.dtype} logits; return "
                                         "floating-point logits (no argmax, round or .long())")
                checked = True
            loss = _loss(logits.float(), yb, weight, p)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            total += loss.detach()
        mean_loss = float(total) / steps_per_epoch
        if not math.isfinite(mean_loss):
            raise CandidateError(f"training loss became {mean_loss} in epoch {epoch + 1}; "
                                 "the candidate diverged (try a lower learning rate)")
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
    return model


class SeedBag(nn.Module):
    """The same candidate trained with several seeds, answering with the mean of their class
    probabilities (as log-probabilities, so the softmax of the output is that mean).

    Seed bagging: on BreastMNIST and PneumoniaMNIST the mean of three seeds scored a test
    AUROC above the best single seed's in 4 of 5 configurations, 0.0003 below it in the fifth
    (BENCHMARKS.md, "Images: augmentation, longer schedules and seed bagging").
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proba = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members])
        return torch.log(proba.mean(0).clamp_min(1e-12))


@torch.inference_mode()
def predict_proba(model: nn.Module, x: torch.Tensor, *, device: torch.device | str = "cpu",
                  batch_size: int = 1024, cpu_bf16: bool = False,
                  n_classes: int | None = None) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` as float64 numpy. ``n_classes``, where known,
    is checked as training checks it (QA: a model whose eval-mode output had a third column
    was pruned on scores of 3-column probabilities, or failed with numpy's "could not be
    broadcast")."""
    device = torch.device(device)
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        if xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, cpu_bf16):
            logits = model(xb)
        if not start:
            shape = tuple(getattr(logits, "shape", ()))
            expected = (len(xb), n_classes if n_classes is not None else
                        (shape[1] if len(shape) == 2 else -1))
            if not isinstance(logits, torch.Tensor) or shape != expected:
                got = (f"logits of shape {shape}" if isinstance(logits, torch.Tensor)
                       else f"a {type(logits).__name__}")
                raise CandidateError(f"model returned {got} in eval mode, expected {expected} "
                                     "(batch, n_classes)")
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    proba = torch.cat(out).double().numpy()
    if not np.isfinite(proba).all():
        raise CandidateError("model predicted NaN or infinite probabilities")
    return proba
