"""One candidate: draw its family and parameters, then k folds of fit, predict and score.

:class:`Objective` is what every worker optimises. It sees the search only through a
:class:`~automed.searching.prepare.Prepared` (data, folds, spec, families), writes one
candidate row per trial, and turns a faulty plugin into a failed candidate, never a failed
search. (Just over 300 lines: every way a candidate ends - complete, pruned at an epoch or a
fold, collapsed, duplicate, out of time, interrupted, failed - is recorded here, in one place.)
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from automed.architecture import ARCHITECTURE_PARAM, PrefixedTrial, unprefixed
from automed.contract import constant_attrs, draw_params, fixed_params
from automed.data.preprocess import preprocessor_of
from automed.errors import CandidateError, Surplus, visible
from automed.evaluation import metrics as M
from automed.searching.fidelity import (
    Collapsed,
    CollapseWatch,
    constant_loss,
    final_collapse,
    fold_step,
)
from automed.searching.interrupts import (
    candidate_section,
    interruption_behind,
    settle,
    stopping,
)
from automed.searching.prepare import Prepared
from automed.searching.study import seed_number, surplus
from automed.searching.training import fit_model, predict_proba, training_params

Progress = Callable[[dict], None]


class OutOfTime(Exception):
    """The search's --timeout passed while a candidate was training."""


class _EpochPruned(Exception):
    """The pruner stopped a candidate between two epochs of fold 0."""


class WontFinish(Exception):
    """At its fold-0 pace, a candidate would end past the time left before the refits."""


class _Resize(Exception):
    """A timed search's first candidate would use more than FIRST_SHARE of the time: it
    restarts with the epochs that fit (see Objective._pace_watch)."""

    def __init__(self, epochs: int, message: str) -> None:
        super().__init__(message)
        self.epochs = epochs


# Fold-0 epochs a candidate's pace is measured over before it may be stopped for not
# finishing in time (the first epoch carries one-off costs).
PACE_EPOCHS = 2
# A candidate still running after this many seconds reports each fold it finishes (progress
# line "fold i/k"): a PneumoniaMNIST portfolio start takes 16 minutes on a 2-core CPU
# without bf16, which a user should not watch in silence. Quicker candidates print one line.
FOLD_PROGRESS_S = 30.0
# The first candidates of a timed search are exempt from the limit (a search always answers),
# so one too slow for the machine used to be the whole search: on a 2-core CPU without bf16 the
# PneumoniaMNIST image start (30 epochs) took 948 s of a 900 s search. At its fold-0 pace
# after SIZE_EPOCHS epochs, such a candidate restarts with the epochs that fit FIRST_SHARE of
# the time left (never fewer than MIN_SIZED_EPOCHS, and only when that cuts at least a
# quarter of them); the refit, the model card and the leaderboard use the epochs it trained.
# Where SIZE_EPOCHS epochs would themselves pass that share, it decides after PACE_EPOCHS.
FIRST_SHARE = 0.3
MIN_SIZED_EPOCHS = 3
SIZE_EPOCHS = 4  # fold-0 epochs its pace is measured over first (cheap epochs are noisy)
SIZED_ATTR = "automed_sized_epochs"  # user attribute: the epochs a sized candidate trained


@contextlib.contextmanager
def torch_state() -> Iterator[None]:
    """torch's process-wide settings as they were before a candidate, whatever its plugin
    code set (QA: a plugin's torch.set_default_dtype(torch.float64) failed every later
    candidate of the healthy families with "Input type (float) and bias type (double)")."""
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def candidate_params(study_params: dict[str, Any], max_epochs: int | None,
                     fixed: dict[str, Any] | None = None,
                     sized: int | None = None) -> tuple[str, dict]:
    """A finished trial's family and the parameters it really trained with (epochs capped).

    ``fixed`` are the trial's fixed parameters (:func:`automed.contract.fixed_params`);
    ``sized`` the epochs a first candidate was sized to (its ``SIZED_ATTR``, see FIRST_SHARE).
    The one place the cap applies: the refit, the artifact and the model card all use it.
    """
    family, params = unprefixed(study_params)
    params.update(fixed or {})
    if sized is not None:
        params["epochs"] = int(sized)
    return family, cap_epochs(params, max_epochs)


def cap_epochs(params: dict[str, Any], max_epochs: int | None) -> dict[str, Any]:
    if max_epochs is not None and params.get("epochs", 0) > max_epochs:
        params = {**params, "epochs": max_epochs}
    return params


def fold_steps(params: dict[str, Any], n_train: int) -> int:
    """Optimizer steps one fold's training takes (epochs times batches per epoch)."""
    tp = training_params(params)
    batch = max(1, min(int(tp["batch_size"]), n_train))
    return int(tp["epochs"]) * math.ceil(n_train / batch)


def fold_mean(values: list[dict]) -> dict:
    keys = values[0].keys() if values else []
    out = {}
    for k in keys:
        vals = [v[k] for v in values if v[k] is not None and not math.isnan(v[k])]
        out[k] = float(np.mean(vals)) if vals else None
    return out


# A family whose first this many candidates failed is left out of the rest of the search.
GIVE_UP = 3
FAILURE_ATTR = "failure"  # a failed candidate's first error line, on its Optuna trial


# Failures of the drawn hyperparameters or the device, not of the family's code: never a
# reason to leave a family out (a large width out of GPU memory, a learning rate diverging).
NOT_THE_FAMILYS = ("OutOfMemoryError", "out of memory", "training loss became",
                   "metric was not finite", "predicted NaN")


def _given_up(study: optuna.Study) -> dict[str, tuple[str, int]]:
    """``{family: (its most common failure, failures)}`` for each family with :data:`GIVE_UP`
    failed candidates (failed by its code, see :data:`NOT_THE_FAMILYS`) and none that trained
    (complete, pruned or collapsed)."""
    from collections import Counter

    failed: dict[str, Counter] = {}
    ran: set = set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                      optuna.trial.TrialState.PRUNED,
                                                      optuna.trial.TrialState.FAIL)):
        name = t.params.get(ARCHITECTURE_PARAM)
        if name is None:
            continue
        if t.user_attrs.get("automed_state") == "skipped":
            continue  # a draw after it was left out
        if t.state != optuna.trial.TrialState.FAIL:
            ran.add(name)
        elif t.user_attrs.get("automed_state") == "failed":
            why = t.user_attrs.get(FAILURE_ATTR, "an error")
            if not any(word in why for word in NOT_THE_FAMILYS):
                failed.setdefault(name, Counter())[why] += 1
    return {n: (c.most_common(1)[0][0], sum(c.values())) for n, c in failed.items()
            if n not in ran and sum(c.values()) >= GIVE_UP}


def error_text(exc: BaseException) -> str:
    summary = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return summary + "\n" + "".join(traceback.format_exception(exc)[-6:])


def duplicate_of(trial: optuna.Trial) -> int | None:
    """The number of an earlier candidate with exactly these parameters, unless a retry.

    Distinct sampler seeds make repeats rare; this is the guarantee that a parameter set is
    trained once, whatever several workers or a resume draw. Values held outside Optuna's
    params (a queued start's fixed values) count: two starts that differ only there are two
    candidates.
    """
    from optuna.trial import TrialState

    from automed.contract import fixed_params
    from automed.searching.study import is_retry

    trials = trial.study.get_trials(deepcopy=False)
    me = next((t for t in trials if t.number == trial.number), None)
    if me is None or is_retry(me):
        return None
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    mine = fixed_params(me)
    return next((t.number for t in trials if t.number < trial.number and t.state in done
                 and t.params == me.params and fixed_params(t) == mine), None)


def _first_heartbeat(trial: optuna.Trial) -> None:
    """Record the trial's heartbeat now, before any work.

    Optuna's heartbeat thread writes its first beat a moment after the trial starts; a worker
    killed in that moment left a RUNNING trial without any heartbeat, which Optuna never
    counts as stale, so it was never retried and held one unit of budget forever.
    """
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = trial.study._storage
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        storage.record_heartbeat(trial._trial_id)


def answer_seconds(members: int, folds: int, pace: float, score_pace: float, n_test: int,
                   bootstrap: int) -> float:
    """About how long an answer of ``members`` fold bags takes on ``n_test`` raw samples:
    every fold model preprocesses and predicts them (``pace`` seconds per sample), then the
    bootstrap scores every metric on ``bootstrap`` resamples (``score_pace`` seconds per
    resample and sample, vectorised: evaluation.bootstrap). One second more for loading and
    saving the bags."""
    return members * folds * pace * n_test + bootstrap * score_pace * n_test + 1.0


BOOTSTRAP_PROBE = 20  # resamples timed once per process to learn the bootstrap's pace


def refit_seconds(cv_seconds: float, folds: int) -> float:
    """About how long one refit takes: it trains once on all k folds' data, while each of the
    k folds trained on (k - 1)/k of it, so ``cv_seconds / (k - 1)``."""
    return cv_seconds / max(1, folds - 1)


class Objective:
    """Scores one candidate per call; shared by every worker of a search."""

    def __init__(self, prepared: Prepared, *, store, study_name: str, search_id: int,
                 device: torch.device, progress: Progress | None = None) -> None:
        self.p = prepared
        self.plan = prepared.plan
        self.store, self.study_name, self.search_id = store, study_name, search_id
        self.device = device
        self._said_given_up: set[str] = set()  # families said to be left out (once each)
        self.progress = progress or (lambda event: None)
        self.deadline: float | None = None  # monotonic time after which candidates stop
        # Refits that must still fit in --timeout after the search: the answer's refit, plus
        # ensemble members (set by the runner). ``reserve`` seconds come off the deadline.
        self.refits_after = 0
        # Members whose fold bags will predict the test set after the search (answers without
        # a refit): their prediction time is kept instead, estimated from validation folds.
        self.answer_members = 0
        self.reserve = 0.0
        self._complete = False
        self._started = 0.0  # monotonic start of the candidate this process trains
        self._began = 0.0  # ... before a sized restart (what progress lines count from)
        # The quickest first epoch of fold 0 this process has seen (data preparation included):
        # with less time than that left, another candidate could only run past the limit.
        self.shortest_epoch: float | None = None
        self._fold_cache: dict[tuple[int, str], tuple] = {}
        self._fold_pre: dict[tuple[int, str], Any] = {}  # the fitted preprocessor per fold
        self._pre_pace: dict[tuple[int, str], float] = {}  # its transform's s per sample
        self._boot_pace: float | None = None  # see _bootstrap_pace
        # Where complete candidates keep their fold models (the answer without a refit, see
        # searching.foldbag); None: not kept (--refit-full, or no final model wanted).
        self.fold_models: Path | None = None
        # The stamp of the study its bags are written with (results.artifact.study_stamp); a
        # worker process reads it from the database on its first bag.
        self.fold_owner: dict | None = None

    @property
    def spec(self):
        return self.p.spec

    # -- per-fold data, preprocessed once and reused by every trial ----------------------
    def fold_data(self, i: int, family: str | None = None) -> tuple:
        """Fold ``i``'s ``(x_train, y_train, x_val, y_val)`` as ``family`` sees them: through
        the modality's shared preprocessor, or the family's own (cached per its ``key``)."""
        train = self.p.train
        pre = preprocessor_of(self.p.architectures.get(family), train.modality)
        key = (i, pre.key)
        if key not in self._fold_cache:
            tr, va = self.p.splits[i]
            part = train.subset(tr)
            pre.fit(part)
            xtr = pre.transform(part.x)
            started = time.perf_counter()
            xva = pre.transform(train.x[va])
            # what preprocessing raw samples costs, per sample: the answer's fold models
            # read the test set raw (see answer_pace)
            self._pre_pace[key] = (time.perf_counter() - started) / max(1, len(va))
            self._fold_cache[key] = (xtr, torch.from_numpy(part.y), xva, train.y[va])
            self._fold_pre[key] = pre
        return self._fold_cache[key]

    def fold_preprocessor(self, i: int, family: str | None = None):
        """The preprocessor fold ``i``'s data was fitted with (after :meth:`fold_data`)."""
        pre = preprocessor_of(self.p.architectures.get(family), self.p.train.modality)
        return self._fold_pre[(i, pre.key)]

    def score_all(self, y: np.ndarray, proba: np.ndarray) -> dict:
        return M.all_scores(y, proba, self.p.average, self.p.pos_label)

    # -- the objective -------------------------------------------------------------------
    def __call__(self, trial: optuna.Trial) -> float:
        # Ctrl-C / SIGTERM, also inside a database call (where it can surface as the error its
        # cleanup met, e.g. "database is locked" on rollback), marks the trial interrupted once
        # the interrupted query's lock is freed (see interrupts), then stops the search.
        with candidate_section(), torch_state():  # a worker's stop: at once (see interrupts)
            return stopping(self._candidate, trial, on_stop=lambda: self._interrupted(trial))

    def _interrupted(self, trial: optuna.Trial) -> None:
        """Mark a trial that Ctrl-C or SIGTERM stopped outside its training (its first
        queries, its bookkeeping after the last fold) as one stopped inside it: interrupted,
        listed, run again by a resume. One with no architecture yet was no candidate."""
        name = trial.params.get(ARCHITECTURE_PARAM)
        if name is None or trial.user_attrs.get("interrupted"):
            return
        trial.set_user_attr("interrupted", True)
        trial.set_user_attr("automed_state", "interrupted")
        self.store.record_candidate(
            self.search_id, trial.number, architecture=name, params={}, state="interrupted",
            fold_scores=[], score_mean=None, score_std=None, metrics={}, duration_s=0.0,
            device=str(self.device), error=None)
        self.progress({"event": "candidate", "trial": trial.number, "architecture": name,
                       "state": "interrupted", "score_mean": None, "score_std": None,
                       "folds_done": 0, "folds": self.plan.folds, "duration_s": 0.0,
                       "error": None})

    def _skip_given_up(self, trial: optuna.Trial, name: str, archs: dict) -> None:
        """A family whose first :data:`GIVE_UP` candidates all failed (a plugin's bug: its
        search space, build or forward raises) is left out of the rest of the search: a draw
        of it is no candidate (uncounted, like a surplus trial) and said once (QA: a family
        whose every candidate raised took 4 of 8 trials). Every worker and a resume see the
        same failures in the study, so they leave it out alike."""
        given_up = _given_up(trial.study)  # draws of them: pruned, uncounted (study._counted)
        if name not in given_up:
            return
        if name not in self._said_given_up:
            self._said_given_up.add(name)
            why, n = given_up[name]
            self.progress({"event": "note", "message": (
                f"{name} left out of this search: its {n} candidates failed ({why}); fix "
                "the family and search again (a new --study: this one keeps leaving it out)")})
        trial.set_user_attr("automed_state", "skipped")
        if set(archs) <= set(given_up):
            trial.study.stop()  # every family fails: nothing left to search
        # Pruned, not failed: TPE learns nothing from a failed trial and keeps drawing the
        # family it has no observation of (QA: 11,659 draws of it in a 14-trial search).
        raise optuna.TrialPruned(f"{name}: left out after {GIVE_UP} failed candidates")

    def _candidate(self, trial: optuna.Trial) -> float:
        _first_heartbeat(trial)
        if surplus(trial.study, trial.number, self.plan.trials):
            # Another worker took the last unit of budget at the same moment: this trial is
            # not a candidate (FAIL, uncounted, unrecorded) and this worker stops.
            trial.set_user_attr("automed_state", "surplus")
            trial.study.stop()
            raise Surplus(f"trial {trial.number} is over the budget of {self.plan.trials}")
        archs = self.p.architectures
        name = trial.suggest_categorical(ARCHITECTURE_PARAM, sorted(archs))
        self._skip_given_up(trial, name, archs)
        arch = archs[name]
        spec = self.p.spec_for(name)
        folds = self.plan.folds
        start = time.perf_counter()
        self._started = time.monotonic()
        # progress lines count from here, also after a sized restart resets _started (QA:
        # epoch lines counted from the restart, fold lines from the candidate's start)
        self._began = self._started
        self._reported: set[int] = set()  # fold-0 epochs reported to the pruner
        fold_scores: list[float] = []
        fold_metrics: list[dict] = []
        params: dict[str, Any] = {}

        def record(state: str, error: str | None = None) -> None:
            error = visible(error, keep="\n\t") if error else error
            if state == "failed" and error:
                trial.set_user_attr(FAILURE_ATTR, error.splitlines()[0][:200])
            mean = float(np.mean(fold_scores)) if fold_scores else None
            std = float(np.std(fold_scores)) if fold_scores else None
            trial.set_user_attr("fold_scores", fold_scores)
            trial.set_user_attr("automed_state", state)
            self.store.record_candidate(
                self.search_id, trial.number, architecture=name, params=params, state=state,
                fold_scores=fold_scores, score_mean=mean, score_std=std,
                metrics=fold_mean(fold_metrics), duration_s=time.perf_counter() - start,
                device=str(self.device), error=error)
            self.progress({"event": "candidate", "trial": trial.number, "architecture": name,
                           "state": state, "score_mean": mean, "score_std": std,
                           "folds_done": len(fold_scores), "folds": folds,
                           "duration_s": time.perf_counter() - start,
                           "error": error.splitlines()[0] if error else None})

        stop: type[KeyboardInterrupt] | None = None
        try:
            with warnings.catch_warnings():
                # A portfolio start may lie outside a numeric range on purpose (e.g. a family's
                # 10 epochs where small data searches 15-40); Optuna uses it and warns.
                warnings.filterwarnings("ignore", message="Fixed parameter .* out of range")
                fixed = fixed_params(trial)
                params = draw_params(arch, PrefixedTrial(trial, name), spec, fixed)
            asked = set(unprefixed(trial.params)[1])
            for key, value in constant_attrs(params, asked, fixed).items():
                trial.set_user_attr(key, value)
            params = cap_epochs(params, self.plan.max_epochs)
            twin = duplicate_of(trial)
            if twin is not None:
                record("pruned", f"Duplicate: the same parameters as #{twin}; not run twice")
                raise optuna.TrialPruned()
            # Listed while it trains (leaderboard --all); one whose process dies without a
            # word (SIGKILL, a lost node) stays "running" until it goes stale and is retried.
            self.store.record_candidate(
                self.search_id, trial.number, architecture=name, params=params,
                state="running", fold_scores=[], score_mean=None, score_std=None, metrics={},
                duration_s=0.0, device=str(self.device), error=None)
            sizable = self.deadline is not None
            while True:
                try:
                    oof, trained, pace = self._folds(trial, name, arch, params, fold_scores,
                                                     fold_metrics, start, sizable, record)
                    break
                except _Resize as exc:  # once: the first candidate, sized to the time
                    sizable, params = False, {**params, "epochs": exc.epochs}
                    self._started = time.monotonic()
                    trial.set_user_attr(SIZED_ATTR, exc.epochs)
                    fold_scores.clear()
                    fold_metrics.clear()
                    self.progress({"event": "sized", "trial": trial.number,
                                   "architecture": name, "epochs": exc.epochs,
                                   "reason": str(exc)})
            if all(math.isfinite(s) for s in fold_scores):
                # Before the candidate is recorded complete: a Ctrl-C while its bag is written
                # leaves an interrupted candidate (retried), never a complete one without it.
                self._save_fold_models(trial.number, name, params, spec, trained,
                                       float(np.mean(fold_scores)))
        except Collapsed as exc:
            record("collapsed", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        except _EpochPruned as exc:
            record("pruned", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        except optuna.TrialPruned:
            raise
        except WontFinish as exc:
            record("pruned", f"OutOfTime: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        except OutOfTime:
            record("pruned", "OutOfTime: stopped at the --timeout limit")
            trial.study.stop()
            raise optuna.TrialPruned() from None
        except KeyboardInterrupt as exc:
            stop = type(exc)
        except SystemExit as exc:  # QA: a plugin's sys.exit(3) ended the search, unsaid
            record("failed", f"SystemExit: {name}'s code called sys.exit({exc.code!r})")
            raise CandidateError(f"{name}: its code called sys.exit({exc.code!r})") from None
        except Exception as exc:  # noqa: BLE001 - a faulty plugin fails its candidate only
            stop = interruption_behind(exc)  # Ctrl-C inside a query, surfacing as its error
            if stop is None:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()  # an out-of-memory candidate must not starve
                record("failed", error_text(exc))
                raise CandidateError(f"{name}: {exc}") from exc
        if stop is not None:
            # Optuna marks the trial FAIL; the mark lets a resumed search retry it and keep it
            # out of the trial budget. Written once the interrupted query's lock is freed.
            settle()
            trial.set_user_attr("interrupted", True)
            record("interrupted")
            raise stop()
        if not all(math.isfinite(s) for s in fold_scores):
            record("failed", "metric was not finite on every fold")
            raise CandidateError(f"{name}: metric not finite")
        record("complete")
        self.store.record_oof(self.search_id, trial.number, oof)
        self._drop_fold_models()
        self._reserve_for_refit(time.perf_counter() - start)
        score_pace = self._bootstrap_pace(oof)
        trial.set_user_attr("answer_pace", [pace, score_pace])
        self._reserve_for_answer(pace, score_pace)
        return float(np.mean(fold_scores))

    def _folds(self, trial: optuna.Trial, name: str, arch, params: dict[str, Any],
               fold_scores: list[float], fold_metrics: list[dict], start: float,
               sizable: bool, record: Callable) -> tuple[np.ndarray, list[tuple], float]:
        """The candidate's k folds: fit, predict, score, report, prune. Returns its
        out-of-fold probabilities, its fold models (for the bag) and its prediction pace."""
        folds, spec = self.plan.folds, self.p.spec_for(name)
        n = len(self.p.train)
        oof = np.full((n, self.spec.n_classes), np.nan, dtype=np.float32)
        trained: list[tuple] = []  # (model, preprocessor) per fold, for the fold bag
        pace = 0.0  # seconds per raw sample to preprocess and predict, the slowest fold's
        number = seed_number(trial)  # a retry trains the models of the candidate it re-runs
        for i in range(folds):
            xtr, ytr, xva, yva = self.fold_data(i, name)
            torch.manual_seed(self.plan.seed + number)
            model = arch.build(dict(params), spec)  # a copy: what is stored is what it drew
            # Fold 0 is the low-fidelity rung: a validation score per epoch (see fidelity).
            on_epoch = (self._pace_watch(self._epoch_watch(trial, model, xva, yva, params,
                                                           arch.cpu_bf16),
                                         params, sizable) if i == 0
                        else self._check_deadline)
            on_epoch, on_step = self._said_when_slow(on_epoch, trial.number, name, i, folds,
                                                     params)
            fit_model(model, xtr, ytr, params, spec, device=self.device,
                      on_epoch=on_epoch, seed=self.plan.seed + number * 100 + i,
                      cpu_bf16=arch.cpu_bf16, on_step=on_step)
            predicting = time.perf_counter()
            proba = predict_proba(model, xva, device=self.device, cpu_bf16=arch.cpu_bf16,
                                  n_classes=self.spec.n_classes)
            pre = self.fold_preprocessor(i, name)
            pace = max(pace, (time.perf_counter() - predicting) / max(1, len(yva))
                       + self._pre_pace[(i, pre.key)])
            oof[self.p.splits[i][1]] = proba
            if self.fold_models is not None:
                trained.append((model, pre))
            scores = self.score_all(yva, proba)
            fold_scores.append(scores[self.p.metric])
            fold_metrics.append(scores)
            if i < folds - 1 and time.perf_counter() - start > FOLD_PROGRESS_S:
                self.progress({"event": "fold", "trial": trial.number, "architecture": name,
                               "fold": i + 1, "folds": folds, "score": fold_scores[-1],
                               "elapsed_s": time.perf_counter() - start})
            reason = (final_collapse(proba.argmax(1), yva, self.p.train.classes,
                                     fold_steps(params, len(ytr)))
                      if self.plan.prune else None)
            if reason:
                raise Collapsed(f"{reason} in fold {i + 1}")
            trial.report(float(np.mean(fold_scores)), fold_step(i))
            if self.plan.prune and i < folds - 1 and trial.should_prune():
                record("pruned", "CV mean below the completed candidates' after fold "
                                 f"{i + 1}")
                raise optuna.TrialPruned()
        return oof, trained, pace

    def _save_fold_models(self, number: int, family: str, params: dict, spec,
                          trained: list[tuple], score: float) -> None:
        """Save a finished candidate's fold models when it ranks among the best KEEP complete
        candidates (see searching.foldbag); a bag that cannot be written fails nothing."""
        from automed.searching import foldbag

        if self.fold_models is None or not trained:
            return
        ahead = sum(r["score_mean"] is not None and r["score_mean"] > score
                    for r in self.store.leaderboard(self.study_name) if r["trial"] >= 0)
        if ahead >= foldbag.KEEP or foldbag.bag_bytes(trained) > foldbag.MAX_BYTES:
            return
        try:
            foldbag.save_bag(self.fold_models, number, family, params, spec.to_dict(),
                             list(self.p.train.classes), trained, owner=self._fold_owner())
        except OSError as exc:
            warnings.warn(f"cannot keep fold models in {self.fold_models} ({exc}); the answer "
                          "will be refit instead", stacklevel=2)
            self.fold_models = None

    def _fold_owner(self) -> dict:
        """The stamp of this study (see results.artifact.study_stamp) its bags carry."""
        if self.fold_owner is None:
            from automed.results.artifact import study_stamp

            cfg = self.store.search(self.study_name)["config"] or {}
            self.fold_owner = study_stamp(self.store.url, self.study_name, cfg.get("uid"),
                                          self.p.full.fingerprint)
        return self.fold_owner

    def _drop_fold_models(self) -> None:
        """Delete the bags of complete candidates ranked past KEEP. Only candidates known
        complete: their scores never change, so they never come back, and a bag another
        worker is still writing is never touched."""
        from automed.searching import foldbag

        if self.fold_models is None:
            return
        ranked = [r["trial"] for r in self.store.leaderboard(self.study_name) if r["trial"] >= 0]
        try:
            foldbag.drop_bags(self.fold_models, set(ranked[foldbag.KEEP:]))
        except OSError:
            pass  # an undeleted bag only takes disk space

    def _said_when_slow(self, inner: Callable[[int, float], None], number: int, name: str,
                        fold: int, folds: int,
                        params: dict[str, Any]) -> tuple[Callable[[int, float], None],
                                                         Callable[[int, int, int], None]]:
        """``inner``, plus a progress line at the end of an epoch when FOLD_PROGRESS_S have
        passed since the last (QA: 50,000 images trained 290 s with no line), and the step
        callback that says the same inside an epoch that runs longer (QA: one epoch of 3,000
        224x224 images was 6 minutes of silence)."""
        epochs = int(training_params(params)["epochs"])
        said = [time.monotonic()]

        def on_epoch(epoch: int, loss: float) -> None:
            inner(epoch, loss)
            now = time.monotonic()
            if now - said[0] >= FOLD_PROGRESS_S and epoch + 1 < epochs:
                said[0] = now
                self.progress({"event": "epoch", "trial": number, "architecture": name,
                               "fold": fold + 1, "folds": folds, "epoch": epoch + 1,
                               "epochs": epochs, "elapsed_s": now - self._began})

        def on_step(epoch: int, step: int, steps: int) -> None:
            now = time.monotonic()
            if now - said[0] >= FOLD_PROGRESS_S and step > 0:
                said[0] = now
                self.progress({"event": "epoch", "trial": number, "architecture": name,
                               "fold": fold + 1, "folds": folds, "epoch": epoch + 1,
                               "epochs": epochs, "step": step, "steps": steps,
                               "elapsed_s": now - self._began})

        return on_epoch, on_step

    def _epoch_watch(self, trial: optuna.Trial, model: torch.nn.Module, xva: torch.Tensor,
                     yva: np.ndarray, params: dict[str, Any],
                     bf16: bool = False) -> Callable[[int, float], None]:
        """Fold 0's per-epoch callback: time limit, validation score, collapse, pruning."""
        if not self.plan.prune:
            return self._check_deadline
        tp = training_params(params)
        ytr = self.p.train.y[self.p.splits[0][0]]
        trial.set_user_attr("val_samples", int(len(yva)))  # the pruner's noise floor
        watch = CollapseWatch(
            yva, self.p.train.classes, int(tp["epochs"]),
            steps_per_epoch=fold_steps({**tp, "epochs": 1}, len(ytr)),
            constant_loss=constant_loss(ytr, self.spec.n_classes, tp["class_weight"],
                                        tp["sampler"], float(tp["label_smoothing"])))

        def on_epoch(epoch: int, loss: float) -> None:
            self._check_deadline(epoch, loss)
            proba = predict_proba(model, xva, device=self.device, cpu_bf16=bf16,
                                  n_classes=self.spec.n_classes)
            model.train()
            value = float(M.score(self.p.metric, yva, proba, self.p.average, self.p.pos_label))
            if math.isfinite(value) and epoch not in self._reported:
                trial.report(value, epoch)  # a sized restart keeps its first run's values
                self._reported.add(epoch)
            watch.epoch(epoch, loss, proba.argmax(1))
            if trial.should_prune():
                # its score said (QA: `show` of a candidate pruned in fold 0 had "-")
                raise _EpochPruned(f"first fold's score {value:.4f} after epoch {epoch + 1} "
                                   f"below the completed candidates' at that epoch")

        return on_epoch

    def _pace_watch(self, inner: Callable[[int, float], None], params: dict[str, Any],
                    sizable: bool = False) -> Callable[[int, float], None]:
        """Fold 0's callback, plus AutoGluon's rule for models that cannot fit the time
        left: once a candidate has trained ``PACE_EPOCHS`` epochs, if at that pace its folds
        would end past the deadline less the refit reserve, it stops there (stored as pruned,
        ``OutOfTime: would need ...``) instead of at the limit with nothing to show, and the
        search goes on with candidates that fit. The first complete candidate is exempt (a
        search always answers); when ``sizable``, it is sized instead: after ``SIZE_EPOCHS``
        epochs, if at its pace its folds would use more than FIRST_SHARE of the time left,
        :class:`_Resize` restarts it with the epochs that fit (:meth:`_size_first`)."""
        epochs = int(training_params(params)["epochs"])
        folds = self.plan.folds
        first_epoch, scoring = [0.0], [0.0]  # fold 0's first epoch; its later epochs' scoring

        def on_epoch(epoch: int, loss: float) -> None:
            ended = time.monotonic()
            if epoch == 0:
                first_epoch[0] = ended - self._started
                self.shortest_epoch = min(first_epoch[0], self.shortest_epoch or first_epoch[0])
            inner(epoch, loss)
            now = time.monotonic()
            if epoch > 0:
                scoring[0] += now - ended  # fold 0's validation score: the other folds skip it
            if self.deadline is None or epoch + 1 < PACE_EPOCHS or epoch + 1 >= epochs:
                return
            pace = (now - self._started) / (epoch + 1)
            left = pace * (epochs * folds - epoch - 1)
            if now + left > self.deadline - self.reserve and self.has_complete():
                raise WontFinish(f"would need about {left:.0f} s more at its pace; "
                                 f"{max(0.0, self.deadline - self.reserve - now):.0f} s "
                                 "were left before the refits")
            if sizable and epoch + 1 <= SIZE_EPOCHS and not self.has_complete():
                self._size_first(epoch, epochs, first_epoch[0], scoring[0], now,
                                 early=epoch + 1 < SIZE_EPOCHS)

        return on_epoch

    def _size_first(self, epoch: int, epochs: int, first: float, scoring: float,
                    now: float, early: bool = False) -> None:
        """Raise :class:`_Resize` when this candidate's folds, at fold 0's pace, would take
        more than FIRST_SHARE of the time from its start to the deadline less the reserve.
        Each fold's first epoch costs what fold 0's did (one-off costs: features, caches);
        its later epochs what fold 0's did without their validation scoring (``scoring``
        seconds over ``epoch`` epochs), which only fold 0 pays. An estimate that counted the
        scoring in every fold sized a 22 s ECGFiveDays start of a 120 s search.

        ``early``: fewer than SIZE_EPOCHS epochs are done; it decides now only if training on
        to SIZE_EPOCHS would itself use up the share (scale QA: Ohsumed's first epochs with
        --timeout 90 were most of the search before the sizing could speak, which ended at
        333 s); otherwise it waits for the steadier estimate."""
        folds = self.plan.folds
        score_s = scoring / max(1, epoch)
        train_s = max(0.0, (now - self._started - first - scoring) / max(1, epoch))
        per_epoch = folds * train_s + score_s
        need = folds * first + per_epoch * (epochs - 1)
        time_left = max(0.0, self.deadline - self.reserve - self._started)
        share = FIRST_SHARE * time_left
        if need <= share or per_epoch <= 0:
            return
        if early and (now - self._started
                      + (SIZE_EPOCHS - epoch - 1) * (train_s + score_s)) <= share:
            return  # SIZE_EPOCHS fit in the share: measure the pace over all of them
        fits = max(MIN_SIZED_EPOCHS, 1 + int((share - folds * first) / per_epoch))
        if fits > 0.75 * epochs:
            return  # a restart would cost more than it saves
        # what the restart costs, said as it is (QA: "at most 30 %" was printed for a floor
        # of 3 epochs that took 200 % of a 60 s search, and "of the -0 s left")
        cost = folds * first + per_epoch * (fits - 1)
        within = (f"about {cost:.0f} s, within {FIRST_SHARE:.0%} of the time left" if
                  cost <= share else f"about {cost:.0f} s, the fewest a first candidate "
                  "trains, past its share: a search always answers")
        raise _Resize(fits, f"{epochs} epochs x {folds} folds would take about {need:.0f} s "
                            f"of the {time_left:.0f} s left; restarted with {fits} epochs "
                            f"({within})")

    def _reserve_for_refit(self, seconds: float) -> None:
        """Keep time for the refits after the search, estimated from finished candidates.

        One refit trains on all k folds' data once: about ``seconds / (k - 1)`` for a
        candidate whose k folds took ``seconds``. At most a quarter of --timeout is kept, or
        one refit of this candidate if that is more: the answer's first seed always trains
        (on PneumoniaMNIST the first candidate's CV took 525 s, its refit 249 s against a
        225 s reserve, and the search ended 34 s past its 900 s).
        """
        if self.deadline is None or not self.refits_after:
            return
        one = refit_seconds(seconds, self.plan.folds)
        estimate = self.refits_after * one
        limit = max(0.25 * (self.plan.timeout or 0.0), one)
        self.reserve = max(self.reserve, min(limit, estimate))  # never shrinks

    def _bootstrap_pace(self, oof: np.ndarray) -> float:
        """Seconds per resample and sample of the bootstrap intervals, timed once on a few
        resamples of fold 0's out-of-fold predictions drawn to the test set's size (0 without
        a test set or intervals). Timed on fold 0's own rows, a resample's fixed cost made
        ECGFiveDays' 5 validation series estimate 134 s for the 1 s of intervals on its 861
        test series."""
        if self._boot_pace is None:
            self._boot_pace = 0.0
            if self.p.test is not None and self.plan.bootstrap:
                from automed.evaluation.bootstrap import bootstrap_all

                rows = np.random.default_rng(0).choice(self.p.splits[0][1], len(self.p.test))
                started = time.perf_counter()
                bootstrap_all(self.p.train.y[rows], oof[rows].astype(np.float64),
                              self.p.average, self.p.pos_label, n=BOOTSTRAP_PROBE, seed=0)
                self._boot_pace = ((time.perf_counter() - started)
                                   / (BOOTSTRAP_PROBE * max(1, len(rows))))
        return self._boot_pace

    def _reserve_for_answer(self, pace: float, score_pace: float) -> None:
        """Keep time for the answer after the search: ``answer_members`` fold bags read and
        predict the raw test set (each of its k models at ``pace`` seconds per sample,
        preprocessing included: 4.2 of 4.5 s per fold model on Ohsumed's 4,043 abstracts),
        plus the bootstrap intervals (``--bootstrap`` resamples at ``score_pace``); at most a
        quarter of --timeout. The final phase fits the ensemble's size to the time left."""
        if self.deadline is None or not self.answer_members or self.p.test is None:
            return
        estimate = answer_seconds(self.answer_members, self.plan.folds, pace, score_pace,
                                  len(self.p.test), self.plan.bootstrap)
        limit = 0.25 * (self.plan.timeout or 0.0)
        self.reserve = max(self.reserve, min(limit, estimate))  # never shrinks

    def out_of_time(self) -> bool:
        return (self.deadline is not None
                and time.monotonic() > self.deadline - self.reserve)

    def no_time_for_another(self) -> bool:
        """Whether the time left before the answer's reserve is shorter than the quickest
        first epoch seen: a candidate started now would stop at the limit with nothing to
        show, after the limit (PneumoniaMNIST, 900 s: one started 8 s before it and ended the
        search 5 s past). Never before one candidate is complete."""
        return (self.deadline is not None and self.shortest_epoch is not None
                and time.monotonic() + self.shortest_epoch > self.deadline - self.reserve
                and self.has_complete())

    def _check_deadline(self, epoch: int, loss: float) -> None:
        # A search always answers: until one candidate has completed, the limit is soft.
        if self.out_of_time() and self.has_complete():
            raise OutOfTime()

    def has_complete(self) -> bool:
        if not self._complete:
            self._complete = any(r["state"] == "complete"
                                 for r in self.store.leaderboard(self.study_name, top=1))
        return self._complete

