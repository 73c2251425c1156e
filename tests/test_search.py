"""End-to-end searches on tiny generated data: records, test score, resume, failures."""

from __future__ import annotations

import optuna
import pytest
from sqlalchemy import create_engine, inspect, text

from automed.errors import ConfigError, DataError, StorageError
from automed.searching.runner import search
from automed.storage import Store

QUICK = {"folds": 2, "max_epochs": 2, "seed": 0}


def _table_counts(url: str) -> dict:
    engine = create_engine(url)
    names = inspect(engine).get_table_names()
    with engine.connect() as c:
        return {n: c.execute(text(f"SELECT COUNT(*) FROM {n}")).scalar() for n in names}


def test_image_search_stores_candidates_and_test_score(demo_image, storage_url):
    result = search(demo_image, trials=3, storage=storage_url, **QUICK)
    assert result.study == "demo_image.npz-accuracy-cv2"
    rows = [r for r in Store(storage_url).candidates(result.study) if r["trial"] >= 0]
    assert [r["trial"] for r in rows] == [0, 1, 2]  # (an ensemble's row is trial -1)
    for r in rows:
        assert r["architecture"] == "cnn"
        assert r["state"] in ("complete", "pruned")
        if r["state"] == "complete":
            assert len(r["fold_scores"]) == 2
            assert 0.0 <= r["score_mean"] <= 1.0
            assert set(r["metrics"]) >= {"accuracy", "f1", "recall", "auroc"}
        assert r["params"]["epochs"] <= 2
    # the default configuration is tried first
    assert rows[0]["params"]["blocks"] == 3 and rows[0]["params"]["width"] == 32
    board = result.leaderboard
    assert [r["rank"] for r in board] == list(range(1, len(board) + 1))
    assert board == sorted(board, key=lambda r: -r["score_mean"])
    info = Store(storage_url).search(result.study)
    assert info["status"] == "complete"
    assert info["test_size"] == 18
    assert 0.0 <= info["test_scores"]["accuracy"] <= 1.0
    # the answer is the leader, or the first start the leader's lead over was within chance
    choice = info["config"]["choice"]
    assert choice is None or choice["leader"] == board[0]["trial"]
    answer = board[0]["trial"] if choice is None else choice["answer"]
    assert info["best_trial"] == result.best["trial"] == answer
    # the same database is a real Optuna storage
    summaries = optuna.get_all_study_summaries(storage=storage_url)
    assert [s.study_name for s in summaries] == [result.study]
    assert summaries[0].n_trials == 3


def test_rerunning_resumes_without_repeating_finished_candidates(demo_image, storage_url):
    search(demo_image, trials=2, storage=storage_url, refit=False, **QUICK)
    result = search(demo_image, trials=3, storage=storage_url, refit=False, **QUICK)
    assert result.resumed
    study = optuna.load_study(study_name=result.study, storage=storage_url)
    assert len(study.trials) == 3  # one more, not three more
    assert len(Store(storage_url).candidates(result.study)) == 3


def test_signal_search_with_separate_test_file(tmp_path, storage_url):
    import numpy as np

    rng = np.random.default_rng(0)

    def write(path, n):
        y = np.arange(n) % 2
        x = rng.normal(size=(n, 40)) + y[:, None] * np.sin(np.linspace(0, 6, 40))
        np.savetxt(path, np.column_stack([np.where(y == 1, 1, -1), x]))

    write(tmp_path / "ecg_TRAIN.txt", 40)
    write(tmp_path / "ecg_TEST.txt", 20)
    result = search(tmp_path / "ecg_TRAIN.txt", test=tmp_path / "ecg_TEST.txt", trials=2,
                    storage=storage_url, metric="f1", **QUICK)
    assert result.test_size == 20
    assert result.spec.modality == "signal" and result.spec.input_shape == (1, 40)
    assert "f1" in result.test_scores
    assert result.leaderboard[0]["metric"] == "f1"


def test_bad_input_leaves_the_database_untouched(demo_image, tmp_path, storage_url):
    search(demo_image, trials=1, storage=storage_url, refit=False, **QUICK)
    before = _table_counts(storage_url)
    bad = [
        (dict(data=tmp_path / "missing.npz"), DataError, "no such file"),
        (dict(data=demo_image, metric="recal"), ConfigError, "unknown metric"),
        (dict(data=demo_image, architectures=["resnet9000"]), ConfigError,
         "unknown architecture resnet9000"),
        (dict(data=demo_image, folds=40), DataError, "fewer than the 40 folds"),
        (dict(data=demo_image, study="demo_image.npz-accuracy-cv2", metric="f1"), ConfigError,
         "was searched with metric='accuracy'"),
    ]
    for kwargs, error, message in bad:
        kwargs = {"trials": 1, "storage": storage_url, "folds": 2, **kwargs}
        with pytest.raises(error, match=message):
            search(**kwargs)
    assert _table_counts(storage_url) == before


def test_unreachable_database_is_one_clear_error(demo_image):
    with pytest.raises(StorageError, match="cannot open the study database.*check --storage"):
        search(demo_image, trials=1, storage="postgresql://u:secret@127.0.0.1:1/none", **QUICK)
    with pytest.raises(StorageError) as info:
        search(demo_image, trials=1, storage="postgresql://u:secret@127.0.0.1:1/none", **QUICK)
    assert "secret" not in str(info.value)
    with pytest.raises(StorageError, match="folder .* does not exist"):
        search(demo_image, trials=1, storage="sqlite:////nonexistent/dir/x.db", **QUICK)


def test_package_level_search_stays_callable_after_submodule_imports(demo_image, storage_url):
    import automed
    import automed.searching.runner  # noqa: F401 - importing the module must not shadow the function

    result = automed.search(demo_image, trials=1, storage=storage_url, refit=False, **QUICK)
    assert result.leaderboard


def test_timeout_is_soft_until_one_candidate_completes(demo_image, storage_url):
    result = search(demo_image, timeout=0.01, folds=2, max_epochs=2, storage=storage_url,
                    refit=False, seed=0)
    rows = Store(storage_url).candidates(result.study)
    assert rows[0]["state"] == "complete"  # the first candidate finished despite the limit
    assert len(rows) <= 2
    if len(rows) == 2:  # a second one may have started before the limit was noticed
        assert rows[1]["state"] == "pruned" and "OutOfTime" in rows[1]["error"]


def test_resume_on_other_contents_of_the_same_file_is_refused(tmp_path, storage_url):
    path = tmp_path / "notes.csv"

    def write(flip: bool) -> None:
        rows = [f"{i},{'heart pain' if (i % 2) ^ flip else 'lung cough'} note,{i % 2}"
                for i in range(16)]
        path.write_text("id,note,diagnosis\n" + "\n".join(rows) + "\n")

    kwargs = dict(trials=1, storage=storage_url, study="notes", architectures=["fasttext"],
                  refit=False, **QUICK)
    write(False)
    search(path, **kwargs)
    write(True)
    with pytest.raises(ConfigError, match=r"was created on other data \(its samples or labels "
                                          r"differ\); use the same files"):
        search(path, **{**kwargs, "trials": 2})
    # one more row: said with the counts (QA: "other data, groups or test rows")
    write(False)
    path.write_text(path.read_text() + "16,heart pain note,0\n")
    with pytest.raises(ConfigError, match=r"differ: 16 training samples then, 17 now\)"):
        search(path, **{**kwargs, "trials": 2})


def test_a_resume_naming_the_default_positive_class_is_the_same_search(tmp_path, storage_url):
    # QA: `--pos-label 1` on a study searched without it (whose positive class was already
    # '1', the second of '0' and '1') was refused as "searched with pos_label=None".
    path = tmp_path / "notes.csv"
    path.write_text("id,note,diagnosis\n" + "".join(
        f"{i},{'heart pain' if i % 2 else 'lung cough'} note,{i % 2}\n" for i in range(16)))
    kwargs = dict(storage=storage_url, study="notes", architectures=["fasttext"],
                  refit=False, **QUICK)
    search(path, trials=1, **kwargs)
    again = search(path, trials=2, pos_label="1", **kwargs)
    assert again.resumed and len(Store(storage_url).candidates("notes")) == 2
    with pytest.raises(ConfigError, match="was searched with pos_label=.*, not '0'"):
        search(path, trials=3, pos_label="0", **kwargs)
    assert len(Store(storage_url).candidates("notes")) == 2


def _notes(folder, suffix: str, flip: bool = False):
    """Clinical notes as .csv or .jsonl: the same stem, one file per extension."""
    path = folder / f"notes{suffix}"
    notes = [("heart pain" if (i % 2) ^ flip else "lung cough") + " note" for i in range(16)]
    if suffix == ".csv":
        path.write_text("id,note,diagnosis\n" + "".join(
            f"{i},{n},{i % 2}\n" for i, n in enumerate(notes)))
    else:
        path.write_text("".join(f'{{"text": "{n}", "label": "{i % 2}"}}\n'
                                for i, n in enumerate(notes)))
    return path


def test_files_of_one_stem_get_default_studies_of_their_own(tmp_path, storage_url):
    # notes.csv and notes.jsonl once both defaulted to 'notes-accuracy-cv2': the second
    # search was refused as a resume on other data, though no --study was given.
    kwargs = dict(trials=1, storage=storage_url, architectures=["fasttext"], refit=False,
                  **QUICK)
    csv = search(_notes(tmp_path, ".csv"), **kwargs)
    jsonl = search(_notes(tmp_path, ".jsonl", flip=True), **kwargs)
    assert (csv.study, jsonl.study) == ("notes.csv-accuracy-cv2", "notes.jsonl-accuracy-cv2")
    assert not jsonl.resumed
    again = search(_notes(tmp_path, ".csv"), **{**kwargs, "trials": 2})  # the same command
    assert again.study == csv.study and again.resumed


def test_a_study_named_by_the_stem_alone_still_resumes(tmp_path, storage_url):
    # What earlier versions named the study by default: the same command resumes it, and only
    # it; another file of the same stem gets a study of its own.
    kwargs = dict(trials=1, storage=storage_url, architectures=["fasttext"], refit=False,
                  **QUICK)
    search(_notes(tmp_path, ".csv"), study="notes-accuracy-cv2", **kwargs)
    again = search(_notes(tmp_path, ".csv"), **{**kwargs, "trials": 2})
    assert again.study == "notes-accuracy-cv2" and again.resumed
    other = search(_notes(tmp_path, ".jsonl", flip=True), **kwargs)
    assert other.study == "notes.jsonl-accuracy-cv2" and not other.resumed


def test_a_resumed_search_reports_the_best_candidate_so_far(demo_signal, storage_url, capsys):
    # The progress lines' "best" starts from the study's stored leader, not from nothing.
    from automed.cli import _Progress

    opts = dict(storage=storage_url, study="r", folds=2, max_epochs=1, bootstrap=0,
                architectures=["mlp"], refit=False)
    events: list[dict] = []
    search(demo_signal, trials=2, progress=events.append, **opts)
    first = [e["score_mean"] for e in events if e["event"] == "candidate"
             and e["state"] == "complete"]
    assert events[0]["event"] == "start" and events[0]["best"] is None
    resumed: list[dict] = []
    search(demo_signal, trials=3, progress=resumed.append, **opts)
    start = next(e for e in resumed if e["event"] == "start")
    assert start["resumed"] and start["best"] == pytest.approx(max(first))
    line = _Progress(quiet=False)
    line(start)
    line({**next(e for e in resumed if e["event"] == "candidate"), "score_mean": -1.0,
          "state": "complete", "score_std": 0.0})
    assert f"best {max(first):.4f}" in capsys.readouterr().err
