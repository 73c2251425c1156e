"""Model folders are automed's own: a search never writes or deletes a model through a
symbolic link planted at the (predictable) name of a study's answer folder, its lock or its
candidates' folder, never clears a folder holding model files automed did not write, and a
model whose edited config says nonsense (weights nan or 1e308, JSON nested 100,000 deep) is
refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from automed.data.loaders import load_data
from automed.errors import DataError
from automed.results import artifact
from automed.results.artifact import (
    CONFIG,
    STAMP,
    WEIGHTS,
    LoadedModel,
    artifact_folder_name,
    read_stamp,
    replacing_model,
    save_artifact,
)
from automed.searching import foldbag
from automed.searching.runner import search

QUICK = dict(folds=2, max_epochs=1, bootstrap=0, prune=False, seed=0, ensemble=False)


def _victim(root: Path) -> Path:
    """A folder of someone else's files named like a model's."""
    victim = root / "victim"
    (victim / "fold-0").mkdir(parents=True)
    (victim / "fold-0" / "notes.txt").write_text("precious", encoding="utf-8")
    (victim / WEIGHTS).write_text("precious", encoding="utf-8")
    (victim / "trial-0").mkdir()
    (victim / "trial-0" / "notes.txt").write_text("precious", encoding="utf-8")
    return victim


def _intact(victim: Path) -> bool:
    return (sorted(str(p.relative_to(victim)) for p in victim.rglob("*")) ==
            sorted([WEIGHTS, "fold-0", "fold-0/notes.txt", "trial-0", "trial-0/notes.txt"]))


def _write_model(stage: Path, tag: str) -> None:
    (stage / WEIGHTS).write_text(tag, encoding="utf-8")
    (stage / CONFIG).write_text(json.dumps({"format": artifact.FORMAT, "tag": tag}),
                                encoding="utf-8")


def test_a_search_refuses_a_linked_answer_folder_before_training(demo_signal, tmp_path,
                                                                 monkeypatch):
    import automed.searching.runner as runner

    url = f"sqlite:///{tmp_path / 's.db'}"
    victim, arts = _victim(tmp_path), tmp_path / "arts"
    arts.mkdir()
    name = artifact_folder_name("sym1", url)
    (arts / name).symlink_to(victim)

    def trained(*args, **kwargs):
        raise AssertionError("the search trained before refusing the link")

    monkeypatch.setattr(runner, "run_trials", trained)
    with pytest.raises(DataError, match="is a symbolic link.*remove the link") as info:
        search(demo_signal, trials=1, storage=url, study="sym1", artifacts=arts, **QUICK)
    assert str(arts / name) in str(info.value) and "\n" not in str(info.value)
    assert _intact(victim)
    # the candidates' folder beside it, linked: refused too
    (arts / name).unlink()
    (arts / (name + foldbag.SUFFIX)).symlink_to(victim)
    with pytest.raises(DataError, match=r"\.candidates is a symbolic link"):
        search(demo_signal, trials=1, storage=url, study="sym1", artifacts=arts, **QUICK)
    assert _intact(victim) and not (victim / STAMP).exists()


def test_a_default_model_folder_it_cannot_write_is_refused_before_the_study_opens(
        demo_signal, tmp_path, monkeypatch):
    # QA: a read-only automed_models/ beside the database failed the search with a
    # PermissionError traceback once a candidate kept its fold models, the study "failed"
    import tempfile

    from automed.errors import ConfigError
    from automed.storage import Store

    url = f"sqlite:///{tmp_path / 's.db'}"
    models = tmp_path / "automed_models"
    models.mkdir()
    real = tempfile.TemporaryFile

    def read_only(*args, **kwargs):  # root writes anywhere: the refusal is simulated
        if Path(kwargs.get("dir") or ".") == models:
            raise PermissionError(1, "Operation not permitted")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(ConfigError, match=f"cannot write the study's models in {models} "
                       r"\(Operation not permitted\); make it writable, or give --artifacts"):
        search(demo_signal, trials=1, storage=url, study="ro", **QUICK)
    assert Store(url).studies() == []  # nothing opened, nothing marked failed
    search(demo_signal, trials=1, storage=url, study="ro", artifacts=tmp_path / "elsewhere",
           **QUICK)


def test_a_linked_model_folder_is_never_written_or_cleared(tmp_path):
    victim = _victim(tmp_path)
    link = tmp_path / "answer"
    link.symlink_to(victim)
    with pytest.raises(DataError, match="answer is a symbolic link"):
        with replacing_model(link) as stage:
            _write_model(stage, "new")
    with pytest.raises(DataError, match="symbolic link"):
        artifact.clear_model_folder(link)
    assert _intact(victim)


def test_a_linked_lock_is_never_followed(tmp_path):
    folder, target = tmp_path / "answer", tmp_path / "elsewhere.txt"
    (tmp_path / ".answer.lock").symlink_to(target)  # the lock beside the folder
    with pytest.raises(DataError, match=r"\.answer\.lock is a symbolic link"):
        with replacing_model(folder) as stage:
            _write_model(stage, "new")
    assert not target.exists()


def test_a_folder_with_files_automed_did_not_write_is_not_cleared(tmp_path):
    victim = _victim(tmp_path)
    with pytest.raises(DataError, match="holds files automed did not write") as info:
        with replacing_model(victim) as stage:
            _write_model(stage, "new")
    assert str(victim) in str(info.value) and "\n" not in str(info.value)
    assert _intact(victim)
    with pytest.raises(DataError, match="did not write"):
        artifact.clear_model_folder(victim)
    assert _intact(victim)
    # a folder holding a model automed wrote (its stamp removed while a search rewrites it,
    # or one from before stamps) is replaced as before, keeping anything else in it
    ours = tmp_path / "ours"
    with replacing_model(ours) as stage:
        _write_model(stage, "first")
    (ours / "report.html").write_text("kept", encoding="utf-8")
    with replacing_model(ours) as stage:
        _write_model(stage, "second")
    assert json.loads((ours / CONFIG).read_text())["tag"] == "second"
    assert (ours / "report.html").read_text() == "kept"
    # and a stamped one: the study's own folder
    artifact.write_stamp(ours, {"format": artifact.STAMP_FORMAT, "study": "s", "uid": "u"})
    (ours / CONFIG).unlink()
    (ours / "fold-3").mkdir()
    with replacing_model(ours) as stage:
        _write_model(stage, "third")
    assert json.loads((ours / CONFIG).read_text())["tag"] == "third"
    assert not (ours / "fold-3").exists() and read_stamp(ours)["uid"] == "u"


def test_the_candidates_folder_is_never_linked_or_cleared_of_others_files(tmp_path):
    stamp = {"format": artifact.STAMP_FORMAT, "study": "s", "uid": "u1"}
    victim = _victim(tmp_path)
    link = tmp_path / ("answer" + foldbag.SUFFIX)
    link.symlink_to(victim)
    with pytest.raises(DataError, match="symbolic link"):
        foldbag.claim(link, stamp)
    assert _intact(victim) and not (victim / STAMP).exists()
    # a real folder holding a trial-* automed did not write, without automed's stamp
    with pytest.raises(DataError, match="trial-0 that automed did not write") as info:
        foldbag.claim(victim, stamp)
    assert str(victim) in str(info.value) and "\n" not in str(info.value)
    assert _intact(victim)
    # another study's bags (its stamp) go, as before; this study's stay
    root = tmp_path / "ours"
    (root / "trial-4").mkdir(parents=True)
    artifact.write_stamp(root, {**stamp, "uid": "another"})
    foldbag.claim(root, stamp)
    assert not (root / "trial-4").exists() and read_stamp(root)["uid"] == "u1"
    (root / "trial-5").mkdir()
    foldbag.claim(root, stamp)
    assert (root / "trial-5").is_dir()


# -- edited configs --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bag_answer(demo_signal, tmp_path_factory) -> Path:
    """A saved answer whose config blends two fold models (weight 0.5 each)."""
    where = tmp_path_factory.mktemp("bag")
    result = search(demo_signal, trials=1, storage=f"sqlite:///{where / 'b.db'}", study="b",
                    artifacts=where / "arts", **QUICK)
    config = json.loads((Path(result.artifact) / CONFIG).read_text(encoding="utf-8"))
    assert [m["weight"] for m in config["ensemble"]["members"]] == [0.5, 0.5]
    return Path(result.artifact)


def _edited(bag_answer: Path, tmp_path: Path, weights: list) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(bag_answer, folder)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    for member, weight in zip(config["ensemble"]["members"], weights):
        member["weight"] = weight
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.mark.parametrize("weights", [[float("nan"), 0.5], ["nan", 0.5], [1e308, 1e308],
                                     [float("inf"), 0.5], [-0.5, 1.5], [0.0, 0.0]])
def test_member_weights_that_are_no_weights_are_refused(bag_answer, tmp_path, weights):
    folder = _edited(bag_answer, tmp_path, weights)
    with pytest.raises(DataError, match="weight") as info:
        LoadedModel(folder)
    assert str(folder / CONFIG) in str(info.value) and "\n" not in str(info.value)


def test_a_huge_weight_still_predicts_probabilities(bag_answer, tmp_path, demo_signal):
    x = load_data(demo_signal).test.x
    proba = LoadedModel(_edited(bag_answer, tmp_path, [1e308, 0.5])).predict_proba(x)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    first = LoadedModel(tmp_path / "model" / "fold-0").predict_proba(x)
    np.testing.assert_allclose(proba, first, atol=1e-6)  # all of the weight is fold-0's


def test_a_config_nested_too_deeply_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "model"
    save_artifact(folder, torch.nn.Linear(2, 2),
                  type("P", (), {"modality": "tabular", "state": lambda self: {}})(), {})
    (folder / CONFIG).write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as info:
        LoadedModel(folder)
    assert "\n" not in str(info.value) and str(folder / CONFIG) in str(info.value)
    (folder / STAMP).write_text("{\"a\":" * 100_000, encoding="utf-8")
    assert read_stamp(folder) is None  # no stamp, not a RecursionError
    assert foldbag.owner_of(folder) is None
