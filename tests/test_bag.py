"""Seed bagging (``--refit-full --bag``): the answer is refit with several seeds and answers
with the mean of their probabilities, on every loader; and the answer, refit or made of fold
models, trains what the candidate trained."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from automed.data.loaders import load_data
from automed.plugin_manager import get_plugin_manager, reset_plugin_manager
from automed.results.artifact import LoadedModel
from automed.results.model_card import render_model_card
from automed.searching.plan import SearchPlan
from automed.searching.prepare import prepare
from automed.searching.refit import refit_best
from automed.searching.runner import search
from automed.searching.training import SeedBag, predict_proba
from automed.spec import Spec
from automed.storage import Store
from tests.cohort import FORMATS, write

LABEL_COL = {"signal": "label"}
GROUP_COL = {"npz": "groups"}
TINY = str(Path(__file__).with_name("tiny_arch.py"))


def test_a_seed_bag_answers_with_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    members = [torch.nn.Linear(4, 3) for _ in range(3)]
    x = torch.randn(5, 4)
    mean = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
    assert torch.allclose(torch.softmax(SeedBag(members)(x), 1), mean, atol=1e-6)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_bag_refits_several_seeds_and_the_artifact_predicts_their_mean(fmt, tmp_path):
    path = write(fmt, tmp_path)
    storage = f"sqlite:///{tmp_path / 'bag.db'}"
    opts = dict(format=FORMATS[fmt], label_col=LABEL_COL.get(fmt),
                group_col=GROUP_COL.get(fmt, "patient"))
    result = search(path, **opts, storage=storage, study="bag", trials=1, folds=2, max_epochs=2,
                    bootstrap=0, refit_full=True, bag=2, ensemble=False, prune=False,
                    artifacts=tmp_path / "models")
    assert isinstance(result.model, SeedBag) and len(result.model.members) == 2
    x = load_data(path, **opts).train.x[:40]
    tensor = result.preprocessor.transform(x)
    bf16 = get_plugin_manager().architectures()[result.best["architecture"]].cpu_bf16
    each = [predict_proba(m, tensor, cpu_bf16=bf16) for m in result.model.members]
    # Rows unlike the training rows (which an interpolating ridge head, rocket's default on
    # small sets, scores alike whatever its seed): the seeds' models differ there.
    unseen = (tensor + 0.5 * torch.randn(tensor.shape, generator=torch.Generator().manual_seed(0))
              if tensor.is_floating_point() else tensor)
    apart = [predict_proba(m, unseen, cpu_bf16=bf16) for m in result.model.members]
    assert not np.allclose(apart[0], apart[1], atol=1e-4), "the seeds trained the same model"
    loaded = LoadedModel(result.artifact)
    assert loaded.config["bag"] == 2
    np.testing.assert_allclose(loaded.predict_proba(x), np.mean(each, 0), atol=1e-5)
    assert "refit 2 times" in render_model_card(loaded.config)


def test_bag_seeds_that_would_end_past_the_deadline_are_skipped(demo_signal, tmp_path):
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    result = search(demo_signal, storage=storage, study="d", trials=1, folds=2,
                    max_epochs=2, bootstrap=0, refit=False)
    plan = SearchPlan.from_dict(Store(storage).search("d")["config"]["plan"])
    p = prepare(plan)
    trial = optuna.load_study(study_name=result.study, storage=storage).trials[0]
    late = refit_best(p, trial, torch.device("cpu"), seeds=3,
                      deadline=time.monotonic() - 1.0)
    assert late.seeds == 1 and not isinstance(late.model, SeedBag)  # the first always trains
    full = refit_best(p, trial, torch.device("cpu"), seeds=3,
                      deadline=time.monotonic() + 600.0)
    assert full.seeds == 3 and len(full.model.members) == 3


@pytest.mark.parametrize("refit_full", [True, False], ids=["refit", "fold-models"])
def test_the_answer_trains_the_constants_a_family_space_returns(demo_image, tmp_path,
                                                                monkeypatch, refit_full):
    # tinymlp's training_space returns batch_size 16, weight_decay 0 and augment False
    # without asking the study; the refit used to train the defaults (64, 1e-4) instead.
    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", TINY)
    reset_plugin_manager()
    try:
        storage = f"sqlite:///{tmp_path / 'c.db'}"
        result = search(demo_image, storage=storage, study="c", trials=2, folds=2,
                        max_epochs=2, bootstrap=0, refit_full=refit_full,
                        bag=1 if refit_full else None, ensemble=False,
                        architectures=["tinymlp"], artifacts=tmp_path / "models")
        params = LoadedModel(result.artifact).config["params"]
        assert (params["batch_size"], params["weight_decay"], params["augment"]) == \
            (16, 0.0, False)
        stored = {r["trial"]: r["params"] for r in Store(storage).candidates("c")}
        assert params == {k: v for k, v in stored[result.best["trial"]].items()}
    finally:
        reset_plugin_manager()


def test_images_always_augment_and_balance_classes_in_the_default_space(demo_image, tmp_path):
    # Neither is searched for images: CV cannot see what they buy on a shifted test set.
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    search(demo_image, storage=storage, study="a", trials=3, folds=2, max_epochs=1,
           bootstrap=0, refit=False, prune=False)
    study = optuna.load_study(study_name="a", storage=storage)
    drawn = {k.split(".")[-1] for t in study.trials for k in t.params}
    assert "sampler" in drawn and not drawn & {"augment", "class_weight"}
    stored = [r["params"] for r in Store(storage).candidates("a")]
    assert len(stored) == 3
    assert all(p["augment"] is True and p["class_weight"] == "balanced" for p in stored)


def test_only_images_fix_class_weights_and_augmentation():
    from automed.contract import _Probe
    from automed.searching.training import default_training_space

    signal, image = _Probe({}), _Probe({})
    default_training_space(signal, Spec("signal", (1, 8), 2))
    drawn = default_training_space(image, Spec("image", (1, 8, 8), 2))
    assert {"class_weight", "augment", "sampler"} <= set(signal.space)
    assert "sampler" in image.space and not {"class_weight", "augment"} & set(image.space)
    assert (drawn["class_weight"], drawn["augment"]) == ("balanced", True)


@pytest.mark.slow
def test_bag_with_two_workers_and_a_resume_that_changes_it(demo_signal, tmp_path):
    # Workers only search; the refit (and its bag) is the leader's, after them. A resumed run
    # may ask for another bag: it refits the same answer with that many seeds.
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    opts = dict(storage=storage, study="w", trials=2, folds=2, max_epochs=2, bootstrap=0,
                ensemble=False, artifacts=tmp_path / "models", refit_full=True)
    two = search(demo_signal, workers=2, bag=2, **opts)
    assert isinstance(two.model, SeedBag) and len(two.model.members) == 2
    assert LoadedModel(two.artifact).config["bag"] == 2
    one = search(demo_signal, bag=1, **opts)
    assert one.resumed and one.best["trial"] == two.best["trial"]
    assert not isinstance(one.model, SeedBag)
    assert LoadedModel(one.artifact).config["bag"] == 1


def test_the_refit_reserve_keeps_at_least_one_refit_of_a_long_candidate():
    from types import SimpleNamespace

    from automed.searching.objective import Objective

    def reserve(*seconds: float, timeout: float = 900.0) -> float:
        obj = SimpleNamespace(deadline=0.0, refits_after=9, reserve=0.0,
                              plan=SimpleNamespace(folds=3, timeout=timeout))
        for s in seconds:  # candidates completing in this order
            Objective._reserve_for_refit(obj, s)
        return obj.reserve

    assert reserve(100.0) == pytest.approx(225.0)  # 9 refits of 50 s: capped at a quarter
    assert reserve(20.0) == pytest.approx(90.0)  # 9 refits of 10 s fit under the cap
    # PneumoniaMNIST's first candidate: 525 s of CV, one refit about 262 s > the 225 s cap
    assert reserve(525.0) == pytest.approx(262.5)
    # ... and a short candidate completing after it does not shrink the reserve back
    assert reserve(525.0, 57.0) == pytest.approx(262.5)
    assert reserve(57.0, 525.0) == pytest.approx(262.5)


def test_bag_seeds_leave_time_for_the_bags_test_prediction(demo_signal, tmp_path, monkeypatch):
    """ECGFiveDays (23 training series, 861 test series): the seeds were paced by their
    training alone, and the bag's test prediction (once per seed) ended the refit 15 s past
    --timeout. A seed now also counts one test prediction per seed in the bag."""
    import automed.searching.refit as refit_module

    storage = f"sqlite:///{tmp_path / 'd.db'}"
    result = search(demo_signal, storage=storage, study="d", trials=1, folds=2,
                    max_epochs=2, bootstrap=0, refit=False)
    plan = SearchPlan.from_dict(Store(storage).search("d")["config"]["plan"])
    p = prepare(plan)
    assert p.test is not None
    trial = optuna.load_study(study_name=result.study, storage=storage).trials[0]
    real, calls = refit_module.predict_proba, []

    def slow(model, x, **kw):  # a slow test prediction: 0.5 s per seed in the model
        calls.append(len(getattr(model, "members", [model])))
        time.sleep(0.5 * calls[-1])
        return real(model, x, **kw)

    monkeypatch.setattr(refit_module, "predict_proba", slow)
    started = time.monotonic()
    one = refit_best(p, trial, torch.device("cpu"), seeds=3, deadline=started + 1.2)
    # after the first seed and its 0.5 s prediction, a second seed plus a two-seed bag's
    # 1.0 s of prediction would not fit: one seed, whose prediction is reused
    assert one.seeds == 1 and calls == [1]
    assert one.test_scores is not None
    calls.clear()
    three = refit_best(p, trial, torch.device("cpu"), seeds=3,
                       deadline=time.monotonic() + 600.0)
    assert three.seeds == 3 and calls == [1, 3]  # timed on the first seed, then the bag
