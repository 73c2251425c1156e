"""Placement and parallel workers: several processes on one study, and a killed worker's
candidate retried. Runs on SQLite always and on the PostgreSQL server when one answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from automed.errors import ConfigError
from automed.searching import devices
from automed.searching.devices import Slot, plan_slots
from automed.searching.runner import search
from automed.storage import Store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def test_cpu_slots_divide_the_cores(monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: [])
    monkeypatch.setattr(devices, "cpu_count", lambda: 8)
    assert plan_slots() == [Slot("cpu", 8)]
    assert plan_slots(workers=4) == [Slot("cpu", 2)] * 4
    assert plan_slots(gpus="none", workers=3) == [Slot("cpu", 2)] * 3
    with pytest.raises(ConfigError, match="GPU 0 is not visible; visible: none"):
        plan_slots(gpus="0")
    with pytest.raises(ConfigError, match="not all, none or a list"):
        plan_slots(gpus="first")


def test_gpu_slots_honour_the_list_and_trials_per_gpu(monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(devices, "cpu_count", lambda: 16)
    assert [s.device for s in plan_slots()] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    slots = plan_slots(gpus="0,2", trials_per_gpu=3)
    assert [s.device for s in slots] == ["cuda:0"] * 3 + ["cuda:2"] * 3
    assert {s.threads for s in slots} == {2}
    assert [s.device for s in plan_slots(gpus="none", workers=2)] == ["cpu", "cpu"]
    with pytest.raises(ConfigError, match="GPU 7 is not visible; visible: 0, 1, 2, 3"):
        plan_slots(gpus="7")


def _postgres_url() -> str:
    """A fresh database on the local PostgreSQL server, or skip."""
    try:
        import psycopg

        conn = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test",
                               autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no PostgreSQL server answers at 127.0.0.1:5432 ({exc.__class__.__name__})")
    name = f"automed_test_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop_postgres(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[-1]
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test",
                         autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_storage(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    url = _postgres_url()
    try:
        yield url
    finally:
        from sqlalchemy.pool import NullPool  # noqa: F401 - engines are process-local

        _drop_postgres(url)


def _assert_consistent(url: str, study_name: str, budget: int) -> None:
    """Every finished Optuna trial has exactly one automed record, and none is lost."""
    study = optuna.load_study(study_name=study_name, storage=url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    rows = Store(url).candidates(study_name)
    numbers = Counter(r["trial"] for r in rows)
    assert all(n == 1 for n in numbers.values())
    assert {t.number for t in finished} <= set(numbers)
    assert len(finished) >= budget
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_two_local_workers_share_one_study(any_storage, demo_image):
    result = search(demo_image, trials=4, folds=2, max_epochs=1, workers=2, heartbeat=1,
                    storage=any_storage)
    _assert_consistent(any_storage, result.study, 4)
    devices_used = {r["device"] for r in Store(any_storage).candidates(result.study)}
    assert devices_used == {"cpu"}
    assert result.test_scores is not None


def _worker(url: str, study: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "automed.cli", "worker", "--study", study,
                             "--storage", url, "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _has_heartbeat(url: str, trial_id: int) -> bool:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.exec_driver_sql(
                f"SELECT count(*) FROM trial_heartbeats WHERE trial_id = {int(trial_id)}"
            ).scalar())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_killed_worker_candidate_is_retried(any_storage, tmp_path):
    from automed.demo import make_demo

    data = make_demo("image", tmp_path / "kill.npz", n=240)
    created = search(data, trials=3, folds=2, max_epochs=8, workers=0, heartbeat=1,
                     storage=any_storage, prune=False)
    study = optuna.load_study(study_name=created.study, storage=any_storage)
    victim = _worker(any_storage, created.study)
    deadline = time.monotonic() + 120
    while not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        assert time.monotonic() < deadline, victim.communicate()
        time.sleep(0.2)
    killed = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))[0]
    # Kill it while the candidate trains: after its first heartbeat (Optuna judges staleness
    # by heartbeats), before it can finish.
    while not _has_heartbeat(any_storage, killed._trial_id):
        assert time.monotonic() < deadline, victim.communicate()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = _worker(any_storage, created.study)
    out, err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, err
    trials = study.get_trials(deepcopy=False)
    killed = trials[killed.number]  # as it stood when the worker died
    assert killed.state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    # the retry repeats what the dead worker had drawn (it may have died before drawing all)
    assert killed.params.items() <= retried[0].params.items()
    rows = {r["trial"]: r for r in Store(any_storage).candidates(created.study)}
    assert rows[killed.number]["state"] == "failed"
    assert "WorkerLost" in rows[killed.number]["error"]
    _assert_consistent(any_storage, created.study, 3)



def _ignore_ctrl_c_and_sleep(ready) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready.set()
    time.sleep(60)


def _stop_at_ctrl_c(ready) -> None:
    from automed.searching.interrupts import stop_handler  # a worker's: the first stops it

    signal.signal(signal.SIGINT, stop_handler)
    try:
        ready.set()
        time.sleep(60)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def test_stopping_workers_kills_only_the_late_one_and_says_so():
    # A worker that has not marked its candidate within the wait is killed, and the leader
    # says so (its candidate comes back only when its heartbeat is stale).
    import multiprocessing

    from automed.searching.workers import _stop

    ctx = multiprocessing.get_context("spawn")
    ready = [ctx.Event(), ctx.Event()]
    late = ctx.Process(target=_ignore_ctrl_c_and_sleep, args=(ready[0],))
    prompt = ctx.Process(target=_stop_at_ctrl_c, args=(ready[1],))
    late.start()
    prompt.start()
    assert all(r.wait(60) for r in ready)
    with pytest.warns(UserWarning, match=r"^1 worker\(s\) did not stop within 5 s and were "
                                         r"killed"):
        _stop([late, prompt], 5.0)
    assert prompt.exitcode == 130 and late.exitcode == -signal.SIGKILL


def test_a_local_worker_budget_ends_when_the_leaders_does(demo_signal, tmp_path):
    # A leader's workers got --timeout from their own start (imports, data), so a search with
    # --timeout 10 and two workers overran; they get the leader's end time now. One that
    # starts after it runs a candidate only while none has completed (a search always
    # answers), else none; one with time left runs them.
    from automed.searching.workers import worker_main

    url = f"sqlite:///{tmp_path / 'ends.db'}"
    search(demo_signal, trials=2, folds=2, max_epochs=1, workers=0, storage=url, study="e",
           prune=False)

    def states() -> list[str]:
        return [c["state"] for c in Store(url).candidates("e")]

    for late in ("late-first", "late-second"):
        worker_main(url, "e", Slot("cpu", 1), identity=late, allowed_plugins=None,
                    timeout=3600, ends_at=time.time() - 1)
        assert states() == ["complete"]
    worker_main(url, "e", Slot("cpu", 1), identity="on-time", allowed_plugins=None,
                ends_at=time.time() + 3600)
    assert states() == ["complete", "complete"]


def _report_ctrl_c_handling(queue) -> None:
    queue.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def _listen_late(ready) -> None:
    # Like a worker still importing when the stop comes: deaf to SIGINT for a while.
    from automed.searching.interrupts import stop_handler

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready.set()
    time.sleep(1.5)
    signal.signal(signal.SIGINT, stop_handler)
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def test_workers_start_deaf_to_ctrl_c_and_the_stop_is_repeated_until_heard():
    # QA: a Ctrl-C while a worker still imported printed its traceback, and one that came
    # before its handler was lost: that worker started candidates after the stop and was
    # killed with them RUNNING. Workers start with SIGINT ignored (their handler comes in
    # _child), and the leader sends the stop again until each has heard it.
    import multiprocessing

    from automed.searching.workers import _start_ignoring_ctrl_c, _stop

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    before = signal.getsignal(signal.SIGINT)
    probe = ctx.Process(target=_report_ctrl_c_handling, args=(queue,))
    _start_ignoring_ctrl_c([probe])
    assert queue.get(timeout=60) is True
    probe.join(30)
    assert signal.getsignal(signal.SIGINT) is before  # the leader's own is back
    ready = ctx.Event()
    late = ctx.Process(target=_listen_late, args=(ready,))
    late.start()
    assert ready.wait(60)
    _stop([late], 20.0)  # the first SIGINT is ignored; a later one is heard
    assert late.exitcode == 130


def test_a_study_only_workers_ran_says_searched_then_its_search_answers(demo_signal, tmp_path,
                                                                        capsys, monkeypatch):
    # QA: a study run by `automed worker` alone said "created" with its budget used.
    from clirun import run_cli

    url = f"sqlite:///{tmp_path / 'w.db'}"
    opts = dict(trials=1, folds=2, max_epochs=1, storage=url, study="w", bootstrap=0)
    search(demo_signal, workers=0, **opts)
    assert Store(url).search("w")["status"] == "created"
    code, _, err = run_cli(monkeypatch, capsys, "worker", "--study", "w", "--storage", url)
    assert code in (0, None), err
    assert Store(url).search("w")["status"] == "searched"
    assert "its --trials budget is used: the `automed search` command that created it" in err
    # its objective and its candidates' lines, as a search prints them (QA: a worker said
    # "2-fold CV by accuracy" of a grouped f1 study, and printed no candidate)
    assert "2-fold CV by accuracy; architectures:" in err
    assert "[  1/1] #0" in err
    result = search(demo_signal, **opts)  # step 4 of the README: answer and score
    assert Store(url).search("w")["status"] == "complete" and result.test_scores


def test_a_study_whose_workers_stopped_early_says_how_far_they_got(demo_signal, tmp_path,
                                                                   capsys, monkeypatch):
    # QA: a `search --workers 0` study read "created" in studies, show, leaderboard and the
    # report after its workers ran candidates and were stopped before the budget.
    from clirun import run_cli

    url = f"sqlite:///{tmp_path / 'w.db'}"
    search(demo_signal, workers=0, trials=3, folds=2, max_epochs=1, storage=url, study="w",
           bootstrap=0)
    code, out, _ = run_cli(monkeypatch, capsys, "studies", "--storage", url)
    assert " created " in out and "workers ran" not in out  # no candidate yet
    code, _, err = run_cli(monkeypatch, capsys, "worker", "--study", "w", "--storage", url,
                           "--timeout", "0.001")
    assert code in (0, None), err
    assert Store(url).search("w")["status"] == "created"  # the stored word is kept
    said = "created; workers ran 1 of 3 candidates"
    for command in (["studies"], ["show", "w"], ["leaderboard", "--study", "w"]):
        code, out, err = run_cli(monkeypatch, capsys, *command, "--storage", url)
        assert code in (0, None) and said in out + err, (command, out, err)
    report = tmp_path / "r.html"
    code, _, err = run_cli(monkeypatch, capsys, "report", "w", "-o", str(report),
                           "--storage", url)
    assert code in (0, None), err
    assert said in report.read_text()


@pytest.mark.parametrize("where", ["ask", "tell"])
def test_a_workers_stop_between_candidates_leaves_no_trial_running(where):
    """CI (under load): a stop landing in Optuna's ask (its trial written RUNNING, the
    objective not yet entered) or tell (the objective returned, its end not yet written) left
    that trial RUNNING. A worker's handler defers it there to the next safe point: the
    objective's entry (the trial fails as interrupted) or the trial's end."""
    import os

    import optuna

    from automed.searching import interrupts
    from automed.searching.study import _optimize

    study = optuna.create_study()
    storage = study._storage
    method = "create_new_trial" if where == "ask" else "set_trial_state_values"
    original = getattr(storage, method)
    ran = []

    def stop_inside(*args, **kwargs):
        if where == "tell" or not ran:  # the stop arrives while Optuna writes
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    def objective(trial):  # as automed's Objective enters its candidate
        with interrupts.candidate_section():
            ran.append(trial.number)
            return 1.0

    setattr(storage, method, stop_inside)
    previous = signal.signal(signal.SIGINT, interrupts.stop_handler)
    interrupts.reset_stop()
    try:
        with pytest.raises(KeyboardInterrupt):
            _optimize(study, objective, timeout=None, n_trials=5)
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts.reset_stop()
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert optuna.trial.TrialState.RUNNING not in states, states
    if where == "ask":  # stopped at the objective's entry: nothing ran
        assert ran == [] and states == [optuna.trial.TrialState.FAIL]
    else:  # the trial's end was written, then it stopped
        assert ran == [0] and states == [optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("presses", [1, 2])
def test_a_ctrl_c_between_candidates_of_a_single_process_search_leaves_no_trial_running(presses):
    """As a worker's stop (above), a single-process search's first Ctrl-C landing in Optuna's
    ask left its trial RUNNING (until a resume found its heartbeat stale); it now waits for the
    objective's entry. A second Ctrl-C stops at once, as Python's own does, and the process's
    handler is its own again afterwards."""
    import os

    import optuna

    from automed.searching.study import run_trials

    study = optuna.create_study()
    storage = study._storage
    original = storage.create_new_trial
    ran, asked = [], []

    def stop_inside(*args, **kwargs):
        number = original(*args, **kwargs)  # the trial is written RUNNING
        if not asked:
            asked.append(True)
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
        return number

    def objective(trial):
        from automed.searching import interrupts

        with interrupts.candidate_section():
            ran.append(trial.number)
            return 1.0

    storage.create_new_trial = stop_inside
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_trials(objective, study, trials=5, timeout=None, heartbeat=1.0)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert ran == []
    if presses == 1:  # stopped at the objective's entry: the trial failed, none is RUNNING
        assert states == [optuna.trial.TrialState.FAIL]
    else:  # stopped inside ask, at once: its trial stays RUNNING for a resume to retry
        assert states == [optuna.trial.TrialState.RUNNING]


def test_a_retry_trains_with_the_seeds_of_the_candidate_it_reruns():
    # QA: a candidate cut short by Ctrl-C was retried under its new trial number's seeds, so
    # a resumed --seed --deterministic search scored it otherwise (0.9062 against 0.9083)
    import optuna

    from automed.searching.study import seed_number

    study = optuna.create_study()
    fresh = study.ask()
    assert seed_number(fresh) == fresh.number == 0
    study.tell(fresh, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"x": 1}, user_attrs={"retry_of": 0})
    retry = study.ask()
    assert retry.number == 1 and seed_number(retry) == 0
    stale = study.ask()  # as Optuna's stale-trial sweep marks a lost worker's candidate
    study._storage.set_trial_system_attr(stale._trial_id, "failed_trial", 5)
    assert seed_number(stale) == 5
    lost = optuna.trial.create_trial(params={}, distributions={}, value=None,
                                     state=optuna.trial.TrialState.WAITING,
                                     system_attrs={"failed_trial": 3})
    assert seed_number(lost) == 3
    plain = optuna.trial.create_trial(params={}, distributions={}, value=1.0)
    assert seed_number(plain) == plain.number


def test_a_heard_stop_leaves_later_ones_to_the_os_to_ignore(monkeypatch):
    # CI (now and then): the leader repeats its stop every second, and one landing while an
    # exiting worker's Python shut down (its handlers gone) killed it with SIGINT, not 130.
    from automed.searching import interrupts

    monkeypatch.setitem(interrupts._worker, "pending", None)
    monkeypatch.setitem(interrupts._worker, "armed", True)  # between candidates: deferred
    monkeypatch.setitem(interrupts._worker, "inside", False)
    before = signal.signal(signal.SIGINT, interrupts.stop_handler)  # as _child installs it
    try:
        interrupts.stop_handler(signal.SIGINT, None)
        assert interrupts._worker["pending"] is KeyboardInterrupt
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_worker_runs_again_a_candidate_a_ctrl_c_cut_short(demo_signal, tmp_path, capsys,
                                                            monkeypatch):
    # QA: `automed worker` rejoining a study ran new candidates and spent the budget, while
    # the interrupted one (which leaderboard --all said would run again) never ran
    import optuna
    from clirun import run_cli

    url = f"sqlite:///{tmp_path / 'w.db'}"
    search(demo_signal, workers=0, trials=2, folds=2, max_epochs=1, storage=url, study="w",
           bootstrap=0, architectures=["mlp"])
    ostudy = optuna.load_study(study_name="w", storage=Store(url).optuna_storage())
    ostudy.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, params={"architecture": "mlp"},
        distributions={"architecture": optuna.distributions.CategoricalDistribution(["mlp"])},
        user_attrs={"interrupted": True, "automed_state": "interrupted"}))
    cut = ostudy.trials[-1].number
    code, _, err = run_cli(monkeypatch, capsys, "worker", "--study", "w", "--storage", url)
    assert code in (0, None), err
    assert re.search(r"  data: demo_signal: \d+ signal samples, 2 classes \(read by each "
                     r"worker", err), err
    ran = [t for t in ostudy.get_trials() if t.state != optuna.trial.TrialState.FAIL]
    assert len(ran) == 2 and cut in [t.user_attrs.get("retry_of") for t in ran], \
        [(t.number, t.state, t.user_attrs) for t in ostudy.get_trials()]


def test_a_stop_whose_raise_was_lost_is_raised_at_the_next_training_step():
    # QA: a worker's stop raised inside a weakref callback was discarded by Python and the
    # worker trained on until it was killed 30 s later
    from automed.searching import interrupts

    interrupts.reset_stop()
    try:
        interrupts.check_stop()  # nothing asked: nothing raised
        with interrupts.candidate_section():
            interrupts._worker.update(pending=KeyboardInterrupt, raised=True)  # raised, lost
            with pytest.raises(KeyboardInterrupt):
                interrupts.check_stop()
        interrupts.check_stop()  # outside a candidate (the answer's refit): left to the loop
    finally:
        interrupts.reset_stop()


def test_a_joining_worker_stops_at_the_studys_timeout(demo_signal, tmp_path, capsys,
                                                      monkeypatch):
    # QA: `automed worker` ignored the study's --timeout: on a `--workers 0 --timeout 20`
    # study it trained 122 candidates in 75 s until killed, and beside a leader it went on
    # 70 s past the leader's answer
    from clirun import run_cli

    url = f"sqlite:///{tmp_path / 'w.db'}"
    opts = dict(folds=2, max_epochs=1, storage=url, bootstrap=0, trials=40)
    search(demo_signal, workers=0, timeout=2, study="t", **opts)
    assert Store(url).search("t")["config"]["search_ends_at"] is None  # no worker yet
    code, _, err = run_cli(monkeypatch, capsys, "worker", "--study", "t", "--storage", url)
    assert code in (0, None), err
    ran = len(Store(url).candidates("t"))
    assert 1 <= ran < 40, err  # the first worker started the study's 2 s clock
    ends = Store(url).search("t")["config"]["search_ends_at"]
    assert ends is not None
    time.sleep(max(0.0, ends - time.time()))  # it may stop early: no time for another
    ran = len(Store(url).candidates("t"))
    code, _, err = run_cli(monkeypatch, capsys, "worker", "--study", "t", "--storage", url)
    assert code in (0, None) and "searched to its --timeout of 2 s, which ended" in err
    assert "this worker runs no candidate" in err and len(Store(url).candidates("t")) == ran
    # a leader's session: workers that join after it end run nothing either
    done = search(demo_signal, timeout=2, study="lead", **opts)
    n = len(done.leaderboard)
    code, _, err = run_cli(monkeypatch, capsys, "worker", "--study", "lead", "--storage", url)
    assert code in (0, None) and "this worker runs no candidate" in err
    assert len(Store(url).leaderboard("lead")) == n


def test_a_resume_whose_budget_is_used_starts_no_worker_processes(demo_signal, tmp_path,
                                                                  monkeypatch):
    # QA: re-running a finished --workers 2 search spent 10 s starting workers that ran nothing
    from automed.searching import runner

    url = f"sqlite:///{tmp_path / 'w.db'}"
    opts = dict(trials=2, folds=2, max_epochs=1, storage=url, bootstrap=0, workers=2,
                study="done")
    search(demo_signal, **opts)

    def started(*args, **kwargs):
        raise AssertionError("worker processes started for a used budget")

    monkeypatch.setattr(runner, "run_local_workers", started)
    again = search(demo_signal, **opts)
    assert again.resumed and len(Store(url).candidates("done")) >= 2
    with pytest.raises(AssertionError, match="worker processes started"):
        search(demo_signal, **{**opts, "trials": 3})  # budget left: they start


def test_a_worker_stops_after_its_candidate_once_the_session_has_ended(demo_signal, tmp_path):
    # review: a worker that joined a timed search trained on to the planned end after its
    # leader had ended the search early (to keep time for its answer) and answered
    from automed.searching.workers import _SessionEnd

    url = f"sqlite:///{tmp_path / 'w.db'}"
    search(demo_signal, workers=0, timeout=600, trials=2, folds=2, max_epochs=1, storage=url,
           study="s", bootstrap=0)

    class Study:
        stopped = False

        def stop(self):
            self.stopped = True

    store, study = Store(url), Study()
    search_id = store.search("s")["id"]
    store.update_search_config(search_id, search_ends_at=time.time() + 600)
    _SessionEnd(store, "s")(study, None)
    assert not study.stopped
    store.update_search_config(search_id, search_ends_at=time.time() - 1)  # the leader ended
    _SessionEnd(store, "s")(study, None)
    assert study.stopped


def test_workers_all_stopped_by_a_ctrl_c_the_leader_lost_end_as_an_interruption():
    # CI: the leader's Ctrl-C was swallowed in a garbage-collection callback ("Exception
    # ignored in ..."); its workers exited 130 and the search ended "all 2 workers stopped
    # with an error", exit 2, not as interrupted
    from types import SimpleNamespace

    from automed.errors import AutomedError
    from automed.searching.workers import INTERRUPTED_EXIT, _judge_exits

    with pytest.raises(KeyboardInterrupt):
        _judge_exits([SimpleNamespace(exitcode=INTERRUPTED_EXIT)] * 2)
    with pytest.raises(AutomedError, match="all 2 workers stopped with an error"):
        _judge_exits([SimpleNamespace(exitcode=INTERRUPTED_EXIT), SimpleNamespace(exitcode=1)])
    _judge_exits([SimpleNamespace(exitcode=0), SimpleNamespace(exitcode=INTERRUPTED_EXIT)])
