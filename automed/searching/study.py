"""The Optuna study behind a search: sampler, pruner, heartbeats, budget and retries.

The trial budget (``--trials``) counts candidates that ran to an outcome: complete, pruned,
or failed by their own fault. A candidate stopped by Ctrl-C or lost with its worker does not
count; it is queued again once, and its retry takes its place: a worker asks for waiting
retries before any other queued or new candidate, and a waiting retry holds its unit of budget
as the lost candidate did while it ran, so the budget is not used up before the retry has run.
With one worker a search never runs more than ``trials`` candidates; with ``W`` workers at most
``trials + W - 1`` (each may start one while another finishes the last).
"""

from __future__ import annotations

import hashlib
import time
import types
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from automed.architecture import ARCHITECTURE_PARAM, prefixed, unprefixed
from automed.contract import carried_attrs, fixed_attrs
from automed.errors import CandidateError
from automed.searching.fidelity import PORTFOLIO_ATTR, make_pruner
from automed.searching.interrupts import after_trial, optuna_loop, safe_points, stopping
from automed.searching.plan import HEARTBEAT_INTERVAL

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def grace(interval: float) -> int:
    return int(max(3 * interval, interval + 2))


def counted_trials(study: optuna.Study) -> int:
    """Candidates that used up budget: complete, pruned, or failed by their own fault."""
    return sum(_counted(t) for t in study.get_trials(deepcopy=False, states=COUNTED))


def _counted(t: optuna.trial.FrozenTrial) -> bool:
    # A draw of a family left out after its failures (pruned, so that TPE learns from it;
    # see objective.Skipped) trained nothing and is no candidate.
    if t.state == TrialState.FAIL:
        return t.user_attrs.get("automed_state") == "failed"
    return t.user_attrs.get("automed_state") != "skipped"


def surplus(study: optuna.Study, number: int, trials: int | None) -> bool:
    """Whether candidates placed before trial ``number`` already take the whole trial budget.

    Workers check the budget before asking for a trial, but two can check at once and both
    start one (5 candidates on a budget of 4). Trial numbers are handed out in one order by the
    storage, so each worker can tell, once its trial exists, whether it came too late. A retry
    stands in the place of the candidate it re-runs (see :func:`place`), and a waiting retry
    holds that place until a worker takes it: a later candidate yields to it, not it to them.
    """
    if trials is None:
        return False
    every = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in every}
    me = by_number.get(number)
    mine = place(me, by_number) if me is not None else number
    earlier = 0
    for t in every:
        if t.number != number and place(t, by_number) < mine and uses_budget(t):
            earlier += 1
    return earlier >= trials


def is_retry(trial: optuna.trial.FrozenTrial) -> bool:
    """Queued on purpose to re-run a candidate that a Ctrl-C or a dead worker cut short."""
    return "retry_of" in trial.user_attrs or "failed_trial" in trial.system_attrs


def seed_number(trial) -> int:
    """The number a candidate's model seeds follow (``--seed`` + it): a retry's is the
    candidate it re-runs, so a resumed search trains the same models (QA: a retried
    candidate scored 0.9062 where it scored 0.9083 uninterrupted). ``trial``: a live
    ``optuna.Trial`` or a ``FrozenTrial``."""
    for key in ("retry_root", "retry_of"):
        if key in trial.user_attrs:
            return int(trial.user_attrs[key])
    try:
        system = (trial.system_attrs if isinstance(trial, optuna.trial.FrozenTrial) else
                  trial.study._storage.get_trial_system_attrs(trial._trial_id))
    except (AttributeError, KeyError):
        system = {}
    return int(system["failed_trial"]) if "failed_trial" in system else trial.number


def _retried(trial: optuna.trial.FrozenTrial) -> int | None:
    # Optuna's stale-trial callback keeps the first lost trial's number; a resume's retry of an
    # interrupted candidate names the trial it re-runs.
    if "failed_trial" in trial.system_attrs:
        return int(trial.system_attrs["failed_trial"])
    if "retry_of" in trial.user_attrs:
        return int(trial.user_attrs["retry_of"])
    return None


def place(trial: optuna.trial.FrozenTrial,
          by_number: dict[int, optuna.trial.FrozenTrial] | None = None) -> int:
    """The trial's place in the budget: its number, or for a retry the first candidate's."""
    number, seen = trial.number, {trial.number}
    while True:
        before = _retried(trial)
        if before is None or before in seen or before > number:
            return number
        number = before
        seen.add(before)
        if by_number is None or before not in by_number:
            return number
        trial = by_number[before]


def uses_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Counted (see :func:`counted_trials`), running, or a retry waiting to take its place."""
    if trial.state == TrialState.RUNNING:
        return True
    if trial.state == TrialState.WAITING:
        return is_retry(trial)
    return trial.state in COUNTED and _counted(trial)


def waiting_retries(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if is_retry(t)]


def _pop_retries_first(study: optuna.Study) -> int | None:
    """``Study._pop_waiting_trial_id`` that hands out waiting retries before anything else.

    Optuna takes the waiting trial with the lowest number, but a retry is queued after the
    family starts queued when the study was made: a worker that took those first could fill
    the budget and leave the lost candidate waiting for ever.
    """
    storage = study._storage
    waiting = storage.get_all_trials(study._study_id, deepcopy=False,
                                     states=(TrialState.WAITING,))
    for trial in sorted(waiting, key=lambda t: (not is_retry(t), place(t), t.number)):
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                continue  # another worker took it first
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        return trial._trial_id
    return None


def retries_first(study: optuna.Study) -> optuna.Study:
    """Make ``study`` (its ask, so its optimize) take waiting retries first."""
    if not hasattr(study, "_pop_waiting_trial_id"):  # a private method: degrade, never fail
        warnings.warn("this Optuna has no Study._pop_waiting_trial_id: lost candidates' "
                      "retries wait behind queued starts (the final sweep still runs them)",
                      stacklevel=2)
        return study
    study._pop_waiting_trial_id = types.MethodType(_pop_retries_first, study)
    return study


def worker_seed(seed: int, identity: str, started: int = 0) -> int:
    """A sampler seed per worker, so a fleet explores like a fleet and not like one worker.

    ``identity`` names the worker ("main", "local-2", "host:pid:slot"); ``started`` is how
    many trials the study already had, so a resumed search does not redraw its first run's
    random start-up candidates. The main process of a fresh study keeps ``seed`` itself, so a
    seeded one-worker search repeats exactly.
    """
    if identity == "main" and started == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}|{identity}|{started}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


class Budget:
    """Stop this worker once the study as a whole has used its trial budget."""

    def __init__(self, trials: int | None) -> None:
        self.trials = trials

    def used(self, study: optuna.Study) -> bool:
        if self.trials is None:
            return False
        # Candidates still running elsewhere will use budget too, and so will the waiting
        # retries of lost ones (they take the lost candidates' places): do not start one more.
        pending = study.get_trials(deepcopy=False,
                                   states=(TrialState.RUNNING, TrialState.WAITING))
        held = sum(t.state == TrialState.RUNNING or is_retry(t) for t in pending)
        return counted_trials(study) + held >= self.trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.used(study):
            study.stop()


def _stale_callback(store, search_id: int) -> Callable:
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)

    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # its drawn parameters, as its row showed them while it ran (QA: show said "{}")
        drawn = unprefixed(trial.params)[1] if ARCHITECTURE_PARAM in trial.params else {}
        store.record_candidate(
            search_id, trial.number, architecture=trial.params.get("architecture", "?"),
            params=drawn, state="failed", fold_scores=[], score_mean=None, score_std=None,
            metrics={}, duration_s=0.0, device=None,
            error="WorkerLost: the worker stopped sending heartbeats; the candidate was queued "
                  "again")
        retry(study, trial)

    return on_stale


def open_study(store, study_name: str, *, seed: int, prune: bool, search_id: int,
               heartbeat: float = HEARTBEAT_INTERVAL, create: bool = False,
               identity: str = "main") -> optuna.Study:
    """The Optuna study of a search, with heartbeats, a per-worker TPE seed and the pruner."""
    # Failed and interrupted candidates are reported by automed itself (one line each), so
    # Optuna's per-trial warnings with their tracebacks would only repeat them.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruner = make_pruner(prune)  # epoch steps on fold 0, then fold steps: see fidelity
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = store.optuna_storage(
            heartbeat_interval=max(1, int(heartbeat)), grace_period=grace(heartbeat),
            heartbeat_stale_trial_callback=_stale_callback(store, search_id))

    def sampler(started: int) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            # group=True is "experimental" but is what conditional per-family spaces need.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=worker_seed(seed, identity, started),
                                              group=True, n_startup_trials=8)

    if create:
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    direction="maximize", sampler=sampler(0), pruner=pruner,
                                    load_if_exists=True)
    else:
        study = optuna.load_study(storage=storage, study_name=study_name, sampler=sampler(0),
                                  pruner=pruner)
    started = len(study.get_trials(deepcopy=False))
    if started:
        study.sampler = sampler(started)
    return retries_first(study)


def enqueue_defaults(study: optuna.Study, defaults: list[tuple[str, dict, dict]]) -> None:
    """Queue each family's known-good start (``(family, params, fixed)``, in order) once.

    ``fixed`` holds the values the study's distributions cannot hold (see
    :func:`automed.contract.split_defaults`): they ride along as a user attribute.
    """
    for name, params, fixed in defaults:
        study.enqueue_trial(prefixed(name, params),
                            user_attrs={PORTFOLIO_ATTR: name, **fixed_attrs(fixed)})


def interrupted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Failed trials that never really ran: stopped by Ctrl-C."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get("interrupted")]


def retry_interrupted(study: optuna.Study) -> None:
    """Enqueue each interrupted trial's params once, so a resume re-runs it from the start."""
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    done = {t.user_attrs.get("retry_of") for t in trials}
    for t in interrupted(study):
        if t.number not in done and t.params:
            start = t.user_attrs.get(PORTFOLIO_ATTR)
            # retry_root: the first of a chain of retries (a candidate cut short twice), whose
            # seeds and place every retry of it keeps (review: one link was followed)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number,
                                                      "retry_root": place(t, by_number),
                                                      **carried_attrs(t),
                                                      **({PORTFOLIO_ATTR: start} if start
                                                         else {})})
    _drop_twin_retries(study)


def _drop_twin_retries(study: optuna.Study) -> None:
    """Workers rejoining at once may each queue the retry of one candidate (review: two
    waiting retries of #0, each holding a unit of budget): the first queued stays, the others
    are failed unrun, uncounted."""
    every = study.get_trials(deepcopy=False)
    # retries that run or ran (a stale sweep's failed one does not count: review)
    kept = {t.user_attrs.get("retry_of") for t in every
            if t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.user_attrs.get("automed_state") == "failed")
            } - {None}
    waiting = [t for t in every if t.state == TrialState.WAITING]
    for t in sorted(waiting, key=lambda t: t.number):
        key = t.user_attrs.get("retry_of")
        if key is None or "failed_trial" in t.system_attrs:
            continue  # Optuna's own retry of a lost trial (it copies retry_of): never a twin
        if key not in kept:
            kept.add(key)
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "automed_state", "twin retry")
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            pass  # another worker took it or failed it first


def _lost_to_a_sweep(exc: BaseException) -> bool:
    # Another worker failed this worker's running trial as stale (it beat too late: an
    # overloaded node, a long pause) and queued it again; Optuna then refuses the late tell.
    text = str(exc)
    return isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) or \
        text.startswith(("Cannot tell a FAIL trial", "Should not reach"))


def _optimize(study: optuna.Study, objective: Callable, *, timeout: float | None,
              **kwargs) -> None:
    """``study.optimize`` that carries on after losing a trial to another worker's sweep."""
    started = time.monotonic()
    while True:
        left = None if timeout is None else timeout - (time.monotonic() - started)
        if left is not None and left <= 0:
            return
        try:
            with optuna_loop():  # a worker's stop between trials waits for a safe point
                study.optimize(objective, timeout=left, **{
                    **kwargs, "callbacks": [*(kwargs.get("callbacks") or []), after_trial]})
            return
        except (ValueError, AssertionError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            if not _lost_to_a_sweep(exc):
                raise
            warnings.warn(f"a candidate of this worker was failed as stale and queued again "
                          f"({exc}); give the study a longer --heartbeat on busy nodes",
                          stacklevel=2)


def run_trials(objective, study: optuna.Study, *, trials: int | None, timeout: float | None,
               heartbeat: float = HEARTBEAT_INTERVAL, callbacks: list | None = None) -> None:
    """Optimise until the study's budget is used, then retry what dead workers left behind.

    The sweep after the main loop runs only retries (of candidates a dead worker lost, or a
    Ctrl-C cut short) and only while budget and time are left, so ``--trials`` stays a total.
    Ctrl-C / SIGTERM leaves as a fresh KeyboardInterrupt (or Terminated), with the database
    lock of a query it interrupted freed (see :mod:`automed.searching.interrupts`).
    """
    # (an interrupted Optuna bookkeeping step can also fail in its own ``finally``)
    with safe_points():  # a first Ctrl-C between candidates leaves no trial RUNNING
        stopping(_run_trials, objective, study, trials=trials, timeout=timeout,
                 heartbeat=heartbeat, callbacks=callbacks)


def _run_trials(objective, study: optuna.Study, *, trials: int | None, timeout: float | None,
                heartbeat: float, callbacks: list | None) -> None:
    budget = Budget(trials)
    started = time.monotonic()
    if timeout is not None:
        objective.deadline = started + timeout  # candidates stop mid-training at the limit

    def no_time() -> bool:
        # Time kept for the answer after the search (see Objective.reserve) ends it early, and
        # so does time left too short for another candidate's first epoch.
        if getattr(objective, "reserve", 0.0) and objective.out_of_time():
            return True
        return bool(getattr(objective, "no_time_for_another", lambda: False)())

    def reserve(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if no_time():
            study.stop()

    if not budget.used(study):
        if timeout is not None and timeout <= 0:
            # Start-up (the data, a worker's imports) used the whole --timeout. A search
            # always answers: while no candidate has completed one runs (the limit is soft
            # until then); else none starts.
            if not getattr(objective, "has_complete", lambda: True)():
                _optimize(study, objective, timeout=None, n_trials=1, catch=(CandidateError,),
                          callbacks=[budget, reserve, *(callbacks or [])],
                          gc_after_trial=False, show_progress_bar=False)
            return
        _optimize(study, objective, timeout=timeout, catch=(CandidateError,),
                  callbacks=[budget, reserve, *(callbacks or [])], gc_after_trial=False,
                  show_progress_bar=False)
    # A worker that died mid-trial leaves it RUNNING until its heartbeat is stale, then queued
    # again; a waiting retry holds its unit of budget (Budget.used), so the main loop may have
    # stopped with it still waiting. Sweep for one grace period past the last running trial so
    # that the retries run before this worker leaves.
    deadline = time.monotonic() + grace(heartbeat) + 2 * heartbeat
    while True:
        if timeout is not None and time.monotonic() - started > timeout:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if waiting_retries(study) and not _budget_spent(study, trials) and not no_time():
            # Study.ask hands out waiting retries first (retries_first).
            _optimize(study, objective, timeout=None, n_trials=1, catch=(CandidateError,),
                      callbacks=list(callbacks or []), gc_after_trial=False,
                      show_progress_bar=False)
            deadline = time.monotonic() + grace(heartbeat) + 2 * heartbeat
            continue
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            break
        if time.monotonic() > deadline:
            break  # what is still running belongs to live workers
        time.sleep(min(1.0, heartbeat))


def _budget_spent(study: optuna.Study, trials: int | None) -> bool:
    return trials is not None and counted_trials(study) >= trials
