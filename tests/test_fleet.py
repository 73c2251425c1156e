"""Fleets: the gRPC storage proxy, its heartbeat, and many workers created once, joined by many."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from store_rows import postgres_url

from automed.errors import ConfigError, StorageError
from automed.searching.study import open_study
from automed.storage import Store, fleet

pytest.importorskip("grpc", reason="the gRPC proxy needs pip install 'automed[grpc]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_proxy_addresses_are_one_clear_error(tmp_path):
    with pytest.raises(StorageError, match="grpc://HOST:PORT"):
        Store("grpc://nohost", results_db=f"sqlite:///{tmp_path / 'r.db'}").optuna_storage()
    with pytest.raises(StorageError, match="not the proxy"):
        Store("grpc://127.0.0.1:1", results_db="grpc://127.0.0.1:2")
    port = _free_port()
    with pytest.raises(StorageError, match="no automed proxy answers"):
        Store(f"grpc://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(StorageError, match="no automed proxy answers"):
        fleet.grpc_storage(f"grpc://127.0.0.1:{port}", timeout=0.5)


def test_fleet_pool_sizes_only_apply_to_servers():
    assert fleet.engine_kwargs("sqlite:///x.db") == {"pool_pre_ping": True}
    pg = fleet.engine_kwargs("postgresql://u@h/db")
    assert pg["pool_pre_ping"] and pg["pool_size"] == 1
    assert fleet.engine_kwargs("postgresql://u@h/db", results_only=True)["poolclass"].__name__ \
        == "NullPool"


@pytest.fixture
def proxy(tmp_path):
    """An in-process proxy in front of a fresh SQLite file: (grpc URL, database URL)."""
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    port = _free_port()
    server, _ = fleet.make_proxy_server(db, port=port, threads=4)
    server.start()
    yield f"grpc://127.0.0.1:{port}", db
    server.stop(grace=None)


def test_results_db_is_a_python_keyword_too(proxy, demo_signal, monkeypatch):
    """QA: --results-db had no keyword in automed.search; the variable it sets for the
    search's workers is restored afterwards, and without a proxy it is refused."""
    from automed.searching.runner import search

    grpc_url, db = proxy
    monkeypatch.delenv(fleet.RESULTS_ENV_VAR, raising=False)
    seen = []

    def progress(event):
        if event["event"] == "start":
            seen.append(os.environ.get(fleet.RESULTS_ENV_VAR))

    result = search(demo_signal, trials=1, folds=2, max_epochs=1, storage=grpc_url,
                    results_db=db, study="kw", bootstrap=0, save_model=False,
                    progress=progress)
    assert seen == [db] and fleet.RESULTS_ENV_VAR not in os.environ
    assert [c["state"] for c in Store(db).candidates("kw")] == ["complete"]
    assert result.best["trial"] == 0
    with pytest.raises(ConfigError, match="^--results-db applies to --storage grpc://"):
        search(demo_signal, trials=1, storage=db, results_db=db)


def test_automeds_tables_go_through_the_proxy(proxy):
    grpc_url, db = proxy
    store = Store(grpc_url)
    assert type(store).__name__ == "RemoteStore" and isinstance(store, Store)
    dataset = store.upsert_dataset(fingerprint="a" * 64, name="d", source="d.npz",
                                   modality="image", n_samples=10, classes=["a", "b"],
                                   class_counts={"a": 5, "b": 5}, input_shape=[1, 4, 4])
    search_id, resumed = store.open_search("s", dataset, "accuracy", {"cv_seed": 0})
    assert not resumed and store.open_search("s", dataset, "accuracy", {"cv_seed": 0}) == \
        [search_id, True]
    store.record_candidate(search_id, 0, architecture="cnn", params={"w": 8}, state="complete",
                           fold_scores=[0.5, 0.7], score_mean=0.6, score_std=0.1,
                           metrics={"accuracy": 0.6}, duration_s=1.0, device="cpu", error=None)
    [row] = Store(db).candidates("s")  # written to the database by the proxy
    assert row["params"] == {"w": 8} and row["score_mean"] == 0.6
    assert store.leaderboard("s")[0]["trial"] == 0 and store.search("s")["id"] == search_id
    # automed's own errors cross the wire as themselves, still one line
    with pytest.raises(ConfigError, match="no study 'nope'.*known: s"):
        store.search("nope")
    with pytest.raises(ConfigError, match="another dataset"):
        store.open_search("s", dataset + 1, "accuracy", {"cv_seed": 0})


def _claim_all(grpc_url: str, study_name: str, claimed: list, errors: list) -> None:
    try:
        client = fleet.grpc_storage(grpc_url)
        study = optuna.load_study(study_name=study_name, storage=client)
        while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            claimed.append(study.ask().number)
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        errors.append(exc)


def test_proxy_threads_on_sqlite_never_hand_one_queued_trial_to_two_workers(proxy):
    # Workers pop queued (portfolio) trials; over SQLite two server threads could both read a
    # trial as WAITING and both claim it: two workers ran one candidate and the second's tell
    # failed with "Cannot tell a COMPLETE trial".
    import threading

    grpc_url, db = proxy
    study = optuna.create_study(study_name="queue", storage=db)
    for i in range(60):
        study.enqueue_trial({"x": float(i)})
    claimed: list[int] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_claim_all, args=(grpc_url, "queue", claimed, errors))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert sorted(set(claimed)) == sorted(claimed) and len(set(claimed)) >= 60


@pytest.mark.parametrize("direct_results", [False, True])
def test_heartbeat_through_the_proxy_fails_and_retries_a_dead_workers_trial(
        proxy, monkeypatch, direct_results):
    grpc_url, db = proxy
    store = Store(grpc_url, results_db=db if direct_results else None)
    dataset = store.upsert_dataset(fingerprint="f" * 64, name="d", source="d.npz",
                                   modality="image", n_samples=10, classes=["a", "b"],
                                   class_counts={"a": 5, "b": 5}, input_shape=[1, 4, 4])
    search_id, _ = store.open_search("s", dataset, "accuracy", {"cv_seed": 0})
    study = open_study(store, "s", seed=0, prune=False, search_id=search_id, heartbeat=1,
                       create=True)
    assert isinstance(study._storage, optuna.storages._heartbeat.BaseHeartbeat)
    dead = study.ask({"architecture": optuna.distributions.CategoricalDistribution(["cnn"])})
    alive = study.ask()
    study._storage.record_heartbeat(dead._trial_id)
    later = time.time() + 60  # a minute on: the dead worker's last heartbeat is stale
    monkeypatch.setattr(fleet.time, "time", lambda: later)
    study._storage.record_heartbeat(alive._trial_id)  # the live worker keeps beating
    optuna.storages.fail_stale_trials(study)

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[alive.number].state == TrialState.RUNNING
    retried = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].state == TrialState.WAITING
    assert retried[0].params == {"architecture": "cnn"}
    row = Store(db).candidate("s", dead.number)  # automed's row, read straight from the DB
    assert row["state"] == "failed" and "WorkerLost" in row["error"]
    # Through the database directly the same study holds the same trials.
    direct = optuna.load_study(study_name="s", storage=db)
    assert [t.state for t in direct.trials] == [t.state for t in study.trials]


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "automed.cli", *args],
                            env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_automed_proxy_serves_workers_that_share_one_study(tmp_path, demo_image):
    from automed.searching.runner import search

    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    port = _free_port()
    proxy = _cli("proxy", "--storage", db, "--port", str(port), "--threads", "2")
    try:
        grpc_url = f"grpc://127.0.0.1:{port}"
        # No pruning: every one of the 4 candidates must come back complete through the proxy
        # (with pruning, a 2-fold candidate may stop after fold 1, which is not the point here).
        created = search(demo_image, trials=4, folds=2, max_epochs=1, workers=0, heartbeat=1,
                         storage=grpc_url, study="via-proxy", prune=False,
                         artifacts=tmp_path / "models")  # no file beside which to keep them
        workers = [_cli("worker", "--study", "via-proxy", "--storage", grpc_url,
                        "--index", str(i), "-q") for i in range(2)]
        for w in workers:
            _, err = w.communicate(timeout=240)
            assert w.returncode == 0, err
    finally:
        proxy.terminate()
        _, proxy_err = proxy.communicate(timeout=30)
    assert f"at grpc://127.0.0.1:{port}" in proxy_err
    study = optuna.load_study(study_name=created.study, storage=db)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len({t.number for t in study.trials}) == len(study.trials)
    assert all(fleet.HEARTBEAT_ATTR in t.system_attrs for t in complete)
    rows = Store(db).candidates(created.study)
    assert sorted(r["trial"] for r in rows if r["state"] == "complete") == \
        sorted(t.number for t in complete)


# -- created once, joined by many ---------------------------------------------------------------
def _join(url: str, start_at: float, results: multiprocessing.Queue) -> None:
    """One worker on a possibly empty database: create what is missing, join, run one trial."""
    try:
        time.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        store = Store(url)  # automed's schema
        dataset = store.upsert_dataset(
            fingerprint="e" * 64, name="race", source="race.npz", modality="image",
            n_samples=10, classes=["a", "b"], class_counts={"a": 5, "b": 5},
            input_shape=[1, 4, 4])
        search_id, _ = store.open_search("race", dataset, "accuracy", {"cv_seed": 0})
        study = open_study(store, "race", seed=0, prune=False, search_id=search_id,
                           heartbeat=1, create=True)  # Optuna's schema and the study
        trial = study.ask()
        trial.report(0.5, 0)
        store.record_candidate(search_id, trial.number, architecture="none", params={},
                               state="complete", fold_scores=[0.5], score_mean=0.5,
                               score_std=0.0, metrics={}, duration_s=0.0, device="cpu",
                               error=None)
        study.tell(trial, 0.5)
        results.put((os.getpid(), started, trial.number, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put((os.getpid(), None, None, f"{type(exc).__name__}: {exc}"))


def _start_together(url: str, n: int) -> list[tuple]:
    ctx = multiprocessing.get_context("fork")  # no import time: they really start together
    results = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [ctx.Process(target=_join, args=(url, start_at, results)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
    return out


def _assert_one_study(url: str, out: list[tuple], n: int) -> None:
    errors = [e for *_, e in out if e]
    assert not errors, errors
    starts = [s for _, s, _, _ in out]
    assert max(starts) - min(starts) < 1.0  # all within the same second
    assert sorted(number for _, _, number, _ in out) == list(range(n))
    summaries = optuna.get_all_study_summaries(storage=url)
    assert [s.study_name for s in summaries] == ["race"]
    study = optuna.load_study(study_name="race", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * n
    store = Store(url)
    assert [s["study"] for s in store.studies()] == ["race"]
    assert len(store.candidates("race")) == n


@pytest.mark.postgres
def test_32_workers_started_in_the_same_second_on_an_empty_postgres_all_join():
    with postgres_url() as url:
        out = _start_together(url, 32)
        _assert_one_study(url, out, 32)


def test_16_workers_started_together_on_an_empty_sqlite_file_all_join(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    out = _start_together(url, 16)
    _assert_one_study(url, out, 16)


def test_cli_proxy_refuses_a_proxy_url_and_a_taken_port(tmp_path):
    with pytest.raises(StorageError, match="not a proxy"):
        fleet.make_proxy_server("grpc://127.0.0.1:1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StorageError, match="cannot listen"):
            fleet.make_proxy_server(f"sqlite:///{tmp_path / 'p.db'}", port=port)


def test_readme_documents_the_choice():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "automed proxy" in readme and "grpc://" in readme


def test_a_worker_survives_losing_its_trial_to_another_workers_sweep(tmp_path):
    # Optuna refuses the late tell ("Cannot tell a FAIL trial", the #5582 family): the worker
    # must carry on with the next candidate instead of dying.
    from automed.searching.study import run_trials

    store = Store(f"sqlite:///{tmp_path / 'sweep.db'}")
    dataset = store.upsert_dataset(fingerprint="c" * 64, name="d", source="d.npz",
                                   modality="image", n_samples=10, classes=["a", "b"],
                                   class_counts={"a": 5, "b": 5}, input_shape=[1, 4, 4])
    search_id, _ = store.open_search("sweep", dataset, "accuracy", {"cv_seed": 0})
    study = open_study(store, "sweep", seed=0, prune=False, search_id=search_id, heartbeat=1,
                       create=True)

    class Searcher:
        deadline = None
        swept = False

        def __call__(self, trial):
            if not self.swept:  # meanwhile another worker fails this trial as stale
                self.swept = True
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            return 0.5

    with pytest.warns(UserWarning, match="failed as stale"):
        run_trials(Searcher(), study, trials=3, timeout=60, heartbeat=1)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL] + [TrialState.COMPLETE] * 3


@pytest.mark.parametrize("command", [["studies"], ["leaderboard"], ["show", "x"],
                                     ["worker", "--study", "x"]])
def test_a_grpc_storage_without_grpc_installed_is_one_line(command, monkeypatch, capsys):
    # QA (packaging): every command but `automed proxy` ended in a ModuleNotFoundError
    # traceback when the [grpc] extra was not installed.
    from clirun import run_cli

    monkeypatch.setitem(sys.modules, "grpc", None)  # as if not installed
    code, _, err = run_cli(monkeypatch, capsys, *command, "--storage", "grpc://127.0.0.1:1")
    assert code not in (0, None)
    assert err == ("error: --storage grpc://127.0.0.1:1 needs gRPC; pip install "
                   "'automed[grpc]'\n")
