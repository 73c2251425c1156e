"""The search (``automed.search``): Optuna over every architecture that accepts the data.

Followed as data: load -> choose architectures -> record dataset and search -> optimise
(each trial: architecture, its params, k folds of fit/predict/score, pruned between folds) ->
refit the best on all training data -> score it on the locked test set -> leaderboard.
"""

from __future__ import annotations

import dataclasses
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
from automed.artifact import default_dir, save_artifact
from automed.cv import check_folds, make_folds, split_test
from automed.dataset import Dataset, LoadedData
from automed.devices import plan_slots
from automed.errors import AutomedError, CandidateError, ConfigError, DataError
from automed.leakage import check_folds_leakage, check_test_leakage, leakage_warnings
from automed.loaders import load_data
from automed.manifest import build_manifest, enable_determinism
from automed.plugin_manager import get_plugin_manager
from automed.preprocess import Preprocessor, preprocessor_for
from automed.spec import Spec
from automed.storage import Store
from automed.training import TRAINING_DEFAULTS, fit_model, predict_proba
from automed.workers import (
    HEARTBEAT_INTERVAL,
    counted_trials,
    open_study,
    run_local_workers,
    run_trials,
)

DEFAULT_TRIALS = 20
Progress = Callable[[dict], None]


class _OutOfTime(Exception):
    """The search's --timeout passed while a candidate was training."""


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
    test_ci: dict | None = None  # {metric: {value, low, high}}, 95 % bootstrap on the test set
    artifact: str | None = None  # folder of the saved refit model
    manifest: dict | None = None
    warnings: list[str] = field(default_factory=list)


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
                 progress: Progress | None = None, max_epochs: int | None = None,
                 splits: list | None = None) -> None:
        self.train, self.test = train, test
        self.metric, self.average, self.pos_label = metric, average, pos_label
        self.folds, self.seed, self.archs = folds, seed, architectures
        self.store, self.study_name, self.device = store, study_name, device
        self.prune, self.progress = prune, progress or (lambda event: None)
        self.max_epochs = max_epochs
        spec = preprocessor_for(train.modality).spec(train)
        # The training-set size lets families scale batch size and epochs to the data.
        self.spec = dataclasses.replace(spec, extra={**spec.extra, "n_train": len(train)})
        self.deadline: float | None = None  # monotonic time after which candidates stop
        self._complete = False
        self.splits = splits if splits is not None else make_folds(train, folds, seed)
        self._fold_cache: dict[int, tuple] = {}
        self.search_id: int | None = None
        self.test_predictions: dict | None = None  # set by refit, for ROC/PR/confusion
        self.test_proba: np.ndarray | None = None  # the refit model's, for intervals

    @classmethod
    def from_store(cls, store: Store, study_name: str, device: str | torch.device,
                   progress: Progress | None = None) -> Searcher:
        """Rebuild a search from its stored configuration (what every worker process does)."""
        info = store.search(study_name)
        cfg = info["config"]
        for source in cfg.get("plugins") or []:
            get_plugin_manager().add_source(source, required=True)
        load = cfg.get("load") or {}
        if not load.get("path"):
            raise ConfigError(
                f"study {study_name!r} was started from in-memory data; workers need it started "
                "from a file path"
            )
        loaded = load_data(load["path"], format=load.get("format"),
                           modality=load.get("modality"), test=load.get("test"),
                           label_col=load.get("label_col"),
                           **_text_options(load.get("text_col"), load.get("id_col")))
        if loaded.train.fingerprint != info["dataset_fingerprint"]:
            raise DataError(
                f"{load['path']} is not the data study {study_name!r} was started with "
                f"(fingerprint {loaded.train.fingerprint} != {info['dataset_fingerprint']}); "
                "give every worker the same file"
            )
        archs = get_plugin_manager().architectures_for(loaded.train.modality,
                                                       cfg["architectures"])
        searcher = cls(loaded.train, loaded.test, metric=cfg["metric"], average=cfg["average"],
                       pos_label=cfg["pos_label"], folds=cfg["folds"], seed=cfg["cv_seed"],
                       architectures=archs, store=store, study_name=study_name,
                       device=torch.device(device), prune=cfg.get("prune", True),
                       progress=progress, max_epochs=cfg.get("max_epochs"))
        searcher.search_id = info["id"]
        return searcher

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
            trial.set_user_attr("automed_state", state)
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
            self._cap_epochs(params)
            for i in range(self.folds):
                xtr, ytr, xva, yva = self.fold_data(i)
                torch.manual_seed(self.seed + trial.number)
                model = arch.build(params, self.spec)
                fit_model(model, xtr, ytr, params, self.spec, device=self.device,
                          on_epoch=self._check_deadline,
                          seed=self.seed + trial.number * 100 + i)
                proba = predict_proba(model, xva, device=self.device)
                scores = self._score_all(yva, proba)
                fold_scores.append(scores[self.metric])
                fold_metrics.append(scores)
                trial.report(float(np.mean(fold_scores)), i)
                if self.prune and i < self.folds - 1 and trial.should_prune():
                    record("pruned")
                    raise optuna.TrialPruned()
        except optuna.TrialPruned:
            raise
        except _OutOfTime:
            record("pruned", "OutOfTime: stopped at the --timeout limit")
            trial.study.stop()
            raise optuna.TrialPruned() from None
        except KeyboardInterrupt:
            # Optuna marks the trial FAIL; the mark lets a resumed search retry it and keep it
            # out of the trial budget.
            trial.set_user_attr("interrupted", True)
            record("interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - a faulty plugin fails its candidate only
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # an out-of-memory candidate must not starve the next
            record("failed", _error_text(exc))
            raise CandidateError(f"{name}: {exc}") from exc
        if not all(math.isfinite(s) for s in fold_scores):
            record("failed", "metric was not finite on every fold")
            raise CandidateError(f"{name}: metric not finite")
        record("complete")
        return float(np.mean(fold_scores))

    def _check_deadline(self, epoch: int, loss: float) -> None:
        # A search always answers: until one candidate has completed, the limit is soft.
        if (self.deadline is not None and time.monotonic() > self.deadline
                and self.has_complete()):
            raise _OutOfTime()

    def has_complete(self) -> bool:
        if not self._complete:
            self._complete = any(r["state"] == "complete"
                                 for r in self.store.leaderboard(self.study_name, top=1))
        return self._complete

    def _cap_epochs(self, params: dict[str, Any]) -> None:
        if self.max_epochs is not None and params.get("epochs", 0) > self.max_epochs:
            params["epochs"] = self.max_epochs

    # -- refit ---------------------------------------------------------------------------
    def refit(self, trial: optuna.trial.FrozenTrial) -> tuple:
        name = trial.params["architecture"]
        arch = self.archs[name]
        prefix = f"{name}."
        params = {k[len(prefix):]: v for k, v in trial.params.items() if k.startswith(prefix)}
        self._cap_epochs(params)
        pre = preprocessor_for(self.train.modality).fit(self.train)
        torch.manual_seed(self.seed + trial.number)
        model = arch.build(params, self.spec)
        fit_model(model, pre.transform(self.train.x), torch.from_numpy(self.train.y), params,
                  self.spec, device=self.device, seed=self.seed + trial.number * 100)
        scores = None
        if self.test is not None:
            proba = predict_proba(model, pre.transform(self.test.x), device=self.device)
            scores = self._score_all(self.test.y, proba)
            self.test_proba = proba
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


def _interrupted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Failed trials that never really ran: stopped by Ctrl-C, or stale after a crash."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    return [t for t in trials if t.state == optuna.trial.TrialState.FAIL
            and (t.user_attrs.get("interrupted") or t.number in retried)]


def _retry_interrupted(study: optuna.Study) -> None:
    """Enqueue each interrupted trial's params once, so a resume re-runs it from the start."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs.get("retry_of") for t in trials}
    for t in _interrupted(study):
        if t.user_attrs.get("interrupted") and t.number not in done and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})


def default_study_name(dataset: Dataset, metric: str, folds: int) -> str:
    stem = Path(dataset.source).stem or "dataset"
    return f"{stem}-{metric}-cv{folds}"


def _text_options(text_col: Any, id_col: Any) -> dict[str, Any]:
    """Text loader options, only those given (other loaders never see them)."""
    if isinstance(text_col, tuple):
        text_col = list(text_col)
    return {k: v for k, v in (("text_col", text_col), ("id_col", id_col)) if v}


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
    workers: int | None = None,
    gpus: str | None = None,
    trials_per_gpu: int = 1,
    heartbeat: float = HEARTBEAT_INTERVAL,
    prune: bool = True,
    refit: bool = True,
    max_epochs: int | None = None,
    progress: Progress | None = None,
    plugins: list[str | Path] | None = None,
    groups: str | Path | None = None,
    group_col: str | int | None = None,
    test_fraction: float | None = None,
    artifacts: str | Path | None = None,
    save_model: bool = True,
    bootstrap: int = 1000,
    deterministic: bool = False,
    text_col: str | list[str] | None = None,
    id_col: str | None = None,
) -> SearchResult:
    """Search every architecture that accepts the data; rank candidates by CV ``metric``.

    Everything is validated (data, metric, folds, architectures, database) before anything is
    written, so bad input leaves the database as it was. Running the same search again (same
    study name and settings) resumes it: finished candidates count towards ``trials``.

    Placement: one worker in this process by default; ``workers`` CPU processes, or
    ``trials_per_gpu`` processes on each of ``gpus`` ("all", "none", "0,2"), share the study
    through the database, as ``automed worker`` processes on other machines can.
    ``plugins`` adds plugins that are not installed (``.py`` files or module names).

    Groups (``group_col``, an npz ``groups`` key, or a ``groups`` file) make every split
    grouped. The locked test set is the data's own split, ``test``, or a grouped stratified
    ``test_fraction`` carved out first. The refit best is scored there with ``bootstrap``
    resamples for 95 % intervals and saved (unless ``save_model`` is False) to ``artifacts``/
    <study>, by default ``automed_models/<study>`` beside a SQLite database.
    """
    for source in plugins or []:
        get_plugin_manager().add_source(source, required=True)  # before loading: loaders too
    metric = M.resolve_metric(metric)
    progress = progress or (lambda event: None)
    if trials is None and timeout is None:
        trials = DEFAULT_TRIALS
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials} must be at least 1")
    loaded = data if isinstance(data, LoadedData) else load_data(
        data, format=format, modality=modality, test=test, label_col=label_col, groups=groups,
        group_col=group_col, **_text_options(text_col, id_col))
    full = loaded.train
    if test_fraction is not None:
        if loaded.test is not None:
            raise ConfigError(f"{loaded.test.source} is already a test set; drop "
                              "--test-fraction or the other test set")
        loaded = LoadedData(*split_test(full, test_fraction, seed))
    train = loaded.train
    pos = _resolve_pos_label(pos_label, train.classes)
    average, pos = M.resolve_average(average, train.n_classes, pos)
    check_folds(train, folds)
    archs = get_plugin_manager().architectures_for(train.modality, architectures)
    slots = plan_slots(gpus, trials_per_gpu, workers, device)
    dev = torch.device(slots[0].device)
    if len(slots) > 1 and isinstance(data, LoadedData):
        raise ConfigError("several workers need the data as a file path, not in-memory data")
    if deterministic:
        enable_determinism()
    splits = make_folds(train, folds, seed)
    leakage = check_folds_leakage(train, splits)
    if loaded.test is not None:
        leakage.update(check_test_leakage(train, loaded.test))
    leaks = leakage_warnings(leakage)

    store = Store(storage)
    study_name = study or default_study_name(train, metric, folds)
    spec = preprocessor_for(train.modality).spec(train)
    config = {"metric": metric, "average": average, "pos_label": pos, "folds": folds,
              "cv_seed": seed, "architectures": sorted(archs), "trials": trials,
              "timeout": timeout, "max_epochs": max_epochs, "prune": prune,
              "devices": [sl.device for sl in slots], "spec": spec.to_dict(),
              "plugins": [str(Path(p).resolve()) if str(p).endswith(".py") else str(p)
                          for p in plugins or []],
              "load": None if isinstance(data, LoadedData) else {
                  "path": str(Path(data).resolve()), "format": format, "modality": modality,
                  "label_col": label_col, "test": str(Path(test).resolve()) if test else None,
                  **_text_options(text_col, id_col)},
              "source": train.source, "test_source": loaded.test.source if loaded.test else None,
              "test_fraction": test_fraction, "grouped": train.groups is not None,
              "bootstrap": bootstrap, "leakage": leakage, "leakage_warnings": leaks}
    manifest = build_manifest(train, loaded.test, seed=seed, device=dev,
                              deterministic=deterministic, leakage=leakage)
    searcher = Searcher(train, loaded.test, metric=metric, average=average, pos_label=pos,
                        folds=folds, seed=seed, architectures=archs, store=store,
                        study_name=study_name, device=dev, prune=prune, progress=progress,
                        max_epochs=max_epochs, splits=splits)
    # The dataset as loaded (before any --test-fraction carve-out), so a resume matches it.
    dataset_id = store.upsert_dataset(
        fingerprint=full.fingerprint, name=Path(full.source).stem, source=full.source,
        modality=full.modality, n_samples=len(full), classes=full.classes,
        class_counts=full.class_counts(), input_shape=list(spec.input_shape))
    search_id, resumed = store.open_search(study_name, dataset_id, metric, config)
    store.update_search_config(search_id, manifest=manifest)  # this run's, also on a resume
    searcher.search_id = search_id
    for message in leaks:
        warnings.warn(message, stacklevel=2)
        progress({"event": "warning", "message": message})

    ostudy = open_study(store, study_name, seed=seed, prune=prune, search_id=search_id,
                        heartbeat=heartbeat, create=True)
    if not ostudy.trials:
        def order(item: tuple[str, Architecture]) -> tuple[int, str]:
            try:
                return int(item[1].priority(searcher.spec)), item[0]
            except Exception:  # noqa: BLE001 - a faulty plugin goes last, not the search down
                return 100, item[0]

        for name, arch in sorted(archs.items(), key=order):
            try:
                defaults = arch.default_params(searcher.spec)
            except Exception:  # noqa: BLE001 - a faulty plugin fails its candidates, not this
                defaults = None
            if defaults:
                # Training settings a family leaves out take the library defaults rather than
                # a random draw (a random "balanced" sampler wrecked 23-class text accuracy).
                defaults = {**TRAINING_DEFAULTS, **defaults}
                ostudy.enqueue_trial({"architecture": name,
                                      **{f"{name}.{k}": v for k, v in defaults.items()}})
    _retry_interrupted(ostudy)
    done = counted_trials(ostudy)
    progress({"event": "start", "study": study_name, "storage": store.redacted,
              "dataset": train.summary(), "architectures": sorted(archs), "folds": folds,
              "metric": metric, "trials": trials, "done": done, "resumed": resumed,
              "device": ", ".join(sorted({sl.device for sl in slots})),
              "workers": len(slots)})
    if workers == 0:
        # Only create the study: workers join it with `automed worker` (here or elsewhere).
        return SearchResult(study_name, store.redacted, store.leaderboard(study_name), None,
                            resumed=resumed, spec=spec)
    status = "complete"
    try:
        if len(slots) == 1:
            run_trials(searcher, ostudy, trials=trials, timeout=timeout, heartbeat=heartbeat)
        else:
            run_local_workers(store, study_name, slots, timeout=timeout, heartbeat=heartbeat,
                              progress=progress)
    except KeyboardInterrupt:
        status = "interrupted"
        store.finish_search(search_id, status=status)
        raise

    result = SearchResult(study_name, store.redacted, store.leaderboard(study_name), None,
                          resumed=resumed, spec=spec, manifest=manifest, warnings=leaks)
    completed = [t for t in ostudy.get_trials(deepcopy=False,
                                             states=(optuna.trial.TrialState.COMPLETE,))]
    if not completed:
        store.finish_search(search_id, status="failed")
        hint = (f"raise --timeout (it was {timeout:g} s)" if timeout is not None else
                f"see `automed leaderboard --study {study_name} --all` for their errors")
        raise AutomedError(f"no candidate of study {study_name!r} completed; {hint}")
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
        if loaded.test is not None and bootstrap:
            result.test_ci = M.bootstrap_all(loaded.test.y, searcher.test_proba, average, pos,
                                             n=bootstrap, seed=seed)
        if save_model:
            result.artifact = str(_save_best(result, searcher, best, loaded, config, full,
                                             default_dir(store.url, study_name, artifacts),
                                             dict(format=format, modality=modality,
                                                  label_col=label_col, group_col=group_col,
                                                  **_text_options(text_col, id_col))))
        store.update_search_config(search_id, artifact=result.artifact, test_ci=result.test_ci)
    store.finish_search(search_id, status=status, best_trial=best.number,
                        test_scores=test_scores, test_size=result.test_size,
                        test_predictions=searcher.test_predictions)
    progress({"event": "done", "study": study_name, "best": result.best,
              "test_scores": test_scores})
    return result


def _save_best(result: SearchResult, searcher: Searcher, best: optuna.trial.FrozenTrial,
               loaded: LoadedData, config: dict, full: Dataset, folder: Path,
               load_options: dict) -> Path:
    """The refit model and everything its model card reports, in one artifact folder."""
    name = best.params["architecture"]
    params = {k[len(name) + 1:]: v for k, v in best.params.items() if k.startswith(f"{name}.")}
    test = loaded.test
    how = ("none" if test is None else f"held-out {config['test_fraction']:g} of the data, "
           "stratified" + (" and grouped" if config["grouped"] else "")
           if config["test_fraction"] else "a separate test file or split")
    info = {
        "study": result.study, "trial": best.number, "architecture": name, "params": params,
        "spec": result.spec.to_dict(), "classes": loaded.train.classes,
        "load_options": {k: v for k, v in load_options.items() if v is not None},
        "metric": config["metric"], "average": config["average"],
        "pos_label": config["pos_label"],
        "data": {"source": full.source, "fingerprint": full.fingerprint,
                 "samples": len(loaded.train), "class_counts": loaded.train.class_counts()},
        "cv": {"folds": config["folds"], "grouped": config["grouped"],
               "score_mean": (result.best or {}).get("score_mean"),
               "score_std": (result.best or {}).get("score_std"),
               "fold_scores": best.user_attrs.get("fold_scores")},
        "test": None if test is None else {
            "source": test.source, "size": len(test), "how": how,
            "scores": result.test_scores, "ci": result.test_ci,
            "bootstrap": config["bootstrap"]},
        "manifest": result.manifest, "leakage_warnings": result.warnings,
    }
    return save_artifact(folder, result.model, result.preprocessor, info)
