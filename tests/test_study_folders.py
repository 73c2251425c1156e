"""Whose model a folder holds: every (database, study) pair saves to a folder of its own, and
its answer and kept fold models carry a stamp naming the study, so a study of the same name in
another database (or one deleted and created again) never overwrites or lends its models, and
predict and export refuse a folder whose stamp is not the study's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from automed.cli import cli
from automed.data.loaders import load_data
from automed.errors import DataError
from automed.results.artifact import STAMP, LoadedModel, default_dir, read_stamp
from automed.results.model_card import export_model
from automed.searching import foldbag
from automed.searching.runner import search
from automed.storage import Store

QUICK = dict(folds=2, max_epochs=1, bootstrap=0, prune=False, seed=0, ensemble=False)


def test_a_sqlite_studys_folder_is_its_databases_own():
    a, b = default_dir("sqlite:///a.db", "coll"), default_dir("sqlite:///b.db", "coll")
    assert a != b and a.parent == b.parent  # both under automed_models/ beside the files
    assert default_dir(f"sqlite:///{Path('a.db').resolve()}", "coll") == a  # one file
    pg = "postgresql://u:{}@host/db"
    assert default_dir(pg.format("x"), "coll") == default_dir(pg.format("y"), "coll")
    assert default_dir(pg.format("x"), "coll") != default_dir("postgresql://u@host/db2", "coll")


def test_two_databases_with_one_study_name_keep_their_own_models(demo_signal, demo_image,
                                                                 tmp_path):
    """QA: a.db's and b.db's studies "coll" shared automed_models/coll-6bd5a2a5; b's search
    overwrote a's model, and a's resume answered with a's config over b's fold models."""
    a_url, b_url = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    a = search(demo_signal, trials=1, storage=a_url, study="coll", **QUICK)
    b = search(demo_image, trials=1, storage=b_url, study="coll", **QUICK)
    assert a.artifact != b.artifact
    again = search(demo_signal, trials=2, storage=a_url, study="coll", **QUICK)  # a resume
    assert again.resumed and again.artifact == a.artifact
    # the resume found its own candidates' fold models, not b's
    assert Store(a_url).search("coll")["config"]["answer_from"] == "folds"
    x = load_data(demo_signal).test.x
    np.testing.assert_allclose(LoadedModel(again.artifact).predict_proba(x),
                               np.array(Store(a_url).test_predictions("coll")["proba"]),
                               atol=2e-6)
    assert LoadedModel(b.artifact).spec.modality == "image"
    for url, data in ((a_url, demo_signal), (b_url, demo_image)):
        out = CliRunner().invoke(cli, ["predict", str(data), "--study", "coll", "--storage",
                                       url, "--split", "test"])
        assert out.exit_code == 0, out.output
    stamp = read_stamp(again.artifact)
    assert stamp["study"] == "coll" and stamp["storage"] == f"sqlite:///{tmp_path / 'a.db'}"
    assert stamp["uid"] == Store(a_url).search("coll")["config"]["uid"]


def test_fold_models_another_study_of_the_name_left_are_never_taken(demo_signal, tmp_path,
                                                                    monkeypatch):
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = search(demo_signal, trials=1, storage=url, study="s", **QUICK)
    root = foldbag.candidates_dir(first.artifact)
    assert list(root.glob("trial-*"))
    # The study deleted and created again under its name: another study (another uid) whose
    # candidates' bags are not written (here: a full disk). The old trial-0 is not its #0.
    store = Store(url)
    store.update_search_config(store.search("s")["id"], uid="a-study-made-again")

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(foldbag, "save_bag", refuse)
    again = search(demo_signal, trials=1, storage=url, study="s", **QUICK)
    assert Store(url).search("s")["config"]["answer_from"] == "refit"
    assert not list(root.glob("trial-*"))  # the stale bags are gone
    assert read_stamp(root)["uid"] == "a-study-made-again" == read_stamp(again.artifact)["uid"]


def test_a_bag_stamped_by_another_study_is_refit_with_a_warning(demo_signal, tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = search(demo_signal, trials=1, storage=url, study="o", **QUICK)
    bag = foldbag.candidates_dir(first.artifact) / f"trial-{first.best['trial']}"
    config = json.loads((bag / "automed_model.json").read_text())
    assert config["owner"]["uid"] == Store(url).search("o")["config"]["uid"]
    config["owner"]["uid"] = "another"  # e.g. written by a worker of another study
    (bag / "automed_model.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="not of study 'o'"):
        search(demo_signal, trials=1, storage=url, study="o", **QUICK)
    assert Store(url).search("o")["config"]["answer_from"] == "refit"


def test_predict_and_export_refuse_a_folder_stamped_for_another_study(demo_signal, tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    result = search(demo_signal, trials=1, storage=url, study="e", **QUICK)
    store = Store(url)
    assert export_model(store, "e", tmp_path / "ok").is_dir()
    assert read_stamp(tmp_path / "ok") == read_stamp(result.artifact)  # which study's answer
    stamp = Path(result.artifact) / STAMP
    mine = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**mine, "uid": "another", "storage": "sqlite:////x/b.db"}))
    with pytest.raises(DataError, match="holds the model of another study"):
        export_model(store, "e", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    predict = ["predict", str(demo_signal), "--study", "e", "--storage", url]
    out = CliRunner().invoke(cli, predict)
    assert isinstance(out.exception, DataError) and "another study" in str(out.exception)
    stamp.unlink()  # an answer being written (or one an interrupted run left)
    with pytest.raises(DataError, match="no stamp"):
        export_model(store, "e", tmp_path / "out")
    stamp.write_text(json.dumps(mine))
    assert CliRunner().invoke(cli, predict).exit_code == 0


def test_a_study_from_before_stamps_exports_only_a_model_of_its_data(demo_signal, tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    result = search(demo_signal, trials=1, storage=url, study="l", **QUICK)
    store = Store(url)
    info = store.search("l")
    store.update_search_config(info["id"], uid=None)  # written by an older automed
    (Path(result.artifact) / STAMP).unlink()
    assert export_model(store, "l", tmp_path / "ok").is_dir()
    config_path = Path(result.artifact) / "automed_model.json"
    config = json.loads(config_path.read_text())
    config["data"]["fingerprint"] = "0123456789abcdef"  # another dataset's model
    config_path.write_text(json.dumps(config))
    with pytest.raises(DataError, match="other data"):
        export_model(store, "l", tmp_path / "out")



def test_two_answers_saved_into_one_folder_at_once_leave_one_whole_model(tmp_path, monkeypatch):
    # Two leaders of one study (the same command started twice) both save their answer into
    # one folder. Written in place, the second's clear and write landing inside the first's
    # left the first's config naming a member the second had deleted.
    from types import SimpleNamespace

    import torch

    from automed.results import artifact
    from automed.searching.ensemble import save_ensemble

    folder = tmp_path / "answer"
    folder.mkdir()
    (folder / "report.html").write_text("the report", encoding="utf-8")
    pre = SimpleNamespace(modality="tabular", state=lambda: {})
    real, nested = artifact.save_artifact, []

    def save_artifact(where, model, preprocessor, info):
        if info["trial"] == 2 and not nested:  # the first leader is half-way through
            nested.append(True)
            save_ensemble(folder, {7: (torch.nn.Linear(2, 2), pre, {"trial": 7})},
                          {"by": "second", "ensemble": {"members": [{"folder": "member-7"}]}})
        return real(where, model, preprocessor, info)

    monkeypatch.setattr(artifact, "save_artifact", save_artifact)
    members = {t: (torch.nn.Linear(2, 2), pre, {"trial": t}) for t in (1, 2)}
    save_ensemble(folder, members, {"by": "first", "ensemble": {"members": [
        {"folder": "member-1"}, {"folder": "member-2"}]}})
    assert nested
    config = json.loads((folder / artifact.CONFIG).read_text(encoding="utf-8"))
    assert config["by"] == "first"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        artifact.CONFIG, "member-1", "member-2", "report.html"]
    assert all((folder / m["folder"] / artifact.WEIGHTS).is_file()
               for m in config["ensemble"]["members"])

    def failing(where, model, preprocessor, info):
        raise OSError("disk full")

    monkeypatch.setattr(artifact, "save_artifact", failing)
    with pytest.raises(OSError, match="disk full"):  # a failed write keeps the model it found
        save_ensemble(folder, {9: (torch.nn.Linear(2, 2), pre, {"trial": 9})}, {"by": "third"})
    assert json.loads((folder / artifact.CONFIG).read_text(encoding="utf-8"))["by"] == "first"
    assert not list(folder.glob(".model-*"))


def test_a_project_moved_with_its_database_still_predicts_and_exports(demo_signal, tmp_path):
    # QA: moving the folder of the database and its automed_models/ broke predict ("has no
    # stamp of the study it belongs to") and export ("the model ... is missing"): the folder
    # recorded was the old absolute path.
    import shutil

    project = tmp_path / "project"
    project.mkdir()
    result = search(demo_signal, trials=1, storage=f"sqlite:///{project / 'm.db'}", study="m",
                    **QUICK)
    assert Path(result.artifact).parent == project / "automed_models"
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    url = f"sqlite:///{moved / 'm.db'}"
    out = CliRunner().invoke(cli, ["predict", str(demo_signal), "--study", "m", "--storage", url,
                                   "-o", str(tmp_path / "p.csv")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "p.csv").read_text().count("\n") > 10
    out = CliRunner().invoke(cli, ["export", "--study", "m", "--storage", url,
                                   "-o", str(tmp_path / "ex")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "ex" / "MODEL_CARD.md").is_file()
    shutil.rmtree(moved / "automed_models")
    for command in (["predict", str(demo_signal)], ["export", "-o", str(tmp_path / "ex2")]):
        out = CliRunner().invoke(cli, [*command, "--study", "m", "--storage", url])
        assert out.exit_code != 0
        assert isinstance(out.exception, DataError)
        assert "the saved answer of study 'm' is missing (moved or deleted); keep its folder " \
               "in automed_models/ beside the database" in str(out.exception)


def test_a_resume_keeps_the_first_runs_artifacts_folder(demo_signal, tmp_path):
    # QA: resuming without the first run's --artifacts saved the answer beside the database
    # and left the first run's folder (and its candidates' fold models) behind.
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = search(demo_signal, trials=1, storage=url, study="r", artifacts=tmp_path / "mine",
                   **QUICK)
    assert Path(first.artifact).parent == tmp_path / "mine"
    again = search(demo_signal, trials=2, storage=url, study="r", **QUICK)
    assert again.resumed and Path(again.artifact).parent == tmp_path / "mine"
    assert not (tmp_path / "automed_models").exists()
    moved = search(demo_signal, trials=3, storage=url, study="r", artifacts=tmp_path / "other",
                   **QUICK)  # given again: the new folder
    assert Path(moved.artifact).parent == tmp_path / "other"
    # QA: the answer became a refit there with other test scores, unsaid
    assert any(w.startswith(f"study 'r' keeps its candidates' fold models in {tmp_path / 'mine'}"
                            f", and this run saves to {tmp_path / 'other'}: the answer is refit")
               for w in moved.warnings), moved.warnings


def test_a_resume_that_switches_pruning_says_so(demo_signal, tmp_path):
    # QA: a resume without --no-prune pruned unsaid, and its plan then spoke for every worker
    url = f"sqlite:///{tmp_path / 'p.db'}"
    search(demo_signal, trials=1, storage=url, study="p", **QUICK)
    again = search(demo_signal, trials=2, storage=url, study="p", **{**QUICK, "prune": True})
    assert any(w.startswith("this run prunes, the study's earlier runs did not (--no-prune)")
               for w in again.warnings), again.warnings


def test_a_long_file_names_default_study_name_fits_and_resumes(demo_signal, tmp_path):
    # QA: a 250-character file name made a 269-character study (--study refuses past 120)
    import shutil

    from automed.searching.runner import MAX_STUDY_NAME

    long = tmp_path / ("ecg_" + "x" * 200 + ".npz")
    shutil.copy(demo_signal, long)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    first = search(long, trials=1, storage=url, **QUICK)
    assert len(first.study) <= MAX_STUDY_NAME and first.study.startswith("ecg_xxx")
    again = search(long, trials=2, storage=url, **QUICK)
    assert again.resumed and again.study == first.study


def test_a_moved_project_resumes_with_its_own_fold_models(demo_signal, tmp_path):
    # QA (reproducibility): the same command on a moved folder refit the answer (other test
    # scores, unsaid) and left the first run's fold models unread: the folder's name hashes
    # the database's path.
    import shutil

    project = tmp_path / "a"
    project.mkdir()
    quick = {**QUICK, "ensemble": False}
    first = search(demo_signal, trials=1, storage=f"sqlite:///{project / 'm.db'}", study="m",
                   **quick)
    shutil.move(project, tmp_path / "b")
    events = []
    again = search(demo_signal, trials=2, storage=f"sqlite:///{tmp_path / 'b' / 'm.db'}",
                   study="m", progress=events.append, **quick)
    kinds = [e["event"] for e in events]
    assert "answer" in kinds and "refit" not in kinds, kinds
    assert Path(again.artifact).name == Path(first.artifact).name
    kept = sorted(p.name for p in (tmp_path / "b" / "automed_models").iterdir()
                  if not p.name.startswith("."))  # the answer's lock file is hidden
    assert kept == [Path(first.artifact).name, Path(first.artifact).name + ".candidates"]


def test_a_resume_that_trains_otherwise_says_so(demo_signal, tmp_path):
    # QA (reproducibility): a resume without --deterministic (or with bf16 switched) was taken
    # unsaid, and the stored manifest then spoke for every candidate.
    from automed.searching.runner import _changed_numerics

    url = f"sqlite:///{tmp_path / 'd.db'}"
    search(demo_signal, trials=1, storage=url, study="d", **{**QUICK, "deterministic": True})
    again = search(demo_signal, trials=2, storage=url, study="d", **QUICK)
    assert any("this run is not --deterministic, the study's earlier runs were" in w
               for w in again.warnings), again.warnings
    [said] = _changed_numerics({"cpu_bf16": True}, {"cpu_bf16": False})
    assert said.startswith("this run trains without bf16 autocast on the CPU, the study's "
                           "earlier runs with")
    assert _changed_numerics({"cpu_bf16": True, "deterministic": True},
                             {"cpu_bf16": True, "deterministic": True}) == []
