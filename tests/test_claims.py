"""Workers never repeat each other: queued trials are claimed once, on SQLite and PostgreSQL,
and joining workers draw different candidates."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import optuna
import pytest

from automed.searching.study import worker_seed
from automed.storage import Store
from tests.store_rows import postgres_url

QUEUED = 24


def _claim_all(url: str, out: str) -> None:
    """A worker process: claim queued trials until none is left; write what it got."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="claims", storage=Store(url).optuna_storage())
    got = []
    while True:
        waiting = study.get_trials(deepcopy=False,
                                   states=(optuna.trial.TrialState.WAITING,))
        if not waiting:
            break
        trial = study.ask()
        i = trial.suggest_int("i", 0, 10**9)  # a queued trial's fixed value, or a random one
        if i >= QUEUED:  # nothing queued was left for this ask: a fresh trial
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        got.append(i)
        study.tell(trial, 0.0)
    with open(out, "w") as f:
        json.dump(got, f)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'claims.db'}"
    else:
        with postgres_url() as pg:
            yield pg


def test_each_queued_trial_is_claimed_by_exactly_one_worker(url, tmp_path):
    store = Store(url)
    study = optuna.create_study(study_name="claims", storage=store.optuna_storage())
    for i in range(QUEUED):
        study.enqueue_trial({"i": i})
    ctx = multiprocessing.get_context("spawn")
    outs = [str(tmp_path / f"w{k}.json") for k in range(4)]
    procs = [ctx.Process(target=_claim_all, args=(url, out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    claimed = [i for out in outs for i in json.load(open(out))]
    assert sorted(claimed) == list(range(QUEUED))  # none twice, none lost


def test_worker_seeds_differ_by_identity_and_resume():
    seeds = {worker_seed(0, who, started) for who in ("main", "local-0", "local-1", "h:1", "h:2")
             for started in (0, 5)}
    assert len(seeds) == 10
    assert worker_seed(7, "main", 0) == 7  # a fresh seeded one-worker search repeats exactly


@pytest.mark.slow
@pytest.mark.postgres
def test_four_joining_workers_share_no_parameters(tmp_path):
    from automed.demo import make_demo
    from automed.searching.runner import search

    data = make_demo("signal", tmp_path / "sig.npz", n=160)
    with postgres_url() as pg:
        created = search(data, trials=12, folds=2, max_epochs=1, workers=0, storage=pg,
                         study="fleet", bootstrap=0,
                         artifacts=tmp_path / "models")  # not the working directory
        env = dict(os.environ, OMP_NUM_THREADS="1")
        procs = [subprocess.Popen([sys.executable, "-m", "automed.cli", "worker", "--study",
                                   created.study, "--storage", pg, "-q"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-2000:]
        study = optuna.load_study(study_name="fleet", storage=pg)
        done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        ran = [t for t in study.trials if t.state in done]
        assert len(ran) >= 12
        keys = [json.dumps(t.params, sort_keys=True) for t in ran]
        assert len(set(keys)) == len(keys)  # 0 candidates share their parameters
        errors = [r["error"] or "" for r in Store(pg).candidates("fleet")]
        assert not [e for e in errors if e.startswith("Duplicate")]  # none even drawn twice
        assert len(ran) <= 12 + 3  # the budget, plus at most one per extra worker
