"""Multi-fidelity and collapsed candidates: epoch-level reports, early stops with a reason."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest

from automed.errors import AutomedError
from automed.searching.fidelity import (
    FOLD_STEP,
    Collapsed,
    CollapseWatch,
    collapse_reason,
    constant_loss,
    final_collapse,
    fold_step,
)
from automed.searching.runner import search
from automed.storage import Store

HERE = Path(__file__).parent


def test_collapse_reason_names_the_class_and_share():
    y = np.array([0] * 60 + [1] * 40)
    assert collapse_reason(np.ones(100, int), y, ["neg", "pos"]) == \
        "predicts class pos for 100 % of samples"
    assert collapse_reason(np.array([1] * 98 + [0] * 2), y, ["a", "b"]) is not None
    assert collapse_reason(np.array([1] * 90 + [0] * 10), y, ["a", "b"]) is None
    # data whose own majority reaches the share: predicting it is no collapse
    assert collapse_reason(np.zeros(100, int), np.array([0] * 99 + [1]), ["a", "b"]) is None


def test_constant_loss_is_the_entropy_of_the_effective_prior():
    y = np.array([0] * 75 + [1] * 25)
    assert constant_loss(y, 2, "balanced", "shuffle", 0.0) == pytest.approx(math.log(2))
    assert constant_loss(y, 2, "none", "balanced", 0.0) == pytest.approx(math.log(2))
    assert constant_loss(y, 2, "none", "shuffle", 0.0) == \
        pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_watch_spares_a_warming_up_model_whose_loss_falls():
    y = np.array([0] * 50 + [1] * 50)
    watch = CollapseWatch(y, ["a", "b"], epochs=20, steps_per_epoch=20, constant_loss=0.693)
    for epoch, loss in enumerate([0.69, 0.5, 0.4, 0.3]):  # all one class, but learning
        watch.epoch(epoch, loss, np.zeros(100, int))
    stuck = CollapseWatch(y, ["a", "b"], epochs=20, steps_per_epoch=20, constant_loss=0.693)
    stuck.epoch(0, 0.70, np.zeros(100, int))
    with pytest.raises(Collapsed, match="predicts class a for 100 % of samples after epoch 2"):
        stuck.epoch(1, 0.70, np.zeros(100, int))


def test_collapse_is_not_judged_on_a_handful_of_validation_samples():
    # TwoLeadECG: 23 training series, 3 folds of 7-8; a rocket head with test accuracy 0.99
    # put all 7 of one fold in class 1 and was stopped as collapsed
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    assert collapse_reason(np.ones(7, int), y, ["1", "2"]) is None
    assert final_collapse(np.ones(7, int), y, ["1", "2"], steps=40) is None
    y20 = np.array([0] * 10 + [1] * 10)
    assert final_collapse(np.ones(20, int), y20, ["1", "2"], steps=40) == \
        "predicts class 2 for 100 % of samples"


def test_a_loss_that_has_not_fallen_is_collapse_only_without_better_than_majority_predictions():
    y = np.array([0] * 70 + [1] * 30)
    good = np.concatenate([np.zeros(65, int), np.ones(5, int), np.ones(30, int)])  # 0.95
    losses = [0.70] + [0.75] * 11  # the one-cycle peak: above the first epoch's loss
    learning = CollapseWatch(y, ["a", "b"], epochs=40, steps_per_epoch=3)
    for epoch, loss in enumerate(losses):
        learning.epoch(epoch, loss, good)  # epoch 12 is the check: no Collapsed raised
    chance = np.random.default_rng(0).integers(0, 2, 100)  # about 0.5 < the 0.7 majority
    stuck = CollapseWatch(y, ["a", "b"], epochs=40, steps_per_epoch=3)
    with pytest.raises(Collapsed, match="training loss did not fall"):
        for epoch, loss in enumerate(losses):
            stuck.epoch(epoch, loss, chance)


def test_fold_steps_never_meet_epoch_steps():
    assert fold_step(1) == FOLD_STEP + 1 > 1000


def test_collapsing_candidate_stops_within_two_epochs_with_its_reason(tmp_path, storage_url):
    from automed.demo import make_demo

    data = make_demo("image", tmp_path / "c.npz", n=200)
    with pytest.raises(AutomedError, match="no candidate"):
        search(data, trials=1, folds=2, storage=storage_url, refit=False,
               plugins=[HERE / "collapse_arch.py"], architectures=["constant"])
    rows = Store(storage_url).candidates("c-accuracy-cv2")
    assert [r["state"] for r in rows] == ["collapsed"]
    assert rows[0]["error"].startswith("predicts class 0 for 100 % of samples after epoch")
    study = optuna.load_study(study_name="c-accuracy-cv2", storage=storage_url)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    # one validation report per epoch trained: stopped after 2 of its 12 epochs
    assert sorted(trial.intermediate_values) == [0, 1]


def test_complete_candidate_reports_every_epoch_then_folds(demo_image, storage_url):
    result = search(demo_image, trials=1, folds=3, max_epochs=3, storage=storage_url,
                    refit=False)
    study = optuna.load_study(study_name=result.study, storage=storage_url)
    (trial,) = study.trials
    assert sorted(trial.intermediate_values) == [0, 1, 2, fold_step(1), fold_step(2)]
    assert trial.intermediate_values[fold_step(2)] == pytest.approx(trial.value)


def test_no_prune_reports_no_epochs_and_never_stops(tmp_path, storage_url):
    from automed.demo import make_demo

    data = make_demo("image", tmp_path / "np.npz", n=200)
    result = search(data, trials=1, folds=2, storage=storage_url, refit=False, prune=False,
                    plugins=[HERE / "collapse_arch.py"], architectures=["constant"])
    (row,) = Store(storage_url).candidates(result.study)
    assert row["state"] == "complete" and len(row["fold_scores"]) == 2
    (trial,) = optuna.load_study(study_name=result.study, storage=storage_url).trials
    assert sorted(trial.intermediate_values) == [fold_step(1)]


@pytest.mark.slow
def test_two_workers_then_a_resume_lose_and_duplicate_nothing_with_epoch_pruning(tmp_path):
    from test_workers import _assert_consistent

    from automed.demo import make_demo

    data = make_demo("image", tmp_path / "w.npz", n=200)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    first = search(data, trials=5, folds=2, max_epochs=3, workers=2, heartbeat=1,
                   storage=url, bootstrap=0)
    _assert_consistent(url, first.study, 5)
    resumed = search(data, trials=8, folds=2, max_epochs=3, storage=url, bootstrap=0)
    assert resumed.resumed
    _assert_consistent(url, first.study, 8)
    study = optuna.load_study(study_name=first.study, storage=url)
    # A trial two workers started at once past the budget is 'surplus': it never trained.
    counted = [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING
               and t.user_attrs.get("automed_state") != "surplus"]
    assert len({t.number for t in counted}) == len(counted) == 8
    # each worker reported fold 0 per epoch: every trial that trained has epoch steps
    trained = [t for t in counted if t.intermediate_values]
    assert trained and all(0 in t.intermediate_values for t in trained)
    rows = Store(url).candidates(first.study)
    assert {r["trial"] for r in rows if r["trial"] >= 0} == {t.number for t in counted}


def test_noisy_median_pruner_spares_a_candidate_within_fold_noise():
    import optuna

    from automed.searching.fidelity import NoisyMedianPruner

    pruner = NoisyMedianPruner(n_startup_trials=1, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(
        value=0.83, intermediate_values={0: 0.70, 1: 0.84, 2: 0.85},
        user_attrs={"fold_scores": [0.80, 0.86]}))  # fold noise: std 0.03

    def verdict(values: dict[int, float]) -> bool:
        trial = study.ask()
        for step, v in values.items():
            trial.report(v, step)
        frozen = study._storage.get_trial(trial._trial_id)
        return pruner.prune(study, frozen)

    assert not verdict({0: 0.5})  # epoch 0 is never judged
    assert not verdict({0: 0.6, 1: 0.82})  # 0.02 behind the bar: within the noise
    assert verdict({0: 0.6, 1: 0.80})  # 0.04 behind: stops
    assert not verdict({0: 0.6, 1: 0.80, 2: 0.83})  # its best so far, 0.83, is within
    assert not verdict({0: 0.6, 1: 0.80, 5: 0.1})  # no completed candidate reported step 5
    # a plain median (no noise measured yet) would stop the 0.82 candidate
    bare = optuna.create_study(direction="maximize", pruner=pruner)
    bare.add_trial(optuna.trial.create_trial(value=0.83, intermediate_values={1: 0.84}))
    t = bare.ask()
    t.report(0.82, 1)
    assert pruner.prune(bare, bare._storage.get_trial(t._trial_id))
