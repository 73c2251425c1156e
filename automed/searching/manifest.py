"""What a search needs to be reproduced: data fingerprints, seeds, versions, device, platform."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from datetime import datetime, timezone

import torch

from automed.data.dataset import Dataset
from automed.searching.training import cpu_bf16_supported

PACKAGES = ("automed", "torch", "optuna", "scikit-learn", "numpy", "sqlalchemy", "safetensors")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} "\
        "threads)"


def build_manifest(train: Dataset, test: Dataset | None, *, seed: int, device: torch.device,
                   deterministic: bool, leakage: dict | None = None) -> dict:
    """A JSON-ready record of everything that decides a search's numbers."""
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"train_fingerprint": train.fingerprint, "train_samples": len(train),
                 "test_fingerprint": test.fingerprint if test is not None else None,
                 "test_samples": len(test) if test is not None else None,
                 "grouped": train.groups is not None},
        "seeds": {"cv": seed, "sampler": seed, "model": f"{seed} + trial number (+ fold)",
                  "bootstrap": seed},
        "deterministic": deterministic,
        "versions": {"python": sys.version.split()[0],
                     **{p: _version(p) for p in PACKAGES}},
        "device": device_name(device),
        # bf16 autocast for the families that opt in (Architecture.cpu_bf16); always on a GPU
        "cpu_bf16": device.type == "cpu" and cpu_bf16_supported(),
        "platform": platform.platform(),
        "leakage": leakage or {},
    }


def enable_determinism() -> None:
    """Deterministic kernels for the search (``--deterministic``; the runner restores the
    caller's setting after it).

    ``warn_only`` because a few CUDA ops have no deterministic version: they warn rather than
    stop the search. On CPU with one worker, fixed seeds alone already repeat a search exactly.
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
