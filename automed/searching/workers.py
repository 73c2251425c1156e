"""Run a search's candidates in worker processes, here or on any machine.

Workers coordinate only through the study database. Each rebuilds the search from the plan
stored there (:func:`objective_from_store`, through :func:`~automed.searching.prepare.prepare`),
so a worker on another machine runs exactly the code a local worker process runs, on exactly
the same folds. Each trial keeps a heartbeat in the database; when a worker dies (SIGKILL, lost
node), its trial goes stale, is marked failed and is queued again, so no candidate is lost.

Ctrl-C and SIGTERM stop workers the way they stop a one-worker search: each worker marks the
candidate it was training "interrupted" (listed by ``automed leaderboard --all``, run again by a
resume) before it exits; only a worker that does not stop in time is killed and its candidate
left to go stale.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable

from automed.errors import AutomedError, ConfigError, DataError
from automed.searching.devices import Slot
from automed.searching.interrupts import (
    interruption_behind,
    raise_terminated,
    settle,
    stop_handler,
)

Progress = Callable[[dict], None]

# How long the leader waits, after Ctrl-C, for its workers to mark their candidates interrupted
# (one database write each) before it kills them.
STOP_WAIT_S = 30.0
# A worker's exit status after a Ctrl-C or a stop (SystemExit(130), as a shell's 128 + SIGINT)
INTERRUPTED_EXIT = 130


def objective_from_store(store, study_name: str, device: str, *,
                         allowed_plugins: list[dict] | None,
                         progress: Progress | None = None):
    """The search's objective, rebuilt from the plan stored with ``study_name``.

    Refuses a study without a plan (made by an older automed), a plan this version cannot
    honour, plugins this worker was not given, and data that is not what the study was
    created with (files, groups, test rows or folds differ).
    """
    import torch

    from automed.searching.objective import Objective
    from automed.searching.plan import SearchPlan
    from automed.searching.prepare import Prepared, load_plugins, prepare

    info = store.search(study_name)
    cfg = info["config"]
    if "plan" not in cfg:
        raise ConfigError(f"study {study_name!r} has no stored search plan (it was created by "
                          "an older automed); workers cannot honour it: start a new study")
    plan = SearchPlan.from_dict(cfg["plan"], study_name)
    if not plan.data.path:
        raise ConfigError(f"study {study_name!r} was started from in-memory data; workers "
                          "need it started from a file path")
    if plan.deterministic:  # every process that trains (QA: only the leader's switched)
        from automed.searching.manifest import enable_determinism

        enable_determinism()
    load_plugins(plan, allowed_plugins)
    from automed.data.loaders import records

    token = records.FIRST_LABEL.set(True)  # the study's label, however it was found
    try:
        prepared = prepare(plan)
    finally:
        records.FIRST_LABEL.reset(token)
    expected = cfg.get("identity")
    got = prepared.identity()
    what = Prepared.differs(expected, got)
    if what is not None:
        if what == "preprocessing":
            raise ConfigError(
                f"this worker preprocesses as {got[what]}, study {study_name!r} as "
                f"{(expected or {}).get(what)}; give every worker the same family settings "
                "(e.g. AUTOMED_HF_MODEL)")
        files = [str(f) for f in (plan.data.path, plan.data.test, plan.data.groups) if f]
        raise DataError(  # any of the files may be the one that changed: name them all
            f"{' and '.join(files)} {'do' if len(files) > 1 else 'does'} not give the data "
            f"study {study_name!r} was created with ({what} differs); give every worker the "
            "same files and automed version")
    if progress is not None:  # `automed worker` says the data's warnings as search does
        for message in prepared.warnings:
            progress({"event": "warning", "message": message})
    objective = Objective(prepared, store=store, study_name=study_name, search_id=info["id"],
                          device=torch.device(device), progress=progress)
    # Where the study's candidates keep their fold models (the answer without a refit); on
    # another machine this is a folder of its own disk unless the path is shared.
    if cfg.get("fold_models"):
        from pathlib import Path

        objective.fold_models = Path(cfg["fold_models"])
    # ... and keeps time before --timeout for the answer's test predictions, as the leader does
    objective.answer_members = int(cfg.get("answer_members") or 0)
    return objective


def worker_main(storage_url: str, study_name: str, slot: Slot, *, identity: str,
                allowed_plugins: list[dict] | None, timeout: float | None = None,
                threads: int | None = None, ends_at: float | None = None,
                progress: Progress | None = None) -> None:
    """One worker: rebuild the search from the database and run candidates until done.

    The entry point of local worker processes and of ``automed worker`` on any machine. A
    CPU worker shares the machine's cores with the other automed workers on it
    (:class:`~automed.searching.devices.CoreShare`) unless ``threads`` or ``OMP_NUM_THREADS``
    fixes its thread count. ``ends_at`` (seconds since the epoch) replaces ``timeout`` for a
    leader's local workers: their budget ends when the leader's does, however long this
    process took to start and load the data.
    """
    import torch

    from automed.searching.devices import CoreShare, threads_from_environment
    from automed.searching.study import open_study, run_trials
    from automed.storage import Store

    if slot.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(slot.device))
        fixed = threads or slot.threads
    else:
        fixed = threads or threads_from_environment()
    with CoreShare(fixed) as cores:
        store = Store(storage_url)
        objective = objective_from_store(store, study_name, slot.device,
                                         allowed_plugins=allowed_plugins, progress=progress)
        plan = objective.plan
        study = open_study(store, study_name, seed=plan.seed, prune=plan.prune,
                           search_id=objective.search_id, heartbeat=plan.heartbeat,
                           identity=identity)
        cores.apply()  # workers started together have all registered by now
        if ends_at is not None:
            timeout = max(0.0, ends_at - time.time())
        callbacks = [cores]
        if plan.timeout is not None:
            callbacks.append(_SessionEnd(store, study_name))
        run_trials(objective, study, trials=plan.trials, timeout=timeout,
                   heartbeat=plan.heartbeat, callbacks=callbacks)


class _SessionEnd:
    """After each candidate, stop when the study's search session has ended (its leader
    records the end, earlier than planned when it keeps time to answer): a worker that
    joined then starts nothing past the answer (review: it trained on to the planned end)."""

    def __init__(self, store, study_name: str) -> None:
        self.store, self.study_name = store, study_name

    def __call__(self, study, trial) -> None:
        try:
            ends = (self.store.search(self.study_name)["config"] or {}).get("search_ends_at")
        except AutomedError:
            return
        if ends is not None and time.time() >= float(ends):
            study.stop()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises :class:`~automed.errors.Terminated` (a
    KeyboardInterrupt): ``kill`` or a scheduler's stop leaves what Ctrl-C leaves, the running
    candidate marked interrupted and the search's status "interrupted"."""
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread, which alone can handle signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _child(storage_url, study_name, slot, identity, allowed, ends_at, threads=None,
           leader=None) -> None:
    # the first stop only; between candidates at a safe point (see interrupts.stop_handler:
    # one landing in Optuna's ask or tell left a trial RUNNING)
    signal.signal(signal.SIGINT, stop_handler)
    signal.signal(signal.SIGTERM, stop_handler)
    _stop_when_orphaned(leader)
    # A leader's worker writes nothing of its own to stdout, which is the leader's (its
    # --json): a plugin's print goes to stderr (QA: it came before the JSON)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        worker_main(storage_url, study_name, slot, identity=identity, allowed_plugins=allowed,
                    ends_at=ends_at, threads=threads)
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED_EXIT) from None


ORPHAN_CHECK_S = 1.0


def _stop_when_orphaned(leader: int | None = None) -> None:
    """Stop this worker, as its leader's SIGTERM would, once the leader is gone: a leader
    killed with SIGKILL (or lost with its terminal) cannot stop its workers, which went on
    to use the whole budget and hold their devices while the study read "stopped (process
    is gone)" (QA). The worker is then re-parented, so its parent id changes. ``leader``:
    the leader's pid as the leader gave it (one killed while this worker started up is
    missed by a pid read here, review)."""
    import threading

    leader = os.getppid() if leader is None else leader

    def watch() -> None:
        while os.getppid() == leader:
            time.sleep(ORPHAN_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="automed-orphan-watch", daemon=True).start()


def machine_identity() -> str:
    """This process on this machine: distinct for every joining worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_local_workers(store, study_name: str, slots: list[Slot], *, timeout: float | None,
                      allowed_plugins: list[dict] | None, progress: Progress,
                      identity: str = "local", threads: int | None = None) -> None:
    """Start one process per slot, relay their candidates as progress, wait for all."""
    ctx = multiprocessing.get_context("spawn")  # CUDA and torch threads need fresh processes
    # The budget ends at one moment for all: a worker's start-up (imports, data) uses it too.
    ends_at = None if timeout is None else time.time() + timeout
    procs = [ctx.Process(target=_child, name=f"automed-worker-{i}",
                         args=(store.url, study_name, slot, f"{identity}-{i}", allowed_plugins,
                               ends_at, threads, os.getpid()))
             for i, slot in enumerate(slots)]
    seen: set[int] = set()

    def relay() -> None:
        for row in store.candidates(study_name):
            if row["trial"] not in seen and row["state"] != "running":
                seen.add(row["trial"])
                progress({"event": "candidate", "trial": row["trial"],
                          "architecture": row["architecture"], "state": row["state"],
                          "score_mean": row["score_mean"], "score_std": row["score_std"],
                          "folds_done": len(row["fold_scores"] or []),
                          "duration_s": row["duration_s"], "device": row["device"],
                          "error": row["error"].splitlines()[0] if row["error"] else None})

    seen.update(r["trial"] for r in store.candidates(study_name))
    _start_ignoring_ctrl_c(procs)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            relay()
    except KeyboardInterrupt as exc:
        stop = type(exc)
    except Exception as exc:  # Ctrl-C inside relay's query, surfacing as its error
        stop = interruption_behind(exc)
        if stop is None:
            _stop(procs, STOP_WAIT_S)
            raise
    else:
        stop = None
    if stop is not None:
        settle()  # out of the except block: see interrupts
        _stop(procs, STOP_WAIT_S)
        with contextlib.suppress(Exception):
            relay()  # one line for each candidate the workers marked interrupted
        raise stop()
    for p in procs:
        p.join()
    relay()
    _judge_exits(procs)


def _judge_exits(procs: list) -> None:
    """The workers' exit codes, read once all have ended: a Ctrl-C this process did not see
    (Python can lose it inside a garbage-collection callback, "Exception ignored in ...": CI
    saw a search end as "all 2 workers stopped with an error (exit codes [130, 130])") is an
    interruption; every worker failing, an error."""
    if procs and all(p.exitcode == INTERRUPTED_EXIT for p in procs):
        raise KeyboardInterrupt
    crashed = [p for p in procs if p.exitcode not in (0, None)]
    if crashed and len(crashed) == len(procs):
        raise AutomedError(
            f"all {len(procs)} workers stopped with an error (exit codes "
            f"{[p.exitcode for p in crashed]}); run with one worker (--workers 1, or "
            "workers=1 in Python) to see it; a Python script that starts workers must do so "
            "under `if __name__ == \"__main__\":` (each worker imports it again)"
        )


def _start_ignoring_ctrl_c(procs: list) -> None:
    """Start the workers with SIGINT ignored until :func:`_child` installs its handler: a
    Ctrl-C while one still imports would print its traceback (and the stop is sent again
    until it listens, see :func:`_stop`). An ignored SIGINT survives the exec of a spawned
    process, which Python then leaves ignored."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        for p in procs:
            p.start()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _stop(procs: list, wait: float) -> None:
    """Stop workers as Ctrl-C stops one: each marks its candidate interrupted and exits.

    The signal goes to every worker still running (a ``kill`` of the leader alone reaches no
    worker), again every second until it exits: one still starting ignores it until its
    handler is in place (then further signals are ignored by the handler itself, so none
    cuts short its marking). One that has not exited after ``wait`` seconds, or after a
    second Ctrl-C, is killed, and its candidate goes stale and is queued again like a lost
    worker's.
    """
    deadline = time.monotonic() + wait
    try:
        while True:
            alive = [p for p in procs if p.is_alive()]
            if not alive or time.monotonic() >= deadline:
                break
            for p in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
            alive[0].join(min(1.0, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: do not wait any longer
    finally:
        late = [p for p in procs if p.is_alive()]
        for p in late:
            p.kill()
        for p in procs:
            p.join(10)
        if late:
            warnings.warn(f"{len(late)} worker(s) did not stop within {wait:g} s and were "
                          "killed; their candidates are queued again once their heartbeat is "
                          "stale", stacklevel=2)


def join(study_name: str, *, storage: str | None = None, gpus: str | None = None,
         trials_per_gpu: int = 1, workers: int | None = None, device: str = "auto",
         timeout: float | None = None, plugins: list[str] | None = None,
         progress: Progress | None = None, identity: str | None = None,
         threads: int | None = None, results_db: str | None = None) -> int:
    """``automed worker``: join an existing search from this machine; return its candidates.

    Only plugins named in ``plugins`` (or installed, or on ``$AUTOMED_PLUGINS_PATH``) may be
    loaded; a study that needs another one is refused. ``threads`` fixes each worker process's
    torch threads; by default the machine's cores are divided among every automed worker
    training on it, however many join. ``results_db``: as :func:`automed.search`'s.
    """
    from automed.storage.fleet import results_db_env

    with results_db_env(results_db, storage):
        return _join(study_name, storage=storage, gpus=gpus, trials_per_gpu=trials_per_gpu,
                     workers=workers, device=device, timeout=timeout, plugins=plugins,
                     progress=progress, identity=identity, threads=threads)


def _join(study_name: str, *, storage, gpus, trials_per_gpu, workers, device, timeout,
          plugins, progress, identity, threads) -> int:
    import optuna

    from automed.results.describe import objective_words
    from automed.searching.devices import plan_slots
    from automed.searching.prepare import allowed_plugins
    from automed.searching.study import counted_trials, retry_interrupted
    from automed.storage import Store

    progress = progress or (lambda event: None)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--timeout {timeout} must be a positive number of seconds")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    store = Store(storage, existing=True)
    info = store.search(study_name)
    slots = plan_slots(gpus, trials_per_gpu, workers, device)
    env = [s for s in os.environ.get("AUTOMED_PLUGINS_PATH", "").split(os.pathsep) if s]
    allowed = allowed_plugins(list(plugins or []) + env)
    cfg = info["config"]
    try:
        ostudy = optuna.load_study(study_name=study_name, storage=store.optuna_storage())
    except KeyError:
        raise ConfigError(f"study {study_name!r} has no Optuna study in {store.redacted}; "
                          "start it with `automed search`") from None
    # A candidate a Ctrl-C cut short runs again first, as a resumed search runs it (QA: a
    # worker that rejoined ran new candidates and the budget was spent without it).
    retry_interrupted(ostudy)
    leader = store.leaderboard(study_name, top=1)
    progress({"event": "start", "study": study_name, "storage": store.redacted,
              # the stored dataset, as far as the leader read it (QA: "data: sig")
              "dataset": f"{info['dataset']}: {info.get('n_samples')} {info.get('modality')} "
                         f"samples, {len(info.get('classes') or [])} classes (read by each "
                         "worker from the search's path)",
              "architectures": cfg["architectures"],
              "folds": cfg["folds"], "metric": info["metric"], "trials": cfg.get("trials"),
              "objective": objective_words(cfg, info["metric"], info.get("classes") or []),
              "done": counted_trials(ostudy), "resumed": True,
              "best": leader[0]["score_mean"] if leader else None,
              "device": ", ".join(sorted({s.device for s in slots})), "workers": len(slots)})
    ends_at = study_ends_at(store, info)
    if ends_at is not None:
        left = ends_at - time.time()
        if left <= 0:
            progress({"event": "note", "message": f"study {study_name!r} searched to its "
                      f"--timeout of {cfg.get('timeout'):g} s, which ended "
                      f"{time.strftime('%H:%M:%S', time.localtime(ends_at))}: this worker runs "
                      "no candidate (the study's `automed search` command, run again, "
                      "resumes it with a new --timeout)"})
            return len(store.candidates(study_name))
    # One end, in wall time: a worker's own --timeout and the study's, whichever comes first,
    # however long the worker then takes to load the data (review: it counted from after)
    own = None if timeout is None else time.time() + timeout
    ends = min((t for t in (own, ends_at) if t is not None), default=None)
    me = identity or machine_identity()
    if len(slots) == 1:  # its candidates' lines, as a search prints them (QA: none)
        worker_main(store.url, study_name, slots[0], identity=me, allowed_plugins=allowed,
                    ends_at=ends, threads=threads, progress=progress)
    else:
        run_local_workers(store, study_name, slots, allowed_plugins=allowed,
                          timeout=None if ends is None else max(0.0, ends - time.time()),
                          progress=progress, identity=me, threads=threads)
    _mark_searched(store, study_name)
    return len(store.candidates(study_name))


def study_ends_at(store, info: dict) -> float | None:
    """When a joining worker stops starting candidates (seconds since the epoch): the end of
    the search session running now (its leader records it), or, for a study made with
    ``search --workers 0 --timeout T``, T after the first worker joined (it records it).
    None when the study has no --timeout. QA: `automed worker` ignored the study's
    --timeout and trained on after the leader had answered."""
    cfg = info.get("config") or {}
    if cfg.get("timeout") is None:
        return None
    ends = cfg.get("search_ends_at")
    if ends is None and info.get("status") == "created":
        ends = time.time() + float(cfg["timeout"])
        store.update_search_config(info["id"], search_ends_at=ends)
    return None if ends is None else float(ends)


def _mark_searched(store, study_name: str) -> None:
    """A study only workers ran (``search --workers 0``) said "created" however many
    candidates they trained: once its ``--trials`` budget is used it says "searched" (the
    answer and its test scores come from the ``automed search`` command that created it)."""
    import optuna

    from automed.searching.study import counted_trials

    info = store.search(study_name)
    trials = (info["config"] or {}).get("trials")
    if info["status"] != "created" or trials is None:
        return
    study = optuna.load_study(study_name=study_name, storage=store.optuna_storage())
    if counted_trials(study) >= trials:
        store.finish_search(info["id"], status="searched")
