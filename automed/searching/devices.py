"""Where trials run: device discovery and one worker slot per (device, share of the CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

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


def visible_gpus() -> list[int]:
    """Indices of the GPUs this process may use (``CUDA_VISIBLE_DEVICES`` is honoured by CUDA)."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Slot:
    """One worker process: the device it trains on and the CPU threads it may use."""

    device: str
    threads: int


def plan_slots(gpus: str | None = None, trials_per_gpu: int = 1, workers: int | None = None,
               device: str | None = None) -> list[Slot]:
    """Decide the worker processes of a search.

    ``gpus``: ``"all"`` (every visible GPU; the CPU when none is, as the CLI says),
    ``"none"`` (CPU only) or indices ``"0,2"``; by default all visible GPUs, else the CPU.
    ``trials_per_gpu`` workers share each GPU (small medical models leave a GPU mostly idle);
    more than 1 without a GPU is refused. ``workers`` sets the number of CPU workers; the
    CPU's cores are divided between all workers so they do not oversubscribe it.
    ``device`` (the single-worker ``--device``) is honoured when neither ``gpus`` nor
    ``workers`` asks for more.
    """
    if trials_per_gpu < 1:
        raise ConfigError(f"--trials-per-gpu {trials_per_gpu} must be at least 1")
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers {workers} must be 0 (only create the study) or a positive "
                          "whole number")
    available = visible_gpus()
    if gpus is None and device not in (None, "auto"):
        dev = resolve_device(device)
        if dev.type == "cpu":
            gpus = "none"
        else:
            gpus = str(dev.index or 0)
    if gpus is None or gpus == "all":
        chosen = available
    elif gpus == "none":
        chosen = []
    else:
        try:
            chosen = [int(g) for g in gpus.split(",") if g.strip()]
        except ValueError:
            raise ConfigError(f"--gpus {gpus!r} is not all, none or a list like 0,2") from None
        missing = [g for g in chosen if g not in available]
        if missing:
            raise ConfigError(
                f"GPU {', '.join(map(str, missing))} is not visible; visible: "
                f"{', '.join(map(str, available)) or 'none'} (CUDA_VISIBLE_DEVICES applies)"
            )
    if trials_per_gpu > 1 and not chosen:
        why = "no GPU is visible" if not available else "the CPU was chosen"
        raise ConfigError(f"--trials-per-gpu {trials_per_gpu} needs a GPU, and {why}; drop it, "
                          "or use --workers N for several CPU processes")
    if chosen:
        devices = [f"cuda:{g}" for g in chosen for _ in range(trials_per_gpu)]
    else:
        devices = ["cpu"] * max(1, workers or 1)
    threads = max(1, cpu_count() // len(devices))
    return [Slot(d, threads) for d in devices]


def threads_from_environment() -> int | None:
    """Threads the user fixed for this process with ``OMP_NUM_THREADS``, if any."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


class CoreShare:
    """This machine's CPU cores, divided among the automed workers training on it.

    Every worker process (local, or ``automed worker``, however many join) registers a file
    named by its process id in a per-user directory under the system's temporary folder. At
    its start and after each candidate it sets its torch threads to ``cores // live workers``
    (at least 1), so N workers sharing a machine together use its cores once instead of
    each taking all of them; a worker that leaves or is killed stops counting (its process id
    is gone). ``fixed`` (``automed worker --threads``, or ``OMP_NUM_THREADS`` set by the user)
    turns the division off. Use it as a context manager and as an Optuna callback.
    """

    def __init__(self, fixed: int | None = None, *, cores: int | None = None,
                 directory: str | os.PathLike | None = None) -> None:
        import tempfile
        from pathlib import Path

        if fixed is not None and fixed < 1:
            raise ConfigError(f"--threads {fixed} must be at least 1")
        self.fixed = fixed
        self.cores = cores or cpu_count()
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        self.directory = Path(directory or Path(tempfile.gettempdir()) / f"automed-cores-{uid}")
        self._mine = self.directory / str(os.getpid())

    def live(self) -> int:
        """Workers registered on this machine whose process is still alive (stale entries
        are removed)."""
        n = 0
        for entry in self.directory.glob("[0-9]*"):
            pid = int(entry.name) if entry.name.isdigit() else -1
            if pid == os.getpid() or _alive(pid):
                n += 1
            else:
                entry.unlink(missing_ok=True)
        return max(1, n)

    def threads(self) -> int:
        return self.fixed or max(1, self.cores // self.live())

    def apply(self) -> int:
        n = self.threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n

    def __enter__(self) -> CoreShare:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._mine.touch()
        self.apply()
        return self

    def __exit__(self, *exc) -> None:
        self._mine.unlink(missing_ok=True)

    def __call__(self, study, trial) -> None:  # Optuna callback: after each candidate
        self.apply()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
