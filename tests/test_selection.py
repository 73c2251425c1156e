"""The paired bootstrap that decides whether a challenger's out-of-fold lead is more than chance."""

from __future__ import annotations

import numpy as np

from automed.searching.selection import paired_lead


def _onehot(pred, k=2, sure=0.9):
    out = np.full((len(pred), k), (1 - sure) / (k - 1))
    out[np.arange(len(pred)), pred] = sure
    return out


def test_a_lead_of_one_sample_in_five_hundred_is_chance_and_twenty_points_is_not():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    incumbent = y.copy()
    wrong = rng.choice(500, 150, replace=False)  # 70 % accurate
    incumbent[wrong] = 1 - incumbent[wrong]
    close = incumbent.copy()
    close[wrong[0]] = y[wrong[0]]  # one more right: 70.2 %
    lead = paired_lead(y, _onehot(close), _onehot(incumbent), "accuracy")
    assert abs(lead.diff - 0.002) < 1e-9
    # One sample changed, the rest identical: every resample either holds it (lead) or not
    # (tie), so the lead holds in about 63 % + half of 37 % of them, short of 95 %.
    assert 0.7 < lead.p_better < 0.9 and not lead.beats
    strong = incumbent.copy()
    strong[wrong[:100]] = y[wrong[:100]]  # 90 % accurate
    lead = paired_lead(y, _onehot(strong), _onehot(incumbent), "accuracy")
    assert abs(lead.diff - 0.2) < 1e-9 and lead.p_better == 1.0 and lead.beats
    # and the other way round, the incumbent never loses to a worse challenger
    assert paired_lead(y, _onehot(incumbent), _onehot(strong), "accuracy").p_better == 0.0


def test_ranking_metrics_are_bootstrapped_through_the_metric():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    good = _onehot(y, 3, sure=0.6) + rng.uniform(0, 0.3, (300, 3))
    noise = rng.uniform(0, 1, (300, 3))
    good, noise = good / good.sum(1, keepdims=True), noise / noise.sum(1, keepdims=True)
    lead = paired_lead(y, good, noise, "auroc", average="macro", resamples=100)
    assert lead.diff > 0.2 and lead.beats
    assert not paired_lead(y, noise, good, "auroc", average="macro", resamples=100).beats


def _trial(number, portfolio):
    import optuna

    from automed.searching.fidelity import PORTFOLIO_ATTR

    t = optuna.trial.create_trial(value=0.5, params={}, distributions={},
                                  user_attrs={PORTFOLIO_ATTR: "cnn"} if portfolio else {})
    t.number = number
    return t


class _Oof:
    def __init__(self, arrays):
        self.arrays = arrays

    def oof(self, search_id, trials):
        return {t: self.arrays[t] for t in trials if t in self.arrays}


def test_the_leader_answers_only_when_its_lead_over_the_first_start_is_more_than_chance():
    from types import SimpleNamespace

    from automed.searching.selection import choose_single, incumbent

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    first = y.copy()
    first[:100] = 1 - first[:100]  # 75 %
    near, far = first.copy(), y.copy()
    near[:1] = y[:1]  # 75.25 %: one sample more
    p = SimpleNamespace(train=SimpleNamespace(y=y, groups=None), metric="accuracy", average="macro",
                        pos_label=None)
    trials = {n: _trial(n, portfolio=n in (1, 2)) for n in (0, 1, 2, 5, 7)}
    # trial 0 is a retry-free sampled candidate; the first portfolio start that completed is #1
    assert incumbent(trials.values()).number == 1
    store = _Oof({1: _onehot(first), 5: _onehot(near), 7: _onehot(far)})
    chosen, info = choose_single(p, store, 1, trials, trials[5])
    assert chosen.number == 1 and info["leader"] == 5 and info["answer"] == 1
    assert info["p_better"] < 0.95 and abs(info["diff"] - 0.0025) < 1e-9
    # #5 is the best of the 4 candidates that challenged the start: 1 - 0.05 / 4
    assert info["challengers"] == 4 and info["confidence"] == 0.9875
    chosen, info = choose_single(p, store, 1, trials, trials[7])
    assert chosen.number == 7 and info["answer"] == 7 and info["p_better"] == 1.0
    # 3 samples more: ahead in 97.5 % of resamples, enough against one challenger, not as
    # the best of four (1 - 0.05 / 4 = 98.75 %)
    three = first.copy()
    three[:3] = y[:3]
    store.arrays[5] = _onehot(three)
    assert choose_single(p, store, 1, {n: trials[n] for n in (1, 5)}, trials[5])[0].number == 5
    chosen, info = choose_single(p, store, 1, trials, trials[5])
    assert chosen.number == 1 and 0.95 < info["p_better"] < info["confidence"]
    # nothing to compare: the leader is the start, or the start kept no predictions
    assert choose_single(p, store, 1, trials, trials[1]) == (trials[1], None)
    assert choose_single(p, _Oof({5: _onehot(near)}), 1, trials, trials[5]) == (trials[5], None)


def test_a_search_answers_with_the_first_start_its_leader_did_not_beat(demo_signal, tmp_path,
                                                                        monkeypatch):
    """Through the whole search: the choice is stored, and the answer (best trial, saved
    bag, leaderboard line) is the start, not the leaderboard's first row."""
    from click.testing import CliRunner

    from automed.cli import cli
    from automed.searching import selection
    from automed.searching.runner import search
    from automed.storage import Store

    # the worst complete candidate plays the first start, so that it is not the leader
    worst = {}

    def last_place(trials):
        trials = list(trials)
        pick = min(trials, key=lambda t: (t.value, -t.number))
        worst["trial"] = pick.number
        return pick

    monkeypatch.setattr(selection, "incumbent", last_place)
    monkeypatch.setattr(selection, "CONFIDENCE", 1.01)  # no lead is ever enough
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = search(demo_signal, trials=3, folds=2, max_epochs=2, storage=url, seed=0,
                    study="c", artifacts=tmp_path / "models", bootstrap=0, prune=False,
                    ensemble=False)
    info = Store(url).search("c")
    choice = info["config"]["choice"]
    leader = Store(url).leaderboard("c")[0]["trial"]
    assert choice["leader"] == leader != worst["trial"] == choice["answer"]
    assert info["best_trial"] == result.best["trial"] == worst["trial"]
    from automed.results.artifact import LoadedModel

    assert LoadedModel(result.artifact).config["trial"] == worst["trial"]
    out = CliRunner().invoke(cli, ["leaderboard", "--storage", url, "--study", "c"])
    assert out.exit_code == 0 and f"answer #{worst['trial']} (the first portfolio start, " \
        f"since the leader #{leader} was ahead of it" in out.output  # and why it answers
    from automed.results.report import build_report

    html = build_report(Store(url), "c")
    assert f"candidate #{worst['trial']}" in html and f"the leader #{leader} was ahead" in html


def test_the_progress_line_says_which_single_answers_and_why(capsys):
    from automed.cli import _Progress

    show = _Progress(quiet=False)
    show({"event": "choice", "leader": 12, "incumbent": 0, "diff": 0.004, "p_better": 0.71,
          "confidence": 0.99, "challengers": 5, "answer": 0})
    show({"event": "choice", "leader": 9, "incumbent": 0, "diff": 0.05, "p_better": 0.99,
          "confidence": 0.95, "answer": 9})
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("#12 leads the first portfolio start #0 by +0.0040 out-of-fold, in 71% of "
                      "paired resamples (under 99.0%, within chance for the best of 5): #0 "
                      "answers")
    assert err[1].endswith("in 99% of paired resamples: it answers")


def test_the_retry_of_the_first_start_stays_the_one_to_beat():
    # QA: after a resume re-ran the interrupted first start (#0) as #2, the start of another
    # family (#1) became the one to beat, and the answer changed
    import optuna

    from automed.searching.fidelity import PORTFOLIO_ATTR
    from automed.searching.selection import incumbent

    study = optuna.create_study(direction="maximize")
    for attrs in ({PORTFOLIO_ATTR: "cnn:0"}, {PORTFOLIO_ATTR: "mlp:0"}):
        study.enqueue_trial({}, user_attrs=attrs)
    first = study.ask()
    study.tell(first, state=optuna.trial.TrialState.FAIL)  # interrupted
    study.tell(study.ask(), 0.8)
    study.enqueue_trial({}, user_attrs={PORTFOLIO_ATTR: "cnn:0", "retry_of": 0})
    study.tell(study.ask(), 0.7)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.number for t in done] == [1, 2]
    assert incumbent(done).number == 2


def test_a_first_start_cut_short_twice_stays_the_one_to_beat_and_twin_retries_go():
    # review: a retry of a retry took the place of the one it re-ran, not of the first start;
    # two workers rejoining at once queued two retries of one candidate
    import optuna

    from automed.searching.fidelity import PORTFOLIO_ATTR
    from automed.searching.selection import incumbent
    from automed.searching.study import retry_interrupted, seed_number

    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}

    def cut(trial):
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)

    for attrs in ({PORTFOLIO_ATTR: "cnn:0"}, {PORTFOLIO_ATTR: "mlp:0"}):
        study.enqueue_trial({"x": 0.5}, user_attrs=attrs)
    cut(study.ask(dist))                           # 0: the first start, cut short
    study.tell(study.ask(dist), 0.8)               # 1: another family's start
    retry_interrupted(study)
    retry_interrupted(study)  # as a second worker rejoining does: no twin
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1
    cut(study.ask(dist))                           # 2: its retry, cut short again
    retry_interrupted(study)
    last = study.ask(dist)                         # 3: the retry of the retry
    assert seed_number(last) == 0                  # the first start's seeds
    study.tell(last, 0.7)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert incumbent(done).number == 3
    # twins queued at once (each worker saw no retry yet) leave one waiting
    cut(study.ask(dist))                           # 4
    for _ in range(2):
        study.enqueue_trial({"x": 0.5}, user_attrs={"retry_of": 4})
    retry_interrupted(study)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["retry_of"] for t in waiting] == [4]


def test_optunas_own_retry_of_a_lost_retry_is_no_twin():
    # review: Optuna's stale-trial retry copies the lost retry's retry_of, and was failed as
    # a twin, so the candidate never ran again
    import optuna

    from automed.searching.study import retry_interrupted

    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    first = study.ask(dist)
    first.set_user_attr("interrupted", True)
    study.tell(first, state=optuna.trial.TrialState.FAIL)       # 0: cut short
    retry_interrupted(study)
    lost = study.ask(dist)                                     # 1: its retry, lost (stale)
    study.tell(lost, state=optuna.trial.TrialState.FAIL)
    study.add_trial(optuna.trial.create_trial(                 # 2: Optuna's retry of #1
        state=optuna.trial.TrialState.WAITING, params={"x": lost.params["x"]},
        distributions=dist, user_attrs={"retry_of": 0, "retry_root": 0},
        system_attrs={"failed_trial": 1}))
    retry_interrupted(study)
    assert [t.number for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,))] \
        == [2]
