"""The search: an Optuna study over every architecture that accepts the data, scored by CV.

Followed as data: load -> choose architectures -> record dataset and search -> optimise
(each trial: architecture, its params, k folds of fit/predict/score, pruned between folds) ->
refit the best on all training data -> score it on the locked test set -> leaderboard.
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from automed import metrics as M
from automed.architecture import Architecture
from automed.cv import check_folds, make_folds
from automed.dataset import Dataset, LoadedData
from automed.devices import resolve_device
from automed.errors import AutomedError, CandidateError, ConfigError
from automed.loaders import load_data
from automed.plugin_manager import get_plugin_manager
from automed.preprocess import Preprocessor, preprocessor_for
from automed.spec import Spec
from automed.storage import Store
from automed.training import fit_model, predict_proba

DEFAULT_TRIALS = 20
Progress = Callable[[dict], None]


class PrefixedTrial:
    """What a plugin sees of an Optuna trial: ``suggest_*`` with its names made family-local.

    ``cnn`` asking for ``"width"`` gets the study parameter ``"cnn.width"``, so two families
    can both have a ``width`` without their distributions clashing.
    """

    def __init__(self, trial: optuna.Trial, prefix: str) -> None:
        self._trial, self._prefix = trial, prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}.{name}"

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._trial.suggest_int(self._name(name), *args, **kwargs)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self._trial.suggest_float(self._name(name), *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._trial.suggest_categorical(self._name(name), choices)

    @property
    def number(self) -> int:
        return self._trial.number


@dataclass
class SearchResult:
    study: str
    storage: str  # password redacted
    leaderboard: list[dict]
    best: dict | None
    test_scores: dict | None = None
    test_size: int | None = None
    resumed: bool = False
    model: torch.nn.Module | None = field(default=None, repr=False)
    preprocessor: Preprocessor | None = field(default=None, repr=False)
    spec: Spec | None = None


def _fold_mean(values: list[dict]) -> dict:
    keys = values[0].keys() if values else []
    out = {}
    for k in keys:
        vals = [v[k] for v in values if v[k] is not None and not math.isnan(v[k])]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def _error_text(exc: BaseException) -> str:
    summary = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return summary + "\n" + "".join(traceback.format_exception(exc)[-6:])


class Searcher:
    """Runs one search: the objective every worker optimises, and the refit of the best."""

    def __init__(self, train: Dataset, test: Dataset | None, *, metric: str, average: str,
                 pos_label: int, folds: int, seed: int, architectures: dict[str, Architecture],
                 store: Store, study_name: str, device: torch.device, prune: bool = True,
                 progress: Progress | None = None) -> None:
        self.train, self.test = train, test
        self.metric, self.average, self.pos_label = metric, average, pos_label
        self.folds, self.seed, self.archs = folds, seed, architectures
        self.store, self.study_name, self.device = store, study_name, device
        self.prune, self.progress = prune, progress or (lambda event: None)
        self.spec = preprocessor_for(train.modality).spec(train)
        self.splits = make_folds(train, folds, seed)
        self._fold_cache: dict[int, tuple] = {}
        self.search_id: int | None = None
        self.test_predictions: dict | None = None  # set by refit, for ROC/PR/confusion

    # -- per-fold data, preprocessed once and reused by every trial ----------------------
    def fold_data(self, i: int) -> tuple:
        if i not in self._fold_cache:
            tr, va = self.splits[i]
            part = self.train.subset(tr)
            pre = preprocessor_for(self.train.modality).fit(part)
            self._fold_cache[i] = (pre.transform(part.x), torch.from_numpy(part.y),
                                   pre.transform(self.train.x[va]), self.train.y[va])
        return self._fold_cache[i]

    def _score_all(self, y: np.ndarray, proba: np.ndarray) -> dict:
        return M.all_scores(y, proba, self.average, self.pos_label)

    # -- the objective -------------------------------------------------------------------
    def objective(self, trial: optuna.Trial) -> float:
        name = trial.suggest_categorical("architecture", sorted(self.archs))
        arch = self.archs[name]
        start = time.perf_counter()
        fold_scores: list[float] = []
        fold_metrics: list[dict] = []
        params: dict[str, Any] = {}

        def record(state: str, error: str | None = None) -> None:
            mean = float(np.mean(fold_scores)) if fold_scores else None
            std = float(np.std(fold_scores)) if fold_scores else None
            trial.set_user_attr("fold_scores", fold_scores)
            self.store.record_candidate(
                self.search_id, trial.number, architecture=name, params=params, state=state,
                fold_scores=fold_scores, score_mean=mean, score_std=std,
                metrics=_fold_mean(fold_metrics), duration_s=time.perf_counter() - start,
                device=str(self.device), error=error)
            self.progress({"event": "candidate", "trial": trial.number, "architecture": name,
                           "state": state, "score_mean": mean, "score_std": std,
                           "folds_done": len(fold_scores), "folds": self.folds,
                           "duration_s": time.perf_counter() - start,
                           "error": error.splitlines()[0] if error else None})

        try:
            local = PrefixedTrial(trial, name)
            params = dict(arch.search_space(local, self.spec))
            params.update(arch.training_space(local, self.spec))
            for i in range(self.folds):
                xtr, ytr, xva, yva = self.fold_data(i)
                torch.manual_seed(self.seed + trial.number)
                model = arch.build(params, self.spec)
                fit_model(model, xtr, ytr, params, self.spec, device=self.device,
                          seed=self.seed + trial.number * 100 + i)
                proba = predict_proba(model, xva, device=self.device)
                scores = self._score_all(yva, proba)
                fold_scores.append(scores[self.metric])
                fold_metrics.append(scores)
                trial.report(float(np.mean(fold_scores)), i)
                if self.prune and i < self.folds - 1 and trial.should_prune():
                    record("pruned")
                    raise optuna.TrialPruned()
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a faulty plugin fails its candidate only
            record("failed", _error_text(exc))
            raise CandidateError(f"{name}: {exc}") from exc
        if not all(math.isfinite(s) for s in fold_scores):
            record("failed", "metric was not finite on every fold")
            raise CandidateError(f"{name}: metric not finite")
        record("complete")
        return float(np.mean(fold_scores))

    # -- refit ---------------------------------------------------------------------------
    def refit(self, trial: optuna.trial.FrozenTrial) -> tuple:
        name = trial.params["architecture"]
        arch = self.archs[name]
        prefix = f"{name}."
        params = {k[len(prefix):]: v for k, v in trial.params.items() if k.startswith(prefix)}
        pre = preprocessor_for(self.train.modality).fit(self.train)
        torch.manual_seed(self.seed + trial.number)
        model = arch.build(params, self.spec)
        fit_model(model, pre.transform(self.train.x), torch.from_numpy(self.train.y), params,
                  self.spec, device=self.device, seed=self.seed + trial.number * 100)
        scores = None
        if self.test is not None:
            proba = predict_proba(model, pre.transform(self.test.x), device=self.device)
            scores = self._score_all(self.test.y, proba)
            self.test_predictions = {"classes": list(self.train.classes),
                                     "y_true": np.asarray(self.test.y).tolist(),
                                     "proba": np.round(proba, 6).tolist()}
        return model, pre, scores


def _resolve_pos_label(pos_label: str | int | None, classes: list[str]) -> int | None:
    if pos_label is None:
        return None
    if str(pos_label) in classes:
        return classes.index(str(pos_label))
    raise ConfigError(f"positive label {pos_label!r} is not a class; classes: {classes}")


def default_study_name(dataset: Dataset, metric: str, folds: int) -> str:
    stem = Path(dataset.source).stem or "dataset"
    return f"{stem}-{metric}-cv{folds}"


def search(
    data: str | Path | LoadedData,
    *,
    test: str | Path | None = None,
    metric: str = "accuracy",
    average: str = "macro",
    pos_label: str | int | None = None,
    folds: int = 5,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    architectures: list[str] | None = None,
    seed: int = 0,
    format: str | None = None,
    modality: str | None = None,
    label_col: str | int | None = None,
    device: str = "auto",
    prune: bool = True,
    refit: bool = True,
    progress: Progress | None = None,
) -> SearchResult:
    """Search every architecture that accepts the data; rank candidates by CV ``metric``.

    Everything is validated (data, metric, folds, architectures, database) before anything is
    written, so bad input leaves the database as it was. Running the same search again (same
    study name and settings) resumes it: finished candidates count towards ``trials``.
    """
    metric = M.resolve_metric(metric)
    progress = progress or (lambda event: None)
    if trials is None and timeout is None:
        trials = DEFAULT_TRIALS
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials} must be at least 1")
    loaded = data if isinstance(data, LoadedData) else load_data(
        data, format=format, modality=modality, test=test, label_col=label_col)
    train = loaded.train
    pos = _resolve_pos_label(pos_label, train.classes)
    average, pos = M.resolve_average(average, train.n_classes, pos)
    check_folds(train, folds)
    archs = get_plugin_manager().architectures_for(train.modality, architectures)
    dev = resolve_device(device)

    store = Store(storage)
    study_name = study or default_study_name(train, metric, folds)
    spec = preprocessor_for(train.modality).spec(train)
    config = {"metric": metric, "average": average, "pos_label": pos, "folds": folds,
              "cv_seed": seed, "architectures": sorted(archs), "trials": trials,
              "timeout": timeout, "device": str(dev), "spec": spec.to_dict(),
              "source": train.source, "test_source": loaded.test.source if loaded.test else None}
    searcher = Searcher(train, loaded.test, metric=metric, average=average, pos_label=pos,
                        folds=folds, seed=seed, architectures=archs, store=store,
                        study_name=study_name, device=dev, prune=prune, progress=progress)
    dataset_id = store.upsert_dataset(
        fingerprint=train.fingerprint, name=Path(train.source).stem, source=train.source,
        modality=train.modality, n_samples=len(train), classes=train.classes,
        class_counts=train.class_counts(), input_shape=list(spec.input_shape))
    search_id, resumed = store.open_search(study_name, dataset_id, metric, config)
    searcher.search_id = search_id

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        # group=True is "experimental" but is what conditional per-family spaces need.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, group=True, n_startup_trials=8)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
              if prune else optuna.pruners.NopPruner())
    ostudy = optuna.create_study(storage=store.optuna_storage(), study_name=study_name,
                                 direction="maximize", sampler=sampler, pruner=pruner,
                                 load_if_exists=True)
    if not ostudy.trials:
        for name, arch in sorted(archs.items()):
            defaults = arch.default_params(spec)
            if defaults:
                ostudy.enqueue_trial({"architecture": name,
                                      **{f"{name}.{k}": v for k, v in defaults.items()}})
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                optuna.trial.TrialState.FAIL)
    done = len(ostudy.get_trials(deepcopy=False, states=finished))
    remaining = None if trials is None else max(0, trials - done)
    progress({"event": "start", "study": study_name, "storage": store.redacted,
              "dataset": train.summary(), "architectures": sorted(archs), "folds": folds,
              "metric": metric, "trials": trials, "done": done, "resumed": resumed,
              "device": str(dev)})
    status = "complete"
    try:
        if remaining is None or remaining > 0:
            callbacks = []
            if trials is not None:
                callbacks.append(optuna.study.MaxTrialsCallback(trials, states=finished))
            ostudy.optimize(searcher.objective, n_trials=remaining, timeout=timeout,
                            catch=(CandidateError,), callbacks=callbacks,
                            gc_after_trial=False, show_progress_bar=False)
    except KeyboardInterrupt:
        status = "interrupted"
        store.finish_search(search_id, status=status)
        raise

    result = SearchResult(study_name, store.redacted, store.leaderboard(study_name), None,
                          resumed=resumed, spec=spec)
    completed = [t for t in ostudy.get_trials(deepcopy=False,
                                             states=(optuna.trial.TrialState.COMPLETE,))]
    if not completed:
        store.finish_search(search_id, status="failed")
        raise AutomedError(
            f"no candidate of study {study_name!r} completed; see `automed leaderboard "
            f"--study {study_name} --all` for their errors"
        )
    best = ostudy.best_trial
    result.best = next((r for r in result.leaderboard if r["trial"] == best.number), None)
    test_scores = None
    if refit:
        progress({"event": "refit", "trial": best.number,
                  "architecture": best.params["architecture"], "test": loaded.test is not None})
        model, pre, test_scores = searcher.refit(best)
        result.model, result.preprocessor = model, pre
        result.test_scores = test_scores
        result.test_size = len(loaded.test) if loaded.test is not None else None
    store.finish_search(search_id, status=status, best_trial=best.number,
                        test_scores=test_scores, test_size=result.test_size,
                        test_predictions=searcher.test_predictions)
    progress({"event": "done", "study": study_name, "best": result.best,
              "test_scores": test_scores})
    return result
