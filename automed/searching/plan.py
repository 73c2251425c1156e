"""A search plan: everything one search is, typed, validated and serialisable.

The plan is written into the study database when a search is created; every process that runs
candidates (this one, local worker processes, ``automed worker`` on another machine) rebuilds
the search from it through :func:`automed.searching.prepare.prepare`, so a worker cannot read
the data differently from the process that created the study (groups, test rows, loader
options). A plan from a newer automed is refused rather than half-honoured.

This module imports neither torch nor scikit-learn: the CLI validates options with it before
any heavy import or any write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automed.errors import ConfigError, PluginError

PLAN_VERSION = 1
HEARTBEAT_INTERVAL = 10.0  # seconds between a running trial's heartbeats
DEFAULT_TRIALS = 20
# With --refit-full the answer is refit with this many seeds and their probabilities averaged
# (seed bagging): on BreastMNIST and PneumoniaMNIST a test AUROC above the best single seed's
# in 4 of 5 configurations, for that many times the refit's cost (BENCHMARKS.md, "Images:
# augmentation, longer schedules and seed bagging"). Without it the answer averages the k
# models its cross-validation trained, and costs no refit (searching.foldbag).
DEFAULT_BAG = 3
MAX_BAG = 20
# Loader options a plan may carry; each loader declares which of them it supports.
LOADER_OPTIONS = ("label_col", "group_col", "text_col", "sequence_col", "id_col")
# What must not change when a study is resumed (its scores would no longer compare).
# (--max-epochs too: a resume with another cap would rank 1-epoch and 30-epoch candidates
# on one leaderboard.)
FROZEN_ON_RESUME = ("metric", "average", "pos_label", "folds", "seed", "max_epochs")


@dataclass
class DataPlan:
    """Where the data comes from and how to read it."""

    path: str | None = None  # absolute; None only for in-memory data (one process)
    format: str | None = None
    modality: str | None = None
    test: str | None = None  # a separate locked test file
    test_fraction: float | None = None  # or a grouped, stratified carve-out
    groups: str | None = None  # a file with one group id per training sample
    options: dict[str, Any] = field(default_factory=dict)  # LOADER_OPTIONS, unset ones absent

    def __post_init__(self) -> None:
        unknown = sorted(set(self.options) - set(LOADER_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown loader option(s) {', '.join(unknown)}; known: "
                              f"{', '.join(LOADER_OPTIONS)}")
        self.options = {k: v for k, v in self.options.items() if v is not None}


@dataclass
class SearchPlan:
    """One search: data, scoring, candidates, budget, placement, plugins and outputs."""

    data: DataPlan = field(default_factory=DataPlan)
    metric: str = "accuracy"
    average: str = "macro"
    pos_label: str | None = None
    folds: int = 5
    seed: int = 0
    architectures: list[str] | None = None
    trials: int | None = None
    timeout: float | None = None
    max_epochs: int | None = None
    prune: bool = True
    device: str = "auto"
    gpus: str | None = None
    trials_per_gpu: int = 1
    workers: int | None = None
    heartbeat: float = HEARTBEAT_INTERVAL
    plugins: list[dict] = field(default_factory=list)  # {"source", "sha256"}: see plugin_ref
    bootstrap: int = 1000
    deterministic: bool = False
    # The answer: the k fold models of the winner (and of an ensemble's members), or with
    # refit_full a refit on all training data with ``bag`` seeds (None: DEFAULT_BAG).
    refit_full: bool = False
    bag: int | None = None
    version: int = PLAN_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            self.data = DataPlan(**self.data)
        # numpy integers (a notebook's np.int64(3)) are whole numbers too; the plan is JSON
        for name in ("folds", "seed", "trials", "max_epochs", "trials_per_gpu", "workers",
                     "bootstrap", "bag"):
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                setattr(self, name, int(value))
        if self.trials is None and self.timeout is None:
            self.trials = DEFAULT_TRIALS
        # One name per metric: "auc", "AUROC" and "roc_auc" are auroc, stored and compared so
        # (QA: a study searched with "auc" refused its resume with "auroc")
        from automed.evaluation.names import ALIASES

        if isinstance(self.metric, str):
            self.metric = ALIASES.get(self.metric.strip().lower(), self.metric.strip().lower())
        self.validate()

    def validate(self) -> None:
        """Refuse values no search can honour, before anything is loaded or written."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(_is_int(self.folds) and self.folds >= 2,
             f"--folds {self.folds!r}: cross-validation needs a whole number of at least 2")
        need(self.trials is None or (_is_int(self.trials) and self.trials >= 1),
             f"--trials {self.trials!r} must be a whole number of at least 1")
        need(self.timeout is None or (_finite(self.timeout) and self.timeout > 0),
             f"--timeout {self.timeout} must be a positive number of seconds")
        need(self.max_epochs is None or (_is_int(self.max_epochs) and self.max_epochs >= 1),
             f"--max-epochs {self.max_epochs!r} must be a whole number of at least 1")
        need(_finite(self.heartbeat) and self.heartbeat >= 1,
             f"--heartbeat {self.heartbeat} must be at least 1 second")
        need(_is_int(self.bootstrap) and self.bootstrap >= 0,
             f"--bootstrap {self.bootstrap!r} must be 0 (no intervals) or a whole number of "
             "resamples")
        need(_is_int(self.trials_per_gpu) and self.trials_per_gpu >= 1,
             f"--trials-per-gpu {self.trials_per_gpu!r} must be a whole number of at least 1")
        need(self.workers is None or (_is_int(self.workers) and self.workers >= 0),
             f"--workers {self.workers!r} must be 0 (create the study only) or a positive "
             "whole number")
        need(_is_int(self.seed), f"--seed {self.seed!r} must be an integer")
        need(self.bag is None or (_is_int(self.bag) and 1 <= self.bag <= MAX_BAG),
             f"--bag {self.bag!r} must be a whole number from 1 (a single refit) to {MAX_BAG}")
        need(self.bag is None or self.refit_full,
             f"--bag {self.bag} sets the seeds of a refit on all training data; add "
             "--refit-full, or leave --bag out (the answer then averages its k fold models)")
        tf = self.data.test_fraction
        need(tf is None or (_finite(tf) and 0 < tf < 1),
             f"--test-fraction {tf} must lie strictly between 0 and 1, e.g. 0.2")
        need(not (tf is not None and self.data.test is not None),
             "--test-fraction and --test both give a test set; keep one")
        need(not (self.data.groups is not None and "group_col" in self.data.options),
             "--groups and --group-col both give the patient ids; keep one")
        need(self.version <= PLAN_VERSION,
             f"this search plan has version {self.version}, newer than this automed "
             f"understands ({PLAN_VERSION}); upgrade automed on this machine")

    @property
    def seeds(self) -> int:
        """Seeds of the answer's refit (with ``refit_full``, or a member refit as fallback)."""
        return DEFAULT_BAG if self.bag is None else self.bag

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], study: str = "") -> SearchPlan:
        """The plan stored with a study; refused when this version cannot honour it."""
        where = f"study {study!r}: " if study else ""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}the stored search plan is not readable; start a new "
                              "study")
        version = raw.get("version")
        if not isinstance(version, int) or version > PLAN_VERSION:
            raise ConfigError(f"{where}its search plan has version {version!r}, which this "
                              f"automed (plan version {PLAN_VERSION}) cannot honour; run the "
                              "same automed version as the machine that created the study")
        known = {f.name for f in dataclasses.fields(cls)}
        data_known = {f.name for f in dataclasses.fields(DataPlan)}
        unknown = sorted(set(raw) - known) + sorted(set(raw.get("data") or {}) - data_known)
        if unknown:
            raise ConfigError(f"{where}its search plan has settings this automed does not know "
                              f"({', '.join(unknown)}); upgrade automed on this machine")
        if "refit_full" not in raw:  # a plan written before fold-model answers: it refit
            raw = {**raw, "refit_full": True}
        return cls(**{**raw, "data": DataPlan(**(raw.get("data") or {}))})

    # -- what a resumed run may change ---------------------------------------------------
    def check_resumable(self, stored: SearchPlan, study: str, same: tuple[str, ...] = (),
                        same_data: bool = False) -> None:
        """Refuse a resume that would make scores incomparable or read other data. ``same``:
        settings given differently that resolve to the same on this data (``pos_label``:
        ``--pos-label 1`` names the default positive class of classes 0 and 1).
        ``same_data``: this run read the very samples, labels, groups and folds the study
        did, so how it was told to read them (``--format``, ``--modality``, loader options
        such as a restated ``--label-col label``) may differ (QA: restating what automed had
        detected was refused)."""
        was = {r.get("source"): r.get("sha256") for r in stored.plugins if r.get("sha256")}
        for ref in self.plugins:
            old = was.get(ref.get("source"))
            if old and ref.get("sha256") and ref["sha256"] != old:
                # QA: the resume trained with the edited code beside candidates of the old,
                # and recorded the new hash as the one the whole study was searched with
                raise ConfigError(
                    f"plugin file {ref['source']} changed since study {study!r} was searched "
                    f"(sha256 {old[:12]}... then, {ref['sha256'][:12]}... now): its candidates "
                    "would not compare; restore the file, or give another --study name")
        for key in FROZEN_ON_RESUME:
            old, new = getattr(stored, key), getattr(self, key)
            if old != new and key not in same:
                raise ConfigError(
                    f"study {study!r} was searched with {key}={old!r}, not {new!r}; scores "
                    "would not compare: pick another --study name or the same settings")
        # Every option that differs, together: a --test study resumed with --test-fraction
        # instead differs in both (QA: naming the first alone read "not no test").
        differ = [({"options": "loader options"}.get(key, key.replace("_", "-")),
                   getattr(stored.data, key), getattr(self.data, key))
                  for key in ("path", "format", "modality", "test", "test_fraction", "groups",
                              "options")
                  if getattr(stored.data, key) != getattr(self.data, key)
                  and not (same_data and key in ("format", "modality", "options"))]
        if differ:
            was = " and ".join(_said(flag, old) for flag, old, _ in differ)
            now = " and ".join(_said(flag, new) for flag, _, new in differ)
            raise ConfigError(f"study {study!r} read its data with {was}, not {now}; use the "
                              "same data options or another --study name")


def _said(flag: str, value: Any) -> str:
    """A data option as the user gave it: ``no test-fraction`` where it was not given, and
    data without a path as what it is, data built in memory (the Python API)."""
    if flag == "path" and value is None:
        return "in-memory data"
    if flag == "loader options":  # as flags (QA: a Python dict was printed)
        return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(value.items())) \
            if value else "no column options"
    return f"no {flag}" if value in (None, {}, []) else f"{flag}={value!r}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plugin_ref(source: str | Path) -> dict:
    """How a plan names a plugin: a module name, or a ``.py`` file with its content hash.

    Workers load a file plugin only when its content still has the recorded hash, so editing
    the study database cannot make every worker import a file of the editor's choosing.
    """
    text = str(source)
    if text.endswith(".py"):
        path = Path(text).resolve()
        if not path.is_file():
            raise PluginError(f"plugin file {text} does not exist; check the --plugin path")
        return {"source": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {"source": text, "sha256": None}
