"""Multi-fidelity and collapsed candidates: epoch-level reports, early stops with a reason."""

from __future__ import annotations

import math
import warnings
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
    rows = Store(storage_url).candidates("c.npz-accuracy-cv2")
    assert [r["state"] for r in rows] == ["collapsed"]
    assert rows[0]["error"].startswith("predicts class 0 for 100 % of samples after epoch")
    study = optuna.load_study(study_name="c.npz-accuracy-cv2", storage=storage_url)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    # one validation report per epoch trained: stopped after 2 of its 12 epochs
    assert sorted(trial.intermediate_values) == [0, 1]


def test_complete_candidate_reports_every_epoch_then_folds(demo_image, storage_url):
    result = search(demo_image, trials=1, folds=3, max_epochs=3, storage=storage_url,
                    refit=False)
    study = optuna.load_study(study_name=result.study, storage=storage_url)
    (trial,) = study.trials
    assert sorted(trial.intermediate_values) == [0, 1, 2, fold_step(0), fold_step(1),
                                                 fold_step(2)]
    assert trial.intermediate_values[fold_step(2)] == pytest.approx(trial.value)


def test_no_prune_reports_no_epochs_and_never_stops(tmp_path, storage_url):
    from automed.demo import make_demo

    data = make_demo("image", tmp_path / "np.npz", n=200)
    result = search(data, trials=1, folds=2, storage=storage_url, refit=False, prune=False,
                    plugins=[HERE / "collapse_arch.py"], architectures=["constant"])
    (row,) = Store(storage_url).candidates(result.study)
    assert row["state"] == "complete" and len(row["fold_scores"]) == 2
    (trial,) = optuna.load_study(study_name=result.study, storage=storage_url).trials
    assert sorted(trial.intermediate_values) == [fold_step(0), fold_step(1)]


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


def test_noisy_median_pruner_never_takes_less_noise_than_one_folds_sampling_error():
    """splice: the first candidate's fold scores were equal (fold noise 0) and a candidate
    0.003 behind it at epoch 3 of 851 validation samples was stopped; run to the end it beat
    the answer. One binomial standard error there is 0.012."""
    import optuna

    from automed.searching.fidelity import NoisyMedianPruner, sampling_error

    assert sampling_error(0.861, 851) == pytest.approx(0.01186, abs=1e-4)
    assert sampling_error(0.9, None) == 0.0
    pruner = NoisyMedianPruner(n_startup_trials=1, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(
        value=0.95, intermediate_values={0: 0.70, 1: 0.80, 2: 0.861},
        user_attrs={"fold_scores": [0.95, 0.95, 0.95]}))  # fold noise: 0

    def verdict(score: float, samples: int | None) -> bool:
        trial = study.ask()
        if samples is not None:
            trial.set_user_attr("val_samples", samples)
        trial.report(0.77, 0)
        trial.report(score, 2)
        return pruner.prune(study, study._storage.get_trial(trial._trial_id))

    assert verdict(0.858, None)  # no sample count: the plain median rule stops it
    assert not verdict(0.858, 851)  # within one standard error of 851 samples
    assert verdict(0.840, 851)  # 0.021 behind: more than the sampling error
    assert not verdict(0.840, 182)  # on 182 samples one standard error is 0.026


def test_the_leading_familys_portfolio_start_is_judged_on_its_folds_not_its_epochs():
    """On splice the biosequence default (CV 0.957 run to the end) was stopped at epoch 3
    against the first portfolio start's 0.955: early epochs of a one-cycle schedule say
    little. Other families' starts are judged like any candidate (they cost too much)."""
    import optuna

    from automed.searching.fidelity import FOLD_STEP, PORTFOLIO_ATTR, NoisyMedianPruner

    pruner = NoisyMedianPruner(n_startup_trials=1, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(
        value=0.95, intermediate_values={1: 0.85, 2: 0.89, FOLD_STEP: 0.95,
                                         FOLD_STEP + 1: 0.95},
        params={"architecture": "cnn"},
        distributions={"architecture": optuna.distributions.CategoricalDistribution(
            ["cnn", "rnn"])},
        user_attrs={"fold_scores": [0.95, 0.95, 0.95]}))

    def verdict(values: dict[int, float], start: str | None) -> bool:
        trial = study.ask()
        if start:
            trial.set_user_attr(PORTFOLIO_ATTR, start)
        for step, v in values.items():
            trial.report(v, step)
        return pruner.prune(study, study._storage.get_trial(trial._trial_id))

    assert verdict({1: 0.60, 2: 0.70}, None)  # a searched candidate this far behind stops
    assert not verdict({1: 0.60, 2: 0.70}, "cnn")  # the leading family's start goes on ...
    # ... to its fold steps, the first of them at the end of fold 0 (a whole fold sooner than
    # when fold 0 reported nothing: on PneumoniaMNIST the default's second fold took ~100 s)
    assert verdict({1: 0.60, 2: 0.70, FOLD_STEP: 0.80}, "cnn")
    assert not verdict({1: 0.60, 2: 0.70, FOLD_STEP: 0.95}, "cnn")  # level with the leader
    assert verdict({1: 0.60, 2: 0.70}, "rnn")  # another family's start is judged by epoch


def test_a_candidate_that_cannot_finish_before_the_refits_stops_after_two_epochs():
    """PneumoniaMNIST: a 525 s candidate started late would be stopped at the limit with
    nothing to show; at its measured pace it is stopped after PACE_EPOCHS epochs instead."""
    import time
    from types import SimpleNamespace

    from automed.searching.objective import PACE_EPOCHS, Objective, WontFinish

    seen = []
    o = Objective.__new__(Objective)
    o.plan, o.reserve, o._complete = SimpleNamespace(folds=3), 5.0, True
    o.shortest_epoch = None
    now = time.monotonic()
    o._started = now - 4.0  # two epochs in 4 s: 2 s an epoch, 28 epochs (56 s) to go
    watch = o._pace_watch(lambda e, loss: seen.append(e), {"epochs": 10})
    o.deadline = now + 30.0  # 25 s left before the refits' 5 s
    watch(0, 1.0)  # one epoch is not a pace yet
    with pytest.raises(WontFinish, match=r"would need about 5\d s more"):
        watch(PACE_EPOCHS - 1, 1.0)
    assert seen == [0, PACE_EPOCHS - 1]  # pruning and collapse checks ran first
    o.deadline = now + 70.0  # 65 s left: it fits and goes on
    watch(PACE_EPOCHS - 1, 1.0)
    o.deadline, o._complete = now + 30.0, False  # nothing complete: a search always answers
    o.store, o.study_name = None, None
    o.has_complete = lambda: False
    watch(PACE_EPOCHS - 1, 1.0)
    o.deadline = None  # no --timeout: nothing to fit
    watch(PACE_EPOCHS - 1, 1.0)


def test_no_candidate_starts_in_less_time_than_the_quickest_first_epoch():
    """PneumoniaMNIST, 900 s: a candidate started 8 s before the limit trained one 9 s epoch
    and ended the search past it. The quickest fold-0 first epoch seen is the floor."""
    import time
    from types import SimpleNamespace

    from automed.searching.objective import Objective

    o = Objective.__new__(Objective)
    o.plan, o.reserve, o._complete, o.shortest_epoch = SimpleNamespace(folds=3), 5.0, True, None
    o.deadline = time.monotonic() + 20.0  # 15 s left before the answer's 5 s
    assert not o.no_time_for_another()  # no epoch seen yet: nothing to go by
    watch = o._pace_watch(lambda e, loss: None, {"epochs": 10})
    o._started = time.monotonic() - 9.0
    watch(0, 1.0)  # a first epoch of about 9 s
    assert 9.0 <= o.shortest_epoch < 10.0 and not o.no_time_for_another()
    o._started = time.monotonic() - 30.0
    watch(0, 1.0)  # a slower candidate's first epoch does not raise the floor
    assert o.shortest_epoch < 10.0
    o.deadline = time.monotonic() + 12.0  # 7 s left: under the 9 s epoch
    assert o.no_time_for_another()
    o._complete = False
    o.store, o.study_name = None, None
    o.has_complete = lambda: False  # nothing complete yet: a search always answers
    assert not o.no_time_for_another()
    o.deadline = None  # no --timeout
    assert not o.no_time_for_another()


def test_a_slow_candidate_reports_each_fold_it_finishes(demo_signal, tmp_path, monkeypatch,
                                                         capsys):
    """A candidate running past FOLD_PROGRESS_S prints a line per finished fold (not the
    last: its candidate line follows), so a 16-minute portfolio start is not silent."""
    from automed.cli import _Progress
    from automed.searching import objective
    from automed.searching.runner import search

    events = []
    show = _Progress(quiet=False)

    def both(e):
        events.append(e)
        show(e)

    monkeypatch.setattr(objective, "FOLD_PROGRESS_S", 0.0)  # every candidate counts as slow
    search(demo_signal, trials=1, folds=3, max_epochs=1, storage=f"sqlite:///{tmp_path}/f.db",
           seed=0, refit=False, prune=False, progress=both)
    folds = [e for e in events if e["event"] == "fold"]
    assert [(e["trial"], e["fold"], e["folds"]) for e in folds] == [(0, 1, 3), (0, 2, 3)]
    assert all(0 <= e["score"] <= 1 and e["elapsed_s"] > 0 for e in folds)
    err = capsys.readouterr().err
    assert "fold 1/3: " in err and "fold 2/3: " in err and "s so far)" in err
    monkeypatch.setattr(objective, "FOLD_PROGRESS_S", 3600.0)  # a quick candidate: silent
    events.clear()
    search(demo_signal, trials=1, folds=3, max_epochs=1, storage=f"sqlite:///{tmp_path}/g.db",
           seed=0, refit=False, prune=False, progress=events.append)
    assert not [e for e in events if e["event"] == "fold"]


def test_the_first_candidate_is_sized_to_its_share_of_the_time():
    """A first candidate is exempt from the limit, so on a slow CPU one could be the whole
    search (PneumoniaMNIST, 30 epochs: 948 s of 900). At fold 0's pace it restarts with the
    epochs that fit FIRST_SHARE of the time left: here a 10 s first epoch, then 5 s each."""
    from types import SimpleNamespace

    from automed.searching import objective
    from automed.searching.objective import FIRST_SHARE, MIN_SIZED_EPOCHS, Objective, _Resize

    o = Objective.__new__(Objective)
    o.plan, o.reserve, o._started = SimpleNamespace(folds=3), 0.0, 1000.0
    now = 1025.0  # four epochs done: 10 s, then 5 s each
    o.deadline = 1300.0  # 300 s left: 3 folds x (10 + 29 x 5) = 465 s > 30 % of 300 s
    with pytest.raises(_Resize) as exc:
        o._size_first(3, 30, 10.0, 0.0, now)
    share = FIRST_SHARE * 300.0
    assert exc.value.epochs == 1 + int((share - 3 * 10.0) / (3 * 5.0)) == 5
    assert "30 epochs x 3 folds would take about 465 s of the 300 s left; restarted with 5 " \
        "epochs (about 90 s, within 30% of the time left)" in str(exc.value)
    # fold 0's validation scoring (1 s an epoch here) is paid once, not in every fold
    with pytest.raises(_Resize, match="about 494 s"):
        o._size_first(3, 30, 10.0, 3.0, now + 3.0)  # 30 + 29 x (3 x 5 + 1)
    o.reserve = 200.0  # the reserve comes off: 100 s left, not even 3 epochs fit
    with pytest.raises(_Resize) as exc:
        o._size_first(3, 30, 10.0, 0.0, now)
    assert exc.value.epochs == MIN_SIZED_EPOCHS
    # said as it is (QA: "at most 30 %" for a floor that took twice the whole budget)
    assert str(exc.value).endswith("restarted with 3 epochs (about 60 s, the fewest a first "
                                   "candidate trains, past its share: a search always answers)")
    o.deadline = 900.0  # past the deadline already: "of the 0 s left" (QA: "-0 s")
    with pytest.raises(_Resize, match="of the 0 s left"):
        o._size_first(3, 30, 10.0, 0.0, now)
    o.deadline = 1300.0
    o._size_first(3, 3, 10.0, 0.0, now)  # already at the floor: it runs on, past its share
    o.reserve, o.deadline = 0.0, 1000.0 + (3 * 10.0 + 23 * 15.0) / FIRST_SHARE
    o._size_first(3, 30, 10.0, 0.0, now)  # 24 of 30 epochs fit: a cut under a quarter, runs on
    o.deadline = 1000.0 + 465.0 / FIRST_SHARE + 1  # all 30 fit its share: it runs on
    o._size_first(3, 30, 10.0, 0.0, now)
    assert objective.SIZED_ATTR == "automed_sized_epochs"


def test_a_first_candidate_whose_measuring_epochs_pass_its_share_is_sized_early():
    """Sizing waits for SIZE_EPOCHS epochs unless they would use up the share themselves
    (scale QA: Ohsumed with --timeout 90 ended at 333 s); then it decides after two."""
    from types import SimpleNamespace

    from automed.searching.objective import SIZE_EPOCHS, Objective, _Resize

    o = Objective.__new__(Objective)
    o.plan, o.reserve, o._started = SimpleNamespace(folds=3), 0.0, 1000.0
    now = 1015.0  # two epochs done: 10 s, then 5 s
    o.deadline = 1300.0  # a 90 s share: epochs 3 and 4 would end at 25 s, inside it
    o._size_first(1, 30, 10.0, 0.0, now, early=True)  # waits for the steadier estimate
    with pytest.raises(_Resize):
        o._size_first(1, 30, 10.0, 0.0, now)  # what it would decide on the same pace
    o.deadline = 1000.0 + (15.0 + (SIZE_EPOCHS - 2) * 5.0 - 1) / 0.3  # a 24 s share
    with pytest.raises(_Resize) as exc:
        o._size_first(1, 30, 10.0, 0.0, now, early=True)
    assert exc.value.epochs == 3


def test_a_sized_first_candidate_trains_refits_and_reports_its_new_epochs(demo_signal, tmp_path,
                                                                           monkeypatch, capsys):
    """With its share of the time too small for its epochs, the first candidate restarts once
    with MIN_SIZED_EPOCHS; its row, its trial, the refit and the progress line all say so,
    and fold 0's epochs are reported to the pruner once each."""
    from automed.cli import _Progress
    from automed.searching import objective
    from automed.searching.runner import search

    monkeypatch.setattr(objective, "FIRST_SHARE", 1e-9)  # any schedule is too long
    monkeypatch.setattr(objective, "FOLD_PROGRESS_S", 0.0)  # every epoch said
    events = []
    show = _Progress(quiet=False)

    def both(e):
        events.append(e)
        show(e)

    url = f"sqlite:///{tmp_path}/s.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("error", message=".*already reported")
        # cnn: the signal start, rocket, fits its ridge head in closed form (no epochs)
        result = search(demo_signal, trials=1, folds=2, max_epochs=8, timeout=600, storage=url,
                        seed=0, refit_full=True, artifacts=tmp_path / "out", progress=both,
                        architectures=["cnn"])
    sized = [e for e in events if e["event"] == "sized"]
    assert [(e["trial"], e["epochs"]) for e in sized] == [(0, objective.MIN_SIZED_EPOCHS)]
    # progress counts from the candidate's start, across its restart (QA: epoch lines
    # restarted from 0 s while fold lines went on)
    after = events.index(sized[0])
    said = [e["elapsed_s"] for e in events[after:] if e["event"] in ("epoch", "fold")]
    before = [e["elapsed_s"] for e in events[:after] if e["event"] == "epoch"]
    assert said and before and min(said) >= max(before)
    assert "8 epochs x 2 folds would take about" in sized[0]["reason"]
    assert "restarted with 3 epochs" in capsys.readouterr().err
    (row,) = Store(url).candidates(result.study)
    assert row["state"] == "complete" and row["params"]["epochs"] == 3
    trial = optuna.load_study(study_name=result.study, storage=url).trials[0]
    assert trial.user_attrs[objective.SIZED_ATTR] == 3
    # the first run's epochs stay reported (PACE_EPOCHS of them: with no share, waiting for
    # SIZE_EPOCHS would pass it); the restart reports only the epochs it adds, none twice
    assert objective.PACE_EPOCHS < objective.MIN_SIZED_EPOCHS
    assert sorted(trial.intermediate_values) == [*range(objective.MIN_SIZED_EPOCHS),
                                                 fold_step(0), fold_step(1)]
    from automed.results.artifact import LoadedModel

    model = LoadedModel(result.artifact)  # the refit trained what the candidate trained
    assert model.config["trial"] == 0 and model.config["params"]["epochs"] == 3
    monkeypatch.setattr(objective, "FIRST_SHARE", 1.0)  # no limit, no sizing
    events.clear()
    search(demo_signal, trials=1, folds=2, max_epochs=8, storage=f"sqlite:///{tmp_path}/t.db",
           seed=0, refit=False, progress=events.append, architectures=["cnn"])
    assert not [e for e in events if e["event"] == "sized"]


def test_reading_that_takes_the_budget_and_a_big_file_are_said(demo_signal, tmp_path,
                                                                monkeypatch, capsys):
    # QA (scale): a 50 MB table printed nothing for 110 s, and a 60 s --timeout spent on
    # reading ended 144 s over with no word why.
    import time as _time

    from automed.cli import _Progress
    from automed.searching import runner

    slow = runner.prepare

    def reading(plan, data):
        _time.sleep(1.2)
        return slow(plan, data)

    monkeypatch.setattr(runner, "prepare", reading)
    monkeypatch.setattr(runner, "BIG_FILE", 0)
    result = runner.search(demo_signal, trials=1, folds=2, max_epochs=1, timeout=2.0,
                           storage=f"sqlite:///{tmp_path / 's.db'}", bootstrap=0,
                           progress=_Progress(quiet=False))
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"reading {demo_signal.name} (0 MB) and checking it ...")
    assert any(line.startswith("reading and checking the data took 1 s of the 2 s --timeout; "
                               "the first candidate still runs") for line in err), err
    assert result.best is not None


def test_a_wide_tables_data_line_names_a_few_columns_and_their_count():
    from automed.searching.runner import _some

    names = [f"f{i}" for i in range(3000)]
    assert _some(names) == ("3000 columns: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, ..., "
                            "f2998, f2999")
    assert _some(names[:3]) == "f0, f1, f2"


def test_a_slow_candidates_epochs_are_said(demo_signal, tmp_path, monkeypatch, capsys):
    # QA (scale): 50,000 images trained 290 s in their first fold with no line at all
    from automed.cli import _Progress
    from automed.searching import objective
    from automed.searching.runner import search

    monkeypatch.setattr(objective, "FOLD_PROGRESS_S", 0.0)  # every epoch is slow
    events = []
    show = _Progress(quiet=False)

    def both(e):
        events.append(e)
        show(e)

    search(demo_signal, trials=1, folds=2, max_epochs=3, storage=f"sqlite:///{tmp_path}/s.db",
           bootstrap=0, prune=False, architectures=["cnn"], progress=both)
    said = [(e["fold"], e["epoch"], e["epochs"]) for e in events
            if e["event"] == "epoch" and "step" not in e]
    assert said == [(1, 1, 3), (1, 2, 3), (2, 1, 3), (2, 2, 3)]  # not after the last epoch
    # ... and inside an epoch that runs long (QA: one epoch of 3,000 224x224 images, 6
    # minutes without a line)
    steps = [e for e in events if e["event"] == "epoch" and "step" in e]
    assert steps and all(1 <= e["step"] < e["steps"] for e in steps)
    assert {e["epoch"] for e in steps} == {1, 2, 3}
    err = capsys.readouterr().err
    assert "#0   cnn          fold 1/2, epoch 2/3 done (" in err
    assert "#0   cnn          fold 1/2, epoch 3/3, step 1/" in err


def test_reading_a_big_folder_is_said_first(tmp_path, monkeypatch):
    # QA: 3,000 224x224 PNGs were read and checked for 24 s before any line
    from PIL import Image

    from automed.searching import runner

    rng = np.random.default_rng(0)
    for cls in ("benign", "malignant"):
        for i in range(8):
            (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    monkeypatch.setattr(runner, "BIG_FOLDER", 10)
    events = []
    runner.search(tmp_path / "imgs", trials=1, folds=2, max_epochs=1, refit=False,
                  storage=f"sqlite:///{tmp_path / 's.db'}", progress=events.append)
    assert events[0] == {"event": "note",
                         "message": "reading the folder imgs (16 files) and checking it ..."}
    monkeypatch.setattr(runner, "BIG_FOLDER", 1000)  # a small folder reads in a blink: silent
    events.clear()
    runner.search(tmp_path / "imgs", trials=1, folds=2, max_epochs=1, refit=False,
                  storage=f"sqlite:///{tmp_path / 't.db'}", progress=events.append)
    assert events[0]["event"] != "note"
