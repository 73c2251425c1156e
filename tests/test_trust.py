"""Issue 6: grouped CV, locked test sets, intervals, imbalance, artifacts, resume, repeatability.

Every search here uses the tiny MLP of ``tiny_arch.py`` on a few dozen generated signals, one
thread, 2-3 folds, so the whole file stays within seconds of CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner

import automed.searching.objective as objective_module
from automed.cli import cli
from automed.data.dataset import Dataset
from automed.data.loaders import load_data
from automed.errors import ConfigError, DataError
from automed.evaluation import bootstrap as B
from automed.evaluation import metrics as M
from automed.evaluation.bootstrap import resample_scores
from automed.evaluation.cv import make_folds, split_test
from automed.evaluation.leakage import check_folds_leakage, check_test_leakage
from automed.plugin_manager import reset_plugin_manager
from automed.searching.runner import search
from automed.searching.training import epoch_order
from automed.storage import Store

TINY = str(Path(__file__).with_name("tiny_arch.py"))


@pytest.fixture(autouse=True)
def tiny_plugin(monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", TINY)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def _run(data, db, **kw):
    kw = {"folds": 2, "trials": 2, "architectures": ["tinymlp"], "device": "cpu",
          "bootstrap": 200, "prune": False, **kw}
    return search(data, storage=f"sqlite:///{db}", **kw)


def _patients(path: Path, n_patients=24, per_patient=4, seed=0) -> Path:
    """Each patient has its own random signature and one label: nothing else predicts it."""
    rng = np.random.default_rng(seed)
    templates = 3 * rng.standard_normal((n_patients, 32))
    labels = np.arange(n_patients) % 2
    pid = np.repeat(np.arange(n_patients), per_patient)
    x = templates[pid] + 0.3 * rng.standard_normal((len(pid), 32))
    np.savez(path, x=x.astype(np.float32), y=labels[pid], groups=np.char.add("p", pid.astype(str)))
    return path


def _imbalanced(path: Path, n=80, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 8 == 0).astype(int)  # 1 in 8 positive
    x = rng.standard_normal((n, 32)) + 1.5 * y[:, None] * np.sin(np.linspace(0, 6, 32))
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


# -- metrics with intervals -------------------------------------------------------------------

@pytest.mark.parametrize("k,average", [(2, "binary"), (2, "macro"), (3, "macro"),
                                       (3, "weighted"), (3, "micro")])
def test_vectorised_bootstrap_equals_metric_functions(k, average):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 30)
    p = rng.random((30, k)).round(1) + 1e-3  # ties on purpose
    p /= p.sum(1, keepdims=True)
    _fast_equals_exact(y, p, average, rng)


def _fast_equals_exact(y, p, average, rng):
    draws = rng.integers(0, len(y), (20, len(y)))
    fast = resample_scores(y, p, draws, average, 1, list(M.METRICS))
    for name in M.METRICS:
        exact = [M.score(name, y[d], p[d], average, 1) for d in draws]
        np.testing.assert_allclose(fast[name], exact, err_msg=name)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_the_bootstrap_counts_the_classes_the_value_counts_when_one_is_missing(average):
    # QA: on a test set lacking one of three classes, recall 0.5000 had the interval
    # [0.3333, 0.3333]: the resamples averaged all three classes, the value the two present.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 30)
    p = rng.random((30, 3)).round(1) + 1e-3
    p /= p.sum(1, keepdims=True)
    _fast_equals_exact(y, p, average, rng)
    ci = B.bootstrap_all(y, p, average, 1, n=200, seed=0)
    for name in ("recall", "precision", "f1"):
        assert ci[name]["low"] <= ci[name]["value"] <= ci[name]["high"], name


def test_multiclass_auroc_takes_rows_that_only_nearly_sum_to_one():
    # QA: stored out-of-fold probabilities (compact floats) crashed --metric auroc on 3 classes
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    p = rng.random((30, 3))
    p /= p.sum(1, keepdims=True)
    rough = (p * 1.001).astype(np.float16)
    assert M.score("auroc", y, rough) == pytest.approx(M.score("auroc", y, p), abs=0.02)


def test_bootstrap_ci_brackets_the_value_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.c_[1 - y, y] * 0.2 + rng.random((60, 2)) * 0.8
    p /= p.sum(1, keepdims=True)
    ci = B.bootstrap_ci("auroc", y, p, n=300, seed=1)
    assert ci["low"] <= ci["value"] <= ci["high"] and ci["high"] - ci["low"] > 0.01
    assert B.bootstrap_ci("auc", y, p, n=300, seed=1) == ci
    assert set(B.bootstrap_all(y, p, n=50)) == set(M.METRICS)


# -- groups and leakage -----------------------------------------------------------------------

def test_grouped_folds_and_test_split_keep_patients_together(tmp_path):
    train = load_data(_patients(tmp_path / "p.npz")).train
    assert train.groups is not None and len(set(train.groups)) == 24
    for tr, va in make_folds(train, 3):
        assert not set(train.groups[tr]) & set(train.groups[va])
    rest, test = split_test(train, 0.25, seed=0)
    assert not set(rest.groups) & set(test.groups)
    assert set(test.y) == {0, 1} and 0.15 < len(test) / len(train) < 0.35


@pytest.mark.slow
def test_repeated_patients_inflate_leaky_cv_but_not_grouped_cv(tmp_path):
    data = _patients(tmp_path / "p.npz", n_patients=40, per_patient=3)
    leaky_data = load_data(data)
    leaky_data.train.groups = None  # forget who is who: plain stratified folds
    kw = {"folds": 3, "trials": 1, "save_model": False}
    leaky = _run(leaky_data, tmp_path / "a.db", study="leaky", **kw)
    grouped = _run(data, tmp_path / "b.db", study="grouped", **kw)
    leaky_cv, grouped_cv = leaky.best["score_mean"], grouped.best["score_mean"]
    assert leaky_cv > 0.85  # memorised patients look like skill (about 0.95)
    assert grouped_cv < 0.7  # unseen patients: chance (about 0.4)
    assert leaky_cv - grouped_cv > 0.3


def test_identical_samples_across_folds_warn_loudly_and_are_stored(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 16)).astype(np.float32)
    y = np.arange(20) % 2
    np.savez(tmp_path / "dup.npz", x=np.concatenate([x, x]), y=np.concatenate([y, y]))
    with pytest.warns(UserWarning, match="LEAKAGE"):
        result = _run(tmp_path / "dup.npz", tmp_path / "d.db", trials=1, save_model=False)
    assert result.warnings
    stored = Store(f"sqlite:///{tmp_path / 'd.db'}").search(result.study)["config"]
    assert stored["leakage"]["duplicate_samples"] == 20
    assert stored["leakage_warnings"] == result.warnings


def test_shared_patients_between_train_and_test_are_refused():
    a = Dataset(np.zeros((4, 1, 8)), [0, 1, 0, 1], ["0", "1"], "signal", "a",
                groups=np.array(["p1", "p1", "p2", "p2"]))
    b = Dataset(np.ones((2, 1, 8)), [0, 1], ["0", "1"], "signal", "b",
                groups=np.array(["p2", "p3"]))
    with pytest.raises(DataError, match="both the training and the test"):
        check_test_leakage(a, b)
    b.groups = np.array(["p3", "p4"])
    assert check_test_leakage(a, b)["test_duplicates"] == 0
    same = Dataset(np.zeros((4, 1, 8)), [0, 1, 0, 1], ["0", "1"], "signal", "c")
    assert check_folds_leakage(same, [(np.array([0, 1]), np.array([2, 3]))])[
        "val_duplicates_per_fold"] == [2]


def test_group_column_of_a_signal_table_and_a_groups_file(tmp_path):
    rows = [f"{i % 2} pat{i // 2} " + " ".join(str(v) for v in range(i, i + 6))
            for i in range(8)]
    table = tmp_path / "t.txt"
    table.write_text("\n".join(rows))
    data = load_data(table, group_col=1).train
    assert data.groups.tolist() == [f"pat{i // 2}" for i in range(8)]
    assert data.x.shape == (8, 1, 6)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join("abcd"[i // 2] for i in range(8)))
    with pytest.raises(ConfigError, match="brings its own group ids .* keep one"):
        load_data(table, groups=ids, group_col=1)  # which ids count? refused, not overridden
    plain = tmp_path / "plain.txt"  # the same series without the id column
    plain.write_text("\n".join(" ".join(r.split()[:1] + r.split()[2:]) for r in rows))
    assert load_data(plain, groups=ids).train.groups.tolist()[:3] == ["a", "a", "b"]
    ids.write_text("a\nb")
    with pytest.raises(DataError, match="2 group ids for 8 training samples"):
        load_data(plain, groups=ids)


# -- imbalance and the locked test set --------------------------------------------------------

def test_balanced_sampler_draws_classes_equally():
    y = torch.tensor([0] * 90 + [1] * 10)
    order = epoch_order(y, 2, "balanced", torch.Generator().manual_seed(0))
    share = float((y[order] == 1).float().mean())
    assert len(order) == 100 and 0.35 < share < 0.65
    assert sorted(epoch_order(y, 2, "shuffle", torch.Generator()).tolist()) == list(range(100))


def test_imbalanced_data_held_out_test_with_intervals(tmp_path):
    events = []
    result = _run(_imbalanced(tmp_path / "imb.npz"), tmp_path / "i.db", metric="bacc",
                  test_fraction=0.25, save_model=False, progress=events.append)
    assert result.test_size == 20  # stratified: all 10 positives split 8 / 2
    # QA: the search said "24 samples", show and the report the file's 30. All now count
    # the whole file (the dataset's fingerprint is the file's) and say how it was split.
    from automed.results.describe import format_study, study_summary
    from automed.results.report import build_report

    split = "80 samples in the file: 60 for the search, 20 held out as test"
    start = next(e for e in events if e["event"] == "start")
    assert start["dataset"].startswith("80 signal samples of 1 x 32 (channels x length), 2 "
                                       "classes: 60 for the search (")
    assert start["dataset"].endswith(", 20 held out as test")
    store = Store(f"sqlite:///{tmp_path / 'i.db'}")
    info = store.search(result.study)
    assert info["n_samples"] == 80
    assert split in format_study(study_summary(info, store.candidates(result.study)))
    assert split in build_report(store, result.study)
    ci = result.test_ci["balanced_accuracy"]
    assert ci["value"] == pytest.approx(result.test_scores["balanced_accuracy"])
    assert ci["low"] <= ci["value"] <= ci["high"]
    assert set(result.test_ci) == set(M.METRICS)
    stored = Store(f"sqlite:///{tmp_path / 'i.db'}").search(result.study)
    assert stored["config"]["test_ci"] == result.test_ci
    assert stored["test_scores"] == result.test_scores  # the float dict stays as it was
    params = [r["params"] for r in result.leaderboard if r["state"] == "complete"]
    assert all(p["sampler"] in ("shuffle", "balanced") for p in params)


# -- resume after Ctrl-C ----------------------------------------------------------------------

def test_ctrl_c_leaves_a_resumable_study_within_budget(tmp_path, monkeypatch):
    data, db = _imbalanced(tmp_path / "r.npz"), tmp_path / "r.db"
    calls = {"n": 0}
    real_fit = objective_module.fit_model

    def interrupting_fit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # trial 1, fold 0: in the middle of the 2nd candidate
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(objective_module, "fit_model", interrupting_fit)
    with pytest.raises(KeyboardInterrupt):
        _run(data, db, trials=3, study="r", save_model=False)
    storage = f"sqlite:///{db}"
    trials = optuna.load_study(study_name="r", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]  # never left RUNNING
    store = Store(storage)
    assert store.search("r")["status"] == "interrupted"
    assert [c["state"] for c in store.candidates("r")] == ["complete", "interrupted"]
    first = store.candidates("r")[0]

    monkeypatch.setattr(objective_module, "fit_model", real_fit)
    result = _run(data, db, trials=3, study="r", save_model=False)
    trials = optuna.load_study(study_name="r", storage=storage).trials
    assert result.resumed and len(trials) == 4  # 0 kept, 1 interrupted, 2 its retry, 3 new
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3  # the budget of 3, not 4
    again = next(c for c in store.candidates("r") if c["trial"] == first["trial"])
    assert again["duration_s"] == first["duration_s"]  # not re-run


def test_ctrl_c_after_a_candidates_last_fold_marks_it_interrupted(tmp_path, monkeypatch):
    # A signal can land outside the candidate's training, here while its out-of-fold
    # predictions are stored: the candidate is still listed interrupted and retried, not a
    # FAIL that nothing lists and no resume runs again.
    data, db = _imbalanced(tmp_path / "o.npz"), tmp_path / "o.db"
    calls = {"n": 0}
    real_oof = Store.record_oof

    def interrupting_oof(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # trial 1, after its last fold
            raise KeyboardInterrupt
        return real_oof(self, *args, **kwargs)

    monkeypatch.setattr(Store, "record_oof", interrupting_oof)
    with pytest.raises(KeyboardInterrupt):
        _run(data, db, trials=3, study="o", save_model=False)
    storage = f"sqlite:///{db}"
    trials = optuna.load_study(study_name="o", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert trials[1].user_attrs["interrupted"]
    store = Store(storage)
    assert [c["state"] for c in store.candidates("o")] == ["complete", "interrupted"]

    monkeypatch.setattr(Store, "record_oof", real_oof)
    _run(data, db, trials=3, study="o", save_model=False)
    trials = optuna.load_study(study_name="o", storage=storage).trials
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params


# -- reproducibility --------------------------------------------------------------------------

def test_two_seeded_runs_give_the_same_leaderboard_and_a_manifest(tmp_path):
    data = _patients(tmp_path / "p.npz", n_patients=12)
    runs = [_run(data, tmp_path / f"{i}.db", seed=3, deterministic=True, save_model=False,
                 test_fraction=0.25) for i in range(2)]

    def board(r):
        return [(b["trial"], b["params"], b["fold_scores"]) for b in r.leaderboard]

    assert board(runs[0]) == board(runs[1])
    assert runs[0].test_ci == runs[1].test_ci
    manifest = Store(f"sqlite:///{tmp_path / '0.db'}").search(runs[0].study)["config"][
        "manifest"]
    assert manifest["seeds"]["cv"] == 3 and manifest["deterministic"] is True
    assert manifest["data"]["train_fingerprint"] and manifest["data"]["grouped"] is True
    assert {"python", "automed", "torch", "optuna", "scikit-learn", "numpy"} <= set(
        manifest["versions"])
    assert manifest["device"].startswith("cpu")


# -- artifact, export, predict in a fresh process ---------------------------------------------

@pytest.mark.slow
def test_predict_after_export_in_a_fresh_process(tmp_path):
    data, db = _imbalanced(tmp_path / "e.npz"), tmp_path / "e.db"
    result = _run(data, db, test_fraction=0.25, study="e")
    artifact = Path(result.artifact)
    assert artifact.parent == tmp_path / "automed_models" and artifact.name.startswith("e-")
    assert (artifact / "fold-0" / "model.safetensors").is_file()  # the winner's fold models
    out = tmp_path / "export"
    exported = CliRunner().invoke(cli, ["export", "--study", "e", "--storage",
                                        f"sqlite:///{db}", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    card = (out / "MODEL_CARD.md").read_text()
    for section in ("## Data", "## Split", "95 % CI", "## Intended use", "## Limitations"):
        assert section in card
    config = json.loads((out / "automed_model.json").read_text())
    assert config["architecture"] == "tinymlp" and config["test"]["ci"] == result.test_ci
    preds = tmp_path / "preds.csv"
    env = dict(os.environ, AUTOMED_PLUGINS_PATH=TINY, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "automed.cli", "predict", "--model", str(out),
                    str(data), "-o", str(preds)], check=True, env=env, capture_output=True)
    rows = preds.read_text().splitlines()
    assert rows[0] == "split,index,label,predicted,p_0,p_1" and len(rows) == 81
    proba = np.array([[float(v) for v in r.split(",")[4:]] for r in rows[1:]])
    x = load_data(data).train.x
    expected = result.predict_proba(x)
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    by_study = CliRunner().invoke(cli, ["predict", "--study", "e", "--storage",
                                        f"sqlite:///{db}", str(data)])
    assert by_study.exit_code == 0 and by_study.output.splitlines() == rows


def test_grouped_intervals_resample_whole_patients():
    """QA: a grouped search's test intervals resampled rows, as if a patient's samples were
    independent: too narrow where a patient's samples are all right or all wrong."""
    from automed.evaluation.bootstrap import group_weights

    groups = np.repeat([f"p{i}" for i in range(20)], 10)  # 20 patients, 10 samples each
    w = group_weights(np.random.default_rng(0), 50, groups)
    assert w.shape == (50, 200)
    per_patient = w.reshape(50, 20, 10)
    assert (per_patient == per_patient[:, :, :1]).all()  # a patient's samples drawn together
    assert (per_patient[:, :, 0].sum(1) == 20).all()  # 20 patients drawn per resample

    y = np.tile([0, 1], 100)
    right = np.repeat(np.arange(20) % 3 != 0, 10)  # whole patients right or wrong
    proba = np.eye(2)[np.where(right, y, 1 - y)]
    rows = B.bootstrap_all(y, proba, n=400)["accuracy"]
    whole = B.bootstrap_all(y, proba, n=400, groups=groups)["accuracy"]
    assert rows["value"] == whole["value"]
    assert whole["high"] - whole["low"] > 2 * (rows["high"] - rows["low"])


def test_a_paired_lead_on_one_patient_is_not_sure_when_patients_are_resampled():
    from automed.searching.selection import paired_lead

    groups = np.repeat([f"p{i}" for i in range(10)], 20)
    y = np.tile([0, 1], 100)
    challenger = np.eye(2)[y]  # right on every sample
    incumbent = challenger.copy()
    incumbent[:20] = np.eye(2)[1 - y[:20]]  # wrong on patient p0's 20 samples only
    rows = paired_lead(y, challenger, incumbent, "accuracy")
    whole = paired_lead(y, challenger, incumbent, "accuracy", groups=groups)
    assert rows.diff == whole.diff == pytest.approx(0.1)
    assert rows.p_better > 0.99 and rows.beats
    # p0 is left out of a resample of 10 patients 35 % of the time (a tie, counted half)
    assert 0.7 < whole.p_better < 0.9 and not whole.beats


def test_a_resample_without_a_positive_does_not_score_auprc_zero():
    """QA: a perfect model on 12 test samples (3 positive) had "auprc 1.0000 [0.0000, 1.0000]":
    resamples that drew no positive scored 0 where AUPRC is undefined."""
    y = np.array([0] * 9 + [1] * 3)
    proba = np.eye(2)[y] * 0.8 + 0.1
    assert np.isnan(M.score("auprc", np.zeros(5, dtype=int), proba[:5]))
    ci = B.bootstrap_all(y, proba, n=400)["auprc"]
    assert ci["value"] == ci["low"] == ci["high"] == 1.0


def test_the_middle_of_a_wide_record_is_checked_on_resume_and_fingerprints_stay(tmp_path):
    """QA: numpy's repr of a row of 1,200 values shows its first and last 3: a column edited
    in the middle of a wide table resumed the study as the same data. The fingerprint (which
    names stored datasets, studies and saved models' data) stays as it was; the long records
    are hashed whole beside it and checked on resume."""
    from automed.data.dataset import Dataset
    from automed.errors import ConfigError

    def dataset(rows):
        return Dataset(rows, np.array([0, 1]), ["a", "b"], "tabular", "t.csv")

    wide = [np.array([str(i) for i in range(1200)], dtype=object) for _ in range(2)]
    edited = [r.copy() for r in wide]
    edited[0][600] = "0.5"
    assert dataset(wide).fingerprint == dataset(edited).fingerprint  # as stored studies have it
    assert dataset(wide).long_records != dataset(edited).long_records
    short = [np.array(["1.5", "x"], dtype=object), np.array(["2", "y"], dtype=object)]
    assert dataset(short).long_records is None
    before = dataset(short).fingerprint  # whatever print options the caller set
    with np.printoptions(precision=2, threshold=1, edgeitems=1):
        assert dataset(short).fingerprint == before

    rng = np.random.default_rng(0)
    header = ",".join(f"g{j}" for j in range(1200)) + ",label"
    rows = [",".join(f"{v:.3f}" for v in rng.normal(size=1200)) + f",{i % 2}" for i in range(24)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    common = dict(trials=1, max_epochs=1, architectures=["mlp"], bootstrap=0, refit=False,
                  study="wide")
    _run(path, tmp_path / "w.db", **common)
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[600] = "9.999"
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(ConfigError, match="was created on other data"):
        _run(path, tmp_path / "w.db", **dict(common, trials=2))

def test_a_study_stored_before_long_records_were_hashed_still_resumes_and_takes_workers():
    from automed.searching.prepare import Prepared

    now = {"full": "f", "train": "t", "test": None, "grouped": False, "folds": "x",
           "records": {"full": "r", "train": "r2"}}
    older = {k: v for k, v in now.items() if k != "records"}
    assert Prepared.differs(older, now) is None  # checked as it was then
    assert Prepared.differs(now, now) is None
    assert Prepared.differs(dict(now, records={"full": "other", "train": "r2"}), now) == \
        "records"
    assert Prepared.differs(dict(older, train="t2"), now) == "train"
    assert Prepared.differs(dict(older, extra=1), older) == "extra"  # a key only stored


def test_too_few_patients_give_no_interval_and_no_sure_lead():
    """Review: a cluster bootstrap of one test patient gave a zero-width interval, and a
    paired lead over one training patient was 'sure' in 100 % of resamples."""
    from automed.results.describe import choice_words, ensemble_verdict
    from automed.searching.selection import paired_lead

    y = np.tile([0, 1], 30)
    proba = np.eye(2)[np.where(np.arange(60) % 4 == 0, 1 - y, y)]
    for k in (1, 3, 9):
        groups = np.repeat(np.arange(k), int(np.ceil(60 / k)))[:60]
        ci = B.bootstrap_all(y, proba, n=200, groups=groups)["accuracy"]
        assert ci["value"] == 0.75 and ci["low"] is None and ci["high"] is None
        lead = paired_lead(y, np.eye(2)[y], proba, "accuracy", groups=groups)
        assert lead.diff == pytest.approx(0.25) and not lead.beats
        assert lead.note == f"{k} patients (groups) are too few to tell (at least 10)"
    ten = np.repeat(np.arange(10), 6)
    assert B.bootstrap_all(y, proba, n=200, groups=ten)["accuracy"]["low"] is not None
    choice = {"leader": 3, "incumbent": 0, "answer": 0, "diff": 0.25, "p_better": 0.5,
              "note": "3 patients (groups) are too few to tell (at least 10)"}
    assert choice_words(choice).endswith("by +0.2500, but 3 patients (groups) are too few "
                                         "to tell (at least 10)")
    verdict = {"better": False, "lead_note": "4 patients (groups) are too few",
               "p_better": 0.5, "score": 0.9, "single": 0.8, "margin": 0.01}
    assert ensemble_verdict(verdict, "#0") == ("ahead of #0, but 4 patients (groups) are too "
                                               "few; keeping that one")
    # not ahead by more than the noise: that is the reason, whatever the patients (review)
    assert ensemble_verdict(dict(verdict, score=0.805), "#0").startswith("not better than #0")


def test_grouped_folds_a_ranking_metric_cannot_score_are_refused_before_the_search(tmp_path):
    """Review: 2 of 20 patients positive in 5 grouped folds left 3 folds without a positive,
    and every candidate of a --metric auprc (or auroc) search failed on a NaN score."""
    from automed.errors import DataError

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(20), 3)
    y = (patients < 2).astype(int)
    x = rng.normal(size=(60, 1, 32)).astype(np.float32) + y[:, None, None]
    np.savez(tmp_path / "p.npz", x=x, y=y, groups=patients)
    for metric in ("auprc", "auroc"):
        with pytest.raises(DataError, match=r"validation fold \d of 5 holds no sample of class "
                                            r"'1', so " + metric):
            _run(tmp_path / "p.npz", tmp_path / "p.db", folds=5, metric=metric)
    result = _run(tmp_path / "p.npz", tmp_path / "p.db", folds=2, trials=1, metric="auprc",
                  bootstrap=0)
    assert np.isfinite(result.best["score_mean"])


def test_grouped_folds_lacking_a_class_are_said_to_skew_a_class_averaged_metric(tmp_path):
    # QA: 20 grouped folds of one patient class each: balanced accuracy equalled accuracy,
    # f1 was skewed, and nothing said so
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(10), 4)
    y = (patients % 2).astype(int)
    x = rng.normal(size=(40, 1, 16)).astype(np.float32) + y[:, None, None]
    np.savez(tmp_path / "p.npz", x=x, y=y, groups=patients)

    def said(metric: str, folds: int, average: str = "macro") -> list[str]:
        plan = SearchPlan(data=DataPlan(path=str(tmp_path / "p.npz")), metric=metric,
                          folds=folds, trials=1, average=average)
        return [w for w in prepare(plan).warnings if w.startswith("validation fold(s)")]

    assert said("balanced_accuracy", 10) == [
        "validation fold(s) 1, 2, 3, 4, 5, 6, 7, 8, ... of 10 lack a class (folds keep each "
        "patient whole): their balanced_accuracy averages over the classes they hold, so it is "
        "skewed and not comparable between folds; use fewer --folds (at most the patients of "
        "the rarest class)"]
    assert said("accuracy", 10) == []  # a sample mean: each fold's is sound
    assert said("f1", 10, "micro") == []  # so is a micro average (review)
    assert said("recall", 10, "binary") == [
        "validation fold(s) 1, 2, 3, 8, 9 of 10 hold no sample of the positive class '1' "
        "(folds keep each patient whole): their recall of that class is 0 or undefined there, "
        "so the mean is skewed; use fewer --folds (at most the patients of the rarest class)"]
    assert said("f1", 2) == []  # every fold holds both classes
