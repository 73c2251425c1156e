"""Which device a worker trains on."""

from __future__ import annotations

import torch

from automed.errors import ConfigError


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` picks the first visible GPU, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as is."""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but no CUDA GPU is visible; "
                              "use --device cpu or auto")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist; {torch.cuda.device_count()} "
                              "GPU(s) are visible")
        return dev
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
