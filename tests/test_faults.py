"""Budgets are totals and faults leave the truth behind.

- ``--trials N`` never runs more than N candidates, with one worker or several, including
  after Ctrl-C, SIGKILL and a resume with a changed budget (a candidate cut short by the
  fault is retried and does not count).
- SIGINT and SIGKILL during the search and during the refit leave a status that says what
  happened, no traceback, and a re-run that completes with a saved model.
- Two searches started at once on a new database both complete.

The fault tests use ``tests/sleepy_arch.py``, which hangs in a chosen ``build`` and says so
on stderr, so each signal lands inside a candidate or inside the refit, never by luck.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from store_rows import postgres_url

from automed.demo import make_demo
from automed.searching.runner import search
from automed.storage import Store

SLEEPY = str(Path(__file__).with_name("sleepy_arch.py"))
MARKER = "automed-test: sleeping in build"
COMMON = ["--folds", "2", "--arch", "sleepy", "--plugin", SLEEPY, "--no-prune",
          "--bootstrap", "0", "--heartbeat", "1", "-q"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_demo("signal", tmp_path_factory.mktemp("faults") / "ecg.npz", n=60, seed=2)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path, monkeypatch):
    """A new database for one fault test: a SQLite file, or one on the PostgreSQL server."""
    monkeypatch.chdir(tmp_path)  # models of a PostgreSQL study go to ./automed_models
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'faults.db'}"
        return
    with postgres_url() as url:
        yield url


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    env.pop("AUTOMED_STORAGE", None)
    return env


def _hear_ctrl_c() -> None:
    # pytest started in the background (`cmd &` ignores SIGINT, and children inherit that)
    # would start a search deaf to Ctrl-C; one started from a terminal hears it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    # A session of its own: the signal goes to the whole group, like Ctrl-C in a terminal.
    return subprocess.Popen([sys.executable, "-m", "automed.cli", *args], cwd=cwd,
                            env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_hear_ctrl_c)


def _signal_at_marker(proc: subprocess.Popen, sig: int, timeout: float = 240, *,
                     group: bool = True) -> tuple[int, str]:
    """Wait for the sleeping marker on stderr, signal the process group (or, with
    ``group=False``, the leader alone, as ``kill PID`` does), return (rc, stderr)."""
    lines = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(MARKER):
            break
        assert time.monotonic() < deadline, "".join(lines)
    else:
        proc.wait()
        pytest.fail(f"the process ended before the marker (rc {proc.returncode}):\n"
                    + "".join(lines))
    (os.killpg if group else os.kill)(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # leave no worker sleeping behind
        raise
    return proc.returncode, "".join(lines) + err


def _budget(url: str, study: str) -> dict:
    """What ran: counted (complete, pruned, failed by itself), cut short, waiting, running."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.user_attrs.get("automed_state") == "failed")]
    # A surplus trial (two workers asked for the last unit of budget at once; the later one
    # stops before it builds anything) is neither a candidate nor cut short.
    ran = [t for t in trials if t.state != TrialState.WAITING
           and t.user_attrs.get("automed_state") != "surplus"]
    return {"counted": len(counted), "cut_short": len(ran) - len(counted),
            "running": sum(t.state == TrialState.RUNNING for t in trials),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials)}


def _running(url: str, study: str) -> list[tuple]:
    """What a RUNNING trial holds: which worker took it and how far it got (for a failure)."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    return [(t.number, t.datetime_start, t.params, t.user_attrs, t.system_attrs)
            for t in trials if t.state == TrialState.RUNNING]


def _status(url: str, study: str) -> str:
    return Store(url, create=False).search(study)["status"]


def _resume(data: Path, url: str, study: str, trials: int, workers: int | None = None,
            refit_full: bool = False):
    return search(data, trials=trials, folds=2, architectures=["sleepy"], plugins=[SLEEPY],
                  prune=False, bootstrap=0, heartbeat=1, storage=url, study=study,
                  workers=workers, refit_full=refit_full)


def _interrupted(url: str, study: str) -> list[int]:
    """Candidates the leaderboard lists as interrupted, each a trial Optuna failed as one."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    marked = sorted(t.number for t in trials
                    if t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))
    shown = [c["trial"] for c in Store(url, create=False).candidates(study)
             if c["state"] == "interrupted"]
    assert shown == marked, (shown, marked)
    return shown


def _clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "KeyError" not in stderr, stderr


# -- the progress printer ------------------------------------------------------------------

def test_progress_counts_only_budget_and_never_past_it(capsys):
    from automed.cli import _Progress

    progress = _Progress(quiet=False)
    progress({"event": "start", "study": "s", "storage": "sqlite://", "dataset": "d",
              "folds": 2, "metric": "accuracy", "architectures": ["cnn"], "device": "cpu",
              "trials": 2, "done": 1, "resumed": True})
    base = {"event": "candidate", "architecture": "cnn", "score_mean": None,
            "score_std": None, "folds_done": 0, "duration_s": 1.0, "error": None}
    progress({**base, "trial": 1, "state": "interrupted"})  # Ctrl-C: not counted, no KeyError
    progress({**base, "trial": 2, "state": "failed",
              "error": "WorkerLost: the worker stopped sending heartbeats"})
    progress({**base, "trial": 3, "state": "complete", "score_mean": 0.5, "score_std": 0.1})
    progress({**base, "trial": 4, "state": "complete", "score_mean": 0.6, "score_std": 0.1})
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[")]
    assert [ln.split("]")[0] for ln in lines] == ["[  -/2", "[  -/2", "[  2/2", "[  3"]
    assert "interrupted" in lines[0]


# -- budgets -------------------------------------------------------------------------------

def test_one_worker_never_runs_more_than_the_budget(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    # Every family's default is queued; --trials 1 must still run exactly one candidate.
    result = search(data, trials=1, folds=2, max_epochs=1, storage=url, bootstrap=0,
                    architectures=["cnn", "mlp", "sleepy"], plugins=[SLEEPY])
    assert _budget(url, result.study) == {"counted": 1, "cut_short": 0, "running": 0,
                                          "complete": 1}
    # A resume with a larger budget runs only the difference, a smaller one nothing.
    search(data, trials=3, folds=2, max_epochs=1, storage=url, bootstrap=0,
           architectures=["cnn", "mlp", "sleepy"], plugins=[SLEEPY])
    assert _budget(url, result.study)["counted"] == 3
    search(data, trials=2, folds=2, max_epochs=1, storage=url, bootstrap=0,
           architectures=["cnn", "mlp", "sleepy"], plugins=[SLEEPY])
    assert _budget(url, result.study)["counted"] == 3
    assert _status(url, result.study) == "complete"


@pytest.mark.slow
def test_several_workers_stay_within_budget_and_a_resume_adds_to_it(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    first = _resume(data, url, "w", trials=2, workers=2)
    b = _budget(url, first.study)
    assert b["counted"] == 2 and b["running"] == 0
    # The resumed workers read this run's budget, not the first run's.
    _resume(data, url, "w", trials=4, workers=2)
    b = _budget(url, "w")
    assert b["counted"] == 4 and b["running"] == 0
    assert _status(url, "w") == "complete"


def test_a_trial_started_past_the_budget_by_a_race_is_not_a_candidate(data, tmp_path):
    # Two workers that check the budget at the same moment both ask for a trial; the one
    # numbered later must not train, count or appear, and its worker must stop.
    from automed.searching import study as study_module

    url = f"sqlite:///{tmp_path / 'r.db'}"
    result = search(data, trials=2, folds=2, max_epochs=1, storage=url, bootstrap=0,
                    architectures=["cnn"])
    before = Store(url).candidates(result.study)
    original, checks = study_module.Budget.used, []

    def missed_once(self, study):  # the race: the first check misses the budget going
        checks.append(1)
        return False if len(checks) == 1 else original(self, study)

    study_module.Budget.used = missed_once
    try:
        search(data, trials=2, folds=2, max_epochs=1, storage=url, bootstrap=0,
               architectures=["cnn"])
    finally:
        study_module.Budget.used = original
    trials = optuna.load_study(study_name=result.study, storage=url).trials
    late = [t for t in trials if t.user_attrs.get("automed_state") == "surplus"]
    assert [t.state for t in late] == [TrialState.FAIL] and late[0].number == 2
    assert _budget(url, result.study)["counted"] == 2 and len(trials) == 3
    assert len(Store(url).candidates(result.study)) == len(before) == 2


def test_surplus_counts_only_earlier_trials_that_use_budget():
    from automed.searching.study import surplus

    study = optuna.create_study()
    for _ in range(2):
        study.tell(study.ask(), 0.5)
    cut = study.ask()
    cut.set_user_attr("interrupted", True)
    study.tell(cut, state=TrialState.FAIL)  # a Ctrl-C: not budget
    own = study.ask()  # number 3, running
    assert not surplus(study, own.number, 3)
    later = study.ask()  # number 4 is after ours: it does not push ours out
    assert not surplus(study, own.number, 3) and surplus(study, later.number, 3)
    assert surplus(study, own.number, 2) and not surplus(study, own.number, None)


class _Rows:
    """The few store calls the stale-trial callback makes, kept as (trial, state, error)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str | None]] = []

    def record_candidate(self, search_id: int, trial: int, **fields) -> None:
        self.rows.append((trial, fields["state"], fields.get("error")))
        self.params = fields.get("params")


def _queued_study(tmp_path: Path, starts: int) -> tuple[optuna.Study, _Rows]:
    """A heartbeat study as open_study makes it, with ``starts`` queued family starts."""
    from automed.searching.study import _stale_callback, retries_first

    rows = _Rows()
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'q.db'}", heartbeat_interval=1, grace_period=2,
        heartbeat_stale_trial_callback=_stale_callback(rows, 0))
    study = retries_first(optuna.create_study(storage=storage, study_name="q",
                                              direction="maximize"))
    for x in range(starts):
        study.enqueue_trial({"x": x})
    return study, rows


def _objective(trial: optuna.Trial) -> float:
    return float(trial.suggest_int("x", 0, 99))


def _outcome(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    return {"complete": sorted(t.params["x"] for t in trials
                               if t.state == TrialState.COMPLETE),
            "waiting retries": [t.number for t in trials if t.state == TrialState.WAITING
                                and ("failed_trial" in t.system_attrs
                                     or "retry_of" in t.user_attrs)],
            "running": [t.number for t in trials if t.state == TrialState.RUNNING]}


def test_a_lost_candidate_runs_again_before_the_budget_is_used(tmp_path):
    # The QA repro without training: six family starts queued, a budget of four; start #1
    # was running on a worker killed with SIGKILL (its heartbeat long stale). Its retry is
    # queued behind starts #2..#5, and must still run: it takes #1's place in the budget.
    from automed.searching.study import counted_trials, run_trials

    study, rows = _queued_study(tmp_path, starts=6)
    with pytest.warns(UserWarning, match="Heartbeat"):  # asked outside optimize, on purpose
        first = study.ask()
        study.tell(first, _objective(first))  # start #0 (x=0) complete
        lost = study.ask()
    _objective(lost)
    study._storage.record_heartbeat(lost._trial_id)
    with sqlite3.connect(tmp_path / "q.db") as conn:  # its last beat, long ago
        conn.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")

    run_trials(_objective, study, trials=4, timeout=None, heartbeat=1)

    assert _outcome(study) == {"complete": [0, 1, 2, 3], "waiting retries": [], "running": []}
    assert counted_trials(study) == 4
    assert [(n, state) for n, state, _ in rows.rows] == [(1, "failed")]
    assert rows.rows[0][2].startswith("WorkerLost")


def test_a_lost_candidates_row_keeps_the_parameters_it_drew(tmp_path):
    # QA: `show STUDY N` of a lost candidate said "params: {}"
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from automed.searching.study import _stale_callback

    study, rows = _queued_study(tmp_path, starts=0)
    lost = optuna.trial.create_trial(
        params={"architecture": "cnn", "cnn.width": 16},
        distributions={"architecture": CategoricalDistribution(["cnn", "mlp"]),
                       "cnn.width": IntDistribution(8, 64)},
        state=TrialState.FAIL)
    study.add_trial(lost)
    _stale_callback(rows, 0)(study, study.get_trials()[0])
    assert rows.rows[0][1] == "failed" and rows.params == {"width": 16}


def test_a_resume_runs_an_interrupted_candidate_before_queued_starts(tmp_path):
    # One-process search: Ctrl-C cut start #1 short; the resume queues it again behind the
    # starts still waiting, and must run it within the budget.
    from automed.searching.study import retry_interrupted, run_trials

    study, _ = _queued_study(tmp_path, starts=6)
    with pytest.warns(UserWarning, match="Heartbeat"):
        first = study.ask()
        study.tell(first, _objective(first))
        cut = study.ask()
    _objective(cut)
    cut.set_user_attr("interrupted", True)
    study.tell(cut, state=TrialState.FAIL)
    retry_interrupted(study)

    run_trials(_objective, study, trials=3, timeout=None, heartbeat=1)

    assert _outcome(study) == {"complete": [0, 1, 2], "waiting retries": [], "running": []}


def test_a_worker_whose_budget_is_held_by_a_waiting_retry_runs_the_retry(tmp_path):
    # Three counted, one retry waiting, budget four: the budget is not used up, and the next
    # worker to join runs the retry, not a queued start.
    from automed.searching.study import Budget, run_trials

    study, _ = _queued_study(tmp_path, starts=6)
    run_trials(_objective, study, trials=3, timeout=None, heartbeat=1)  # x = 0, 1, 2
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params={"x": 50},
        distributions={"x": optuna.distributions.IntDistribution(0, 99)},
        system_attrs={"failed_trial": 1, "retry_history": [1]}))
    assert Budget(4).used(study) and not Budget(5).used(study)
    run_trials(_objective, study, trials=4, timeout=None, heartbeat=1)
    assert _outcome(study) == {"complete": [0, 1, 2, 50], "waiting retries": [],
                               "running": []}


def test_a_retry_keeps_the_place_of_the_candidate_it_replaces():
    # A retry is numbered after candidates that started later than the one it re-runs; in a
    # race for the last unit of budget those yield to it, not it to them.
    from automed.searching.study import surplus

    study = optuna.create_study()
    study.tell(study.ask(), 0.5)  # 0
    lost = study.ask()  # 1: its worker died
    study.tell(lost, state=TrialState.FAIL)
    other = study.ask()  # 2: running on another worker
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params={}, distributions={},
        system_attrs={"failed_trial": 1, "retry_history": [1]}))  # 3, waiting
    retry = study.trials[-1].number
    assert not surplus(study, other.number, 3) and surplus(study, other.number, 2)
    assert not surplus(study, retry, 2) and surplus(study, retry, 1)


# -- SIGINT and SIGKILL during the search and the refit --------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_ctrl_c_during_a_candidate_then_resume_with_a_changed_budget(data, tmp_path, db_url,
                                                                     sig):
    # SIGTERM (kill, a scheduler's stop) stops a search the way Ctrl-C does.
    url = db_url
    proc = _start(["search", str(data), "--storage", url, "--study", "c", "--trials", "3",
                   *COMMON], tmp_path, AUTOMED_TEST_SLEEP_AT="3")  # in candidate #1
    rc, err = _signal_at_marker(proc, sig)
    assert rc == 128 + sig, err
    _clean(err)
    assert err.strip().splitlines()[-1].startswith("interrupted")
    assert _status(url, "c") == "interrupted"
    b = _budget(url, "c")
    assert b == {"counted": 1, "cut_short": 1, "running": 0, "complete": 1}
    assert _interrupted(url, "c") == [1]
    _resume(data, url, "c", trials=4)
    b = _budget(url, "c")
    assert b["counted"] == 4 and b["cut_short"] == 1 and b["running"] == 0
    assert _status(url, "c") == "complete"


@pytest.mark.slow
def test_sigkill_during_a_candidate_then_resume(data, tmp_path, db_url):
    url = db_url
    proc = _start(["search", str(data), "--storage", url, "--study", "k", "--trials", "3",
                   *COMMON], tmp_path, AUTOMED_TEST_SLEEP_AT="3")
    rc, _ = _signal_at_marker(proc, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert _status(url, "k") == "running"  # nothing can write on SIGKILL ...
    # ... but the candidate it was training was listed when it started, and stays listed
    listed = {c["trial"]: c["state"] for c in Store(url, create=False).candidates("k")}
    assert listed == {0: "complete", 1: "running"}
    time.sleep(3.5)  # ... until the dead candidate's heartbeat is stale (grace 3 s)
    result = _resume(data, url, "k", trials=3)
    b = _budget(url, "k")
    assert b["counted"] == 3 and b["cut_short"] == 1 and b["running"] == 0
    assert _status(url, "k") == "complete" and Path(result.artifact).is_dir()
    lost = Store(url, create=False).candidate("k", 1)
    assert lost["state"] == "failed" and lost["error"].startswith("WorkerLost")


@pytest.mark.slow
@pytest.mark.parametrize("sig, mode", [(signal.SIGINT, "folds"), (signal.SIGKILL, "folds"),
                                       (signal.SIGKILL, "refit")],
                         ids=["sigint-fold-models", "sigkill-fold-models", "sigkill-refit"])
def test_a_fault_during_the_answer_leaves_no_model_and_a_true_status(data, tmp_path, sig,
                                                                     mode, db_url):
    url = db_url
    # 2 trials x 2 folds build 4 models; the 5th build is the answer's: the refit's model, or
    # the first fold model of the winner's bag as it is loaded to predict the test set.
    extra = ["--refit-full"] if mode == "refit" else []
    proc = _start(["search", str(data), "--storage", url, "--study", "r", "--trials", "2",
                   *COMMON, *extra], tmp_path, AUTOMED_TEST_SLEEP_AT="5")
    rc, err = _signal_at_marker(proc, sig)
    info = Store(url, create=False).search("r")
    assert not (info["config"] or {}).get("artifact")
    if sig == signal.SIGINT:
        assert rc == 130
        _clean(err)
        assert info["status"] == "interrupted"
    else:
        # what it was doing when it died: making the answer from fold models, or refitting
        assert info["status"] == ("refitting" if mode == "refit" else "answering")
    assert _budget(url, "r")["counted"] == 2
    result = _resume(data, url, "r", trials=2, refit_full=mode == "refit")  # answer and save
    assert _budget(url, "r")["counted"] == 2
    weights = "model.safetensors" if mode == "refit" else "fold-0/model.safetensors"
    assert _status(url, "r") == "complete" and (Path(result.artifact) / weights).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigterm-to-the-leader"])
def test_ctrl_c_with_two_workers_then_resume_keeps_the_total(data, tmp_path, sig, group):
    # Each worker marks its candidate interrupted, as one worker does: none is left RUNNING
    # for a resume to fail as lost. A signal to the leader alone reaches its workers too.
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    proc = _start(["search", str(data), "--storage", url, "--study", "cw", "--trials", "4",
                   "--workers", "2", *COMMON], tmp_path, AUTOMED_TEST_SLEEP_AT="3")
    rc, err = _signal_at_marker(proc, sig, group=group)
    assert rc == 128 + sig, err
    _clean(err)
    assert _status(url, "cw") == "interrupted"
    b = _budget(url, "cw")
    assert b["running"] == 0, (_running(url, "cw"), err)
    # The sleeping one at least; a worker stopped before it drew an architecture ran nothing.
    assert 1 <= len(_interrupted(url, "cw")) <= b["cut_short"] <= 2
    _resume(data, url, "cw", trials=4, workers=2)  # at once: nothing needs to go stale
    b = _budget(url, "cw")
    assert b["counted"] == 4 and b["running"] == 0
    assert b["cut_short"] <= 2  # at most one per worker, each retried once
    assert _status(url, "cw") == "complete"
    errors = [c["error"] or "" for c in Store(url, create=False).candidates("cw")]
    assert not any(e.startswith("WorkerLost") for e in errors), errors


@pytest.mark.slow
def test_the_workers_of_a_leader_killed_with_sigkill_stop_and_mark_their_candidates(
        data, tmp_path):
    # QA: after `kill -9` of `search --workers 2` its workers ran the rest of the budget (and
    # held their devices) while the study read "stopped (process is gone)"
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    proc = _start(["search", str(data), "--storage", url, "--study", "o", "--trials", "300",
                   "--workers", "2", *COMMON], tmp_path, AUTOMED_TEST_SLEEP_AT="3")
    rc, err = _signal_at_marker(proc, signal.SIGKILL, group=False)  # returns once all exit
    assert rc == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while True:  # the session's processes (its workers, their resource tracker) all end
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a worker of the killed leader is still running"
        time.sleep(0.5)
    b = _budget(url, "o")
    assert b["running"] == 0 and b["counted"] < 100, b
    assert len(_interrupted(url, "o")) >= 1  # the sleeping one at least, marked as on SIGTERM


# -- Ctrl-C inside a database query ----------------------------------------------------------

def _interrupt_an_optuna_query(monkeypatch, after_fit: int) -> Callable:
    """From the ``after_fit``-th model fit on, the next query of Optuna's tables on this thread
    is interrupted right after SQLite ran it, as a signal landing there does: its statement is
    left unfinished, and its connection holds the file's write lock (BEGIN IMMEDIATE)."""
    import threading

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import automed.searching.objective as objective

    state = {"fits": 0, "armed": False}
    fit = objective.fit_model

    def counting_fit(*args, **kwargs):
        state["fits"] += 1
        state["armed"] = state["fits"] >= after_fit
        return fit(*args, **kwargs)

    def trap(conn, cursor, statement, parameters, context, executemany) -> None:
        if (state["armed"] and threading.current_thread() is threading.main_thread()
                and statement.lstrip().upper().startswith("SELECT")
                and "automed_" not in statement and "FROM trials" in statement):
            state["armed"] = False
            state["fits"] = -10**9  # once
            raise KeyboardInterrupt

    monkeypatch.setattr(objective, "fit_model", counting_fit)
    event.listen(Engine, "after_cursor_execute", trap)
    return trap


@pytest.mark.slow
@pytest.mark.parametrize("after_fit", [1, 2], ids=["first-fold", "second-fold"])
def test_ctrl_c_inside_a_query_marks_the_candidate_without_waiting_on_its_own_lock(
        data, tmp_path, monkeypatch, after_fit):
    # The interrupted query's connection kept SQLite's write lock while the exception lived:
    # marking the candidate interrupted waited out the 60 s busy timeout and failed with
    # "database is locked" (two workers stopped this way were killed, their candidates left
    # RUNNING). The lock is freed first now, and the marks are written at once.
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    url = f"sqlite:///{tmp_path / 'q.db'}"
    trap = _interrupt_an_optuna_query(monkeypatch, after_fit)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            search(data, trials=2, folds=2, architectures=["sleepy"], plugins=[SLEEPY],
                   prune=False, bootstrap=0, heartbeat=1, storage=url, study="q")
    finally:
        event.remove(Engine, "after_cursor_execute", trap)
    assert time.monotonic() - started < 40  # not one busy timeout (60 s)
    assert _status(url, "q") == "interrupted"
    b = _budget(url, "q")
    assert b["running"] == 0 and b["counted"] == 0 and b["cut_short"] == 1
    assert _interrupted(url, "q") == [0]
    result = _resume(data, url, "q", trials=2)
    assert _budget(url, "q")["counted"] == 2 and result.best is not None


# -- searches started together on a new database -------------------------------------------

def _open(url: str, study: str, barrier) -> str:
    from automed.searching.study import open_study

    barrier.wait()
    try:
        store = Store(url)
        dataset = store.upsert_dataset(fingerprint="f" * 16, name="d", source="d",
                                       modality="signal", n_samples=2, classes=["a", "b"],
                                       class_counts={"a": 1, "b": 1}, input_shape=[1, 4])
        search_id, _ = store.open_search(study, dataset, "accuracy", {"folds": 2})
        open_study(store, study, seed=0, prune=True, search_id=search_id, create=True)
        return "ok"
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {exc}"


def _race(url: str, studies: list[str]) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(studies))
        with ctx.Pool(len(studies)) as pool:
            return pool.starmap(_open, [(url, s, barrier) for s in studies])


@pytest.mark.parametrize("same", [False, True], ids=["other-studies", "same-study"])
def test_processes_creating_one_new_sqlite_database_all_succeed(tmp_path, same):
    for round_ in range(2):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        studies = ["s"] * 3 if same else ["s1", "s2", "s3"]
        assert _race(url, studies) == ["ok"] * 3
        assert len(Store(url).studies()) == len(set(studies))


@pytest.mark.postgres
@pytest.mark.parametrize("same", [False, True], ids=["other-studies", "same-study"])
def test_processes_creating_one_new_postgres_database_all_succeed(same):
    with postgres_url() as url:
        studies = ["s"] * 3 if same else ["s1", "s2", "s3"]
        assert _race(url, studies) == ["ok"] * 3
        assert len(Store(url).studies()) == len(set(studies))


@pytest.mark.slow
@pytest.mark.parametrize("same", [False, True], ids=["two-studies", "same-command"])
def test_two_searches_started_together_on_a_new_database_both_complete(data, tmp_path, same):
    url = f"sqlite:///{tmp_path / 'together.db'}"
    procs = [_start(["search", str(data), "--storage", url, "--trials", "1", *COMMON]
                    + ([] if same else ["--study", f"t{i}"]), tmp_path) for i in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0, 0], results
    for _, err in results:
        _clean(err)
    studies = Store(url, create=False).studies()
    assert len(studies) == (1 if same else 2)
    assert {s["status"] for s in studies} == {"complete"}
    for s in studies:
        assert _budget(url, s["study"])["counted"] <= 1 + (1 if same else 0)


def test_a_running_status_whose_process_is_gone_says_so():
    import socket
    import subprocess

    from automed.results.describe import effective_status

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    info = {"status": "running",
            "config": {"owner": {"host": socket.gethostname(), "pid": dead.pid}}}
    assert effective_status(info).startswith("stopped while running")
    alive = {"status": "running",
             "config": {"owner": {"host": socket.gethostname(), "pid": os.getpid()}}}
    assert effective_status(alive) == "running"
    elsewhere = {"status": "refitting", "config": {"owner": {"host": "other", "pid": 1}}}
    assert effective_status(elsewhere) == "refitting"


def test_an_interrupt_that_surfaces_as_a_database_error_is_an_interruption():
    # Ctrl-C inside a database call: SQLAlchemy's cleanup met "database is locked", and the
    # worker died with a traceback instead of marking its candidate interrupted.
    from types import SimpleNamespace

    from automed.errors import StorageError
    from automed.searching.objective import Objective

    def candidate(trial):
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise RuntimeError("database is locked")  # noqa: B904 - as sqlite3 does
        except RuntimeError as exc:
            raise StorageError("database error on sqlite:///x.db") from exc

    marked = []
    fake = SimpleNamespace(_candidate=candidate, _interrupted=marked.append)
    with pytest.raises(KeyboardInterrupt):
        Objective.__call__(fake, "trial-7")
    assert marked == ["trial-7"]
    fake._candidate = lambda trial: (_ for _ in ()).throw(StorageError("disk full"))
    with pytest.raises(StorageError):  # no interrupt behind it: the error itself
        Objective.__call__(fake, "trial-8")
    assert marked == ["trial-7"]


def test_ctrl_c_says_what_it_can_resume(tmp_path, monkeypatch, capsys):
    # QA: a Ctrl-C while the search read its data offered "to resume" a search never stored
    from clirun import run_cli

    import automed.searching.runner as runner

    data = make_demo("signal", tmp_path / "ecg.npz", n=40)
    args = ("search", str(data), "--trials", "1", "--storage", f"sqlite:///{tmp_path / 'c.db'}",
            "--study", "c")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    for before in ("prepare", "_check_resume"):
        with monkeypatch.context() as m:
            m.setattr(runner, before, ctrl_c)
            code, _, err = run_cli(m, capsys, *args)
        assert code == 130 and "interrupted before the search began; nothing was stored" in err
        assert "resume" not in err
    with monkeypatch.context() as m:
        m.setattr(runner, "study_stamp", ctrl_c)  # just after the study is stored
        code, _, err = run_cli(m, capsys, *args)
    assert code == 130 and "run the same command again to resume the search" in err
