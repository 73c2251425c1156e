"""Run a search's candidates: in this process, in local worker processes, or from any machine.

Workers coordinate only through the study database, so a worker on another machine
(``automed worker``) runs exactly the code a local worker process runs. Each trial keeps a
heartbeat in the database; when a worker dies (SIGKILL, lost node), its trial goes stale, is
marked failed and is queued again, so no candidate is lost.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from automed.devices import Slot
from automed.errors import AutomedError, CandidateError

HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _grace(interval: float) -> int:
    return int(max(3 * interval, interval + 2))


def counted_trials(study: optuna.Study) -> int:
    """Candidates that used up budget: complete, pruned, or failed by their own fault.

    A trial failed because its worker stopped responding does not count: it is retried.
    """
    n = 0
    for t in study.get_trials(deepcopy=False, states=COUNTED):
        if t.state != TrialState.FAIL or t.user_attrs.get("automed_state") == "failed":
            n += 1
    return n


class _Budget:
    """Stop this worker once the study as a whole has used its trial budget."""

    def __init__(self, trials: int | None) -> None:
        self.trials = trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.trials is None:
            return
        # Candidates still running elsewhere will use budget too: do not start one more.
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if counted_trials(study) + running >= self.trials:
            study.stop()


def _stale_callback(store, search_id: int) -> Callable:
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)

    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        store.record_candidate(
            search_id, trial.number, architecture=trial.params.get("architecture", "?"),
            params={}, state="failed", fold_scores=[], score_mean=None, score_std=None,
            metrics={}, duration_s=0.0, device=None,
            error="WorkerLost: the worker stopped sending heartbeats; the candidate was queued "
                  "again")
        retry(study, trial)

    return on_stale


def open_study(store, study_name: str, *, seed: int, prune: bool, search_id: int,
               heartbeat: float = HEARTBEAT_INTERVAL, create: bool = False) -> optuna.Study:
    """The Optuna study of a search, with heartbeats, a seeded TPE sampler and the pruner."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        # group=True is "experimental" but is what conditional per-family spaces need.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, group=True, n_startup_trials=8)
    # Median of the running fold means: prunes after the first fold, unlike WilcoxonPruner.
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
              if prune else optuna.pruners.NopPruner())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = store.optuna_storage(
            heartbeat_interval=max(1, int(heartbeat)), grace_period=_grace(heartbeat),
            heartbeat_stale_trial_callback=_stale_callback(store, search_id))
    if create:
        return optuna.create_study(storage=storage, study_name=study_name,
                                   direction="maximize", sampler=sampler, pruner=pruner,
                                   load_if_exists=True)
    return optuna.load_study(storage=storage, study_name=study_name, sampler=sampler,
                             pruner=pruner)


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
            study.optimize(objective, timeout=left, **kwargs)
            return
        except (ValueError, AssertionError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            if not _lost_to_a_sweep(exc):
                raise
            warnings.warn(f"a candidate of this worker was failed as stale and queued again "
                          f"({exc}); use a longer --heartbeat on busy nodes", stacklevel=2)


def run_trials(searcher, study: optuna.Study, *, trials: int | None, timeout: float | None,
               heartbeat: float = HEARTBEAT_INTERVAL) -> None:
    """Optimise until the study's budget is used, then retry what dead workers left behind."""
    budget = _Budget(trials)
    started = time.monotonic()
    if timeout is not None:
        searcher.deadline = started + timeout  # candidates stop mid-training at the limit
    if trials is None or counted_trials(study) < trials:
        _optimize(study, searcher.objective, timeout=timeout, catch=(CandidateError,),
                  callbacks=[budget], gc_after_trial=False, show_progress_bar=False)
    # A worker that died mid-trial leaves it RUNNING until its heartbeat is stale. Sweep for
    # such trials for one grace period so that their retries run before this worker leaves.
    deadline = time.monotonic() + _grace(heartbeat) + 2 * heartbeat
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if time.monotonic() > deadline:
            break  # what is still running belongs to live workers
        if timeout is not None and time.monotonic() - started > timeout:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            _optimize(study, searcher.objective, timeout=None, n_trials=len(waiting),
                      catch=(CandidateError,), gc_after_trial=False, show_progress_bar=False)
            deadline = time.monotonic() + _grace(heartbeat) + 2 * heartbeat
        else:
            time.sleep(min(1.0, heartbeat))


def worker_main(storage_url: str, study_name: str, slot: Slot, *, index: int = 0,
                timeout: float | None = None, heartbeat: float = HEARTBEAT_INTERVAL,
                quiet: bool = True) -> None:
    """One worker: rebuild the search from the database and run candidates until done.

    The entry point of local worker processes and of ``automed worker`` on any machine.
    """
    import torch

    from automed.searcher import Searcher
    from automed.storage import Store

    torch.set_num_threads(slot.threads)
    if slot.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(slot.device))
    store = Store(storage_url)
    searcher = Searcher.from_store(store, study_name, device=slot.device)
    config = store.search(study_name)["config"]
    study = open_study(store, study_name, seed=config["cv_seed"] + index,
                       prune=config.get("prune", True), search_id=searcher.search_id,
                       heartbeat=heartbeat)
    run_trials(searcher, study, trials=config.get("trials"), timeout=timeout,
               heartbeat=heartbeat)


def _child(storage_url, study_name, slot, index, timeout, heartbeat) -> None:
    try:
        worker_main(storage_url, study_name, slot, index=index, timeout=timeout,
                    heartbeat=heartbeat)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def run_local_workers(store, study_name: str, slots: list[Slot], *, timeout: float | None,
                      heartbeat: float, progress: Callable[[dict], None],
                      first_index: int = 0) -> None:
    """Start one process per slot, relay their candidates as progress, wait for all."""
    ctx = multiprocessing.get_context("spawn")  # CUDA and torch threads need fresh processes
    procs = [ctx.Process(target=_child, name=f"automed-worker-{i}",
                         args=(store.url, study_name, slot, first_index + i, timeout, heartbeat))
             for i, slot in enumerate(slots)]
    seen: set[int] = set()

    def relay() -> None:
        for row in store.candidates(study_name):
            if row["trial"] not in seen:
                seen.add(row["trial"])
                progress({"event": "candidate", "trial": row["trial"],
                          "architecture": row["architecture"], "state": row["state"],
                          "score_mean": row["score_mean"], "score_std": row["score_std"],
                          "folds_done": len(row["fold_scores"] or []),
                          "duration_s": row["duration_s"], "device": row["device"],
                          "error": row["error"].splitlines()[0] if row["error"] else None})

    seen.update(r["trial"] for r in store.candidates(study_name))
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            relay()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
        raise
    for p in procs:
        p.join()
    relay()
    crashed = [p for p in procs if p.exitcode not in (0, None)]
    if crashed and len(crashed) == len(procs):
        raise AutomedError(
            f"all {len(procs)} workers stopped with an error (exit codes "
            f"{[p.exitcode for p in crashed]}); run with --workers 1 to see it"
        )
