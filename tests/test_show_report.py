"""``automed show`` and ``automed report`` on rows written straight into the store."""

from __future__ import annotations

import json
import os
import re
from xml.etree import ElementTree

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from store_rows import add_search

from automed.cli import cli
from automed.results.report import build_report
from automed.storage import Store

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _metrics(score: float) -> dict:
    return {"accuracy": score, "f1": score - 0.05, "auroc": score + 0.05}


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    store = Store(url)
    rng = np.random.default_rng(0)
    rows, ostudy = [], optuna.create_study(study_name="chest", storage=store.optuna_storage(),
                                           direction="maximize")
    dists = {"architecture": optuna.distributions.CategoricalDistribution(["cnn", "mlp"]),
             "cnn.width": optuna.distributions.IntDistribution(8, 64),
             "cnn.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "mlp.width": optuna.distributions.IntDistribution(8, 64),
             "mlp.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for i in range(12):
        arch = "cnn" if i % 3 else "mlp"
        width, lr = int(rng.integers(8, 64)), float(10 ** rng.uniform(-4, -1))
        score = 0.6 + width / 400 + rng.normal(0, 0.01)
        params = {"architecture": arch, f"{arch}.width": width, f"{arch}.lr": lr}
        ostudy.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=score))
        rows.append((arch, "complete", score, _metrics(score), None))
    rows.append(("cnn", "pruned", 0.55, _metrics(0.55), None))
    rows.append(("rnn", "failed", None, {}, "RuntimeError: shapes differ\n  File x.py"))
    search_id = add_search(store, "chest", candidates=rows)
    y = rng.integers(0, 2, 40)
    p1 = np.clip(y * 0.6 + rng.uniform(0, 0.4, 40), 0, 1)
    store.finish_search(search_id, status="complete", best_trial=int(ostudy.best_trial.number),
                        test_scores={"accuracy": 0.9, "auroc": 0.95}, test_size=40,
                        test_predictions={"classes": ["normal", "opacity"],
                                          "y_true": y.tolist(),
                                          "proba": np.c_[1 - p1, p1].tolist()})
    store.engine.dispose()
    return url


def _run(url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, [*args, "--storage", url])
    assert result.exit_code == code, result.output
    return result.output


def test_show_study(url):
    out = _run(url, "show", "chest")
    assert "study 'chest': complete" in out and "14 (12 complete, 1 failed, 1 pruned)" in out
    assert "family cnn: 9 candidates, 8 complete" in out and "test (40 samples)" in out
    summary = json.loads(_run(url, "show", "chest", "--json"))
    assert summary["families"]["rnn"]["complete"] == 0 and summary["devices"] == ["cpu"]


def test_show_candidate_params_folds_timing_device_error(url):
    out = _run(url, "show", "chest", "1")
    assert "candidate #1 of study 'chest': cnn, complete" in out
    assert "per fold: " in out and "on cpu" in out and '"width": 17' in out
    failed = _run(url, "show", "chest", "13")
    assert "RuntimeError: shapes differ" in failed and "File x.py" in failed
    assert json.loads(_run(url, "show", "chest", "12", "--json"))["state"] == "pruned"
    missing = CliRunner().invoke(cli, ["show", "chest", "99", "--storage", url])
    assert missing.exit_code != 0 and "no candidate #99; trials: 0..13" in str(missing.exception)


def test_report_is_self_contained_and_carries_its_plots(url, tmp_path):
    out = tmp_path / "report.html"
    assert _run(url, "report", "chest", "-o", str(out)).strip() == str(out)
    html = out.read_text()
    for title in ("Leaderboard", "Optimisation history", "Parameter importance: all families",
                  "Parameter importance: family cnn", "Per-family comparison",
                  "Confusion matrix", "ROC curve", "Precision-recall curve"):
        assert title in html, title
    assert html.count("<svg") >= 7 and "AUC " in html and "AP " in html
    # Self-contained: nothing fetched from anywhere, no scripts.
    assert not re.search(r"<script|<link|<img|src=|@import|url\(|https?://", html)
    assert "cnn.width" in html  # importances name the family's parameters
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ElementTree.fromstring(svg)  # every plot is well-formed markup
    # -o - is standard output, as for other tools (QA: it wrote a file named "-")
    monkeypatch_dir = tmp_path / "here"
    monkeypatch_dir.mkdir()
    cwd = os.getcwd()
    os.chdir(monkeypatch_dir)
    try:
        shown = _run(url, "report", "chest", "-o", "-")
    finally:
        os.chdir(cwd)
    assert shown.startswith("<!DOCTYPE html>") and "Confusion matrix" in shown
    assert list(monkeypatch_dir.iterdir()) == []


def test_report_heads_the_test_section_with_the_single_answer(url):
    html = build_report(Store(url), "chest")
    best = Store(url).search("chest")["best_trial"]
    assert f"<h2>The answer on the test set: #{best}</h2>" in html
    assert "no 95 % intervals stored" in html and "best single" not in html


def test_report_without_test_set_or_enough_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'small.db'}"
    add_search(Store(url), "tiny", candidates=[("cnn", "complete", 0.7, _metrics(0.7), None)])
    html = build_report(Store(url), "tiny")
    assert "no test predictions stored" in html and "no Optuna study" in html
    assert "<svg" in html  # history and family plots still drawn


def test_importances_leave_out_a_parameter_whose_range_differs_between_trials(tmp_path):
    """QA: a family that tried SGD and AdamW drew `cnn.lr` from two ranges (training.py), and
    the report said "importances unavailable (... dynamic search spaces ...)" for the whole
    family; it now charts the other parameters and names the one left out."""
    from automed.results.report import importance_section

    store = Store(f"sqlite:///{tmp_path / 'dyn.db'}")
    ostudy = optuna.create_study(study_name="dyn", storage=store.optuna_storage(),
                                 direction="maximize")
    rng = np.random.default_rng(0)
    arch = optuna.distributions.CategoricalDistribution(["cnn"])
    opt = optuna.distributions.CategoricalDistribution(["adamw", "sgd"])
    width = optuna.distributions.IntDistribution(8, 64)
    lr = {"sgd": optuna.distributions.FloatDistribution(2e-3, 3e-2, log=True),
          "adamw": optuna.distributions.FloatDistribution(3e-4, 1e-2, log=True)}
    for i in range(8):
        o = "sgd" if i % 2 else "adamw"
        w = int(rng.integers(8, 64))
        params = {"architecture": "cnn", "cnn.optimizer": o, "cnn.width": w,
                  "cnn.lr": float(lr[o].low * 2)}
        ostudy.add_trial(optuna.trial.create_trial(
            params=params, value=0.6 + w / 400,
            distributions={"architecture": arch, "cnn.optimizer": opt, "cnn.width": width,
                           "cnn.lr": lr[o]}))
    html = importance_section(store, "dyn")
    assert "importances unavailable" not in html
    assert "Parameter importance: family cnn" in html and "cnn.width" in html
    assert "family cnn: left out cnn.lr, whose range differs between its trials" in html


def test_a_report_of_a_search_stopped_before_its_answer_says_so(tmp_path):
    # QA: an interrupted or failed search's report said "the search had no test set"
    store = Store(f"sqlite:///{tmp_path / 'stopped.db'}")
    search_id = add_search(store, "cut", status="interrupted",
                           candidates=[("cnn", "complete", 0.7, _metrics(0.7), None)])
    store.update_search_config(search_id, n_test=30)
    html = build_report(store, "cut")
    assert ("no test scores yet for its test set of 30 samples: the search stopped before its "
            "answer (interrupted); run the same command again to finish it") in html
    assert "had no test set" not in html
    # QA: a --workers 0 study was told to "run the same command again", which creates it again
    search_id = add_search(store, "made", status="created",
                           candidates=[("cnn", "complete", 0.7, _metrics(0.7), None)])
    store.update_search_config(search_id, n_test=30)
    html = build_report(store, "made")
    assert "join it with `automed worker --study made`" in html.replace("&#x27;", "'")
    assert "run the same command again" not in html


def test_show_and_the_report_say_why_the_first_start_answers_not_the_leader():
    # QA: "in only 99% of paired bootstrap resamples" read as contradictory without the
    # 99.7 % asked; show said just "answer: #0"
    from automed.results.describe import choice_words

    choice = {"leader": 7, "incumbent": 0, "answer": 0, "diff": 0.0851, "p_better": 0.99,
              "confidence": 0.9974, "challengers": 19}
    words = choice_words(choice)
    assert words == ("the first portfolio start, since the leader #7 was ahead of it "
                     "out-of-fold by +0.0851 in only 99.0% of paired bootstrap resamples, under "
                     "the 99.7% asked of the best of 19 challengers")
    assert choice_words(dict(choice, answer=7)) == ""  # the leader answers: nothing to say


def test_show_says_why_the_best_single_beside_an_answering_ensemble_is_not_the_leader(tmp_path):
    # QA: "best single candidate: #0" beside an ensemble, where the leaderboard's leader was
    # #2, said nowhere why
    from automed.results.describe import format_study, study_summary

    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    search_id = add_search(store, "e", candidates=[
        ("cnn", "complete", 0.70, _metrics(0.70), None),
        ("cnn", "complete", 0.72, _metrics(0.72), None),
        ("cnn", "complete", 0.75, _metrics(0.75), None)])
    store.update_search_config(search_id, answer="ensemble",
                               ensemble={"label": "ensemble of #1, #2"},
                               choice={"leader": 2, "incumbent": 0, "answer": 0, "diff": 0.05,
                                       "p_better": 0.606})
    store.finish_search(search_id, status="complete", best_trial=0)
    text = format_study(study_summary(store.search("e"), store.candidates("e")))
    assert "  answer: ensemble of #1, #2" in text
    assert ("  best single candidate: #0 (the first portfolio start, since the leader #2 was "
            "ahead of it out-of-fold by +0.0500 in only 60.6% of paired bootstrap resamples)"
            ) in text


@pytest.mark.parametrize("pos, shown, hidden", [(0, "normal", "opacity"),
                                                (None, "opacity", "normal")])
def test_the_reports_curves_rank_the_positive_class_given(tmp_path, pos, shown, hidden):
    # QA: --pos-label naming the first class (index 0) was read as none: the curves showed
    # the other class
    store = Store(f"sqlite:///{tmp_path / 'pos.db'}")
    search_id = add_search(store, "pos", candidates=[("cnn", "complete", 0.7, _metrics(0.7),
                                                      None)])
    store.update_search_config(search_id, pos_label=pos)
    store.finish_search(search_id, status="complete", best_trial=0,
                        test_scores=_metrics(0.75), test_size=4,
                        test_predictions={"classes": ["normal", "opacity"], "y_true": [0, 0, 1, 1],
                                          "proba": [[.9, .1], [.4, .6], [.3, .7], [.2, .8]]})
    html = build_report(store, "pos")
    assert f"{shown} (AUC" in html and f"{hidden} (AUC" not in html


def test_an_answer_predicting_one_class_for_every_test_sample_is_said():
    # QA: an answer with balanced accuracy 0.5 (every test sample class 0) went unsaid
    from automed.searching.runner import _one_class_answer

    flat = {"classes": ["normal", "opacity"], "y_true": [0, 1, 1],
            "proba": [[.6, .4], [.7, .3], [.51, .49]]}
    assert _one_class_answer(flat) == (
        "the answer predicts class 'normal' for every one of the 3 test samples: it tells the "
        "classes apart nowhere; give the search more time (--timeout, --trials) or more data")
    assert _one_class_answer({**flat, "proba": [[.6, .4], [.3, .7], [.51, .49]]}) is None
    assert _one_class_answer({**flat, "y_true": [0, 0, 0]}) is None  # one class to tell
    assert _one_class_answer(None) is None


def test_show_calls_a_stopped_candidates_reason_a_reason_and_counts_one_candidate(tmp_path):
    # QA: "show" labelled a pruning reason "error:" and said "1 candidates"
    from automed.results.describe import format_candidate, format_study, study_summary

    store = Store(f"sqlite:///{tmp_path / 'one.db'}")
    add_search(store, "one", candidates=[
        ("cnn", "pruned", 0.6, _metrics(0.6), "first fold's score below ... after epoch 2")])
    [c] = store.candidates("one")
    assert "  reason:\n    first fold's score below" in format_candidate(c)
    text = format_study(study_summary(store.search("one"), store.candidates("one")))
    assert "candidate: 1 (1 pruned)" in text and "family cnn: 1 candidate," in text


def test_importances_leave_out_epochs_that_max_epochs_capped(tmp_path):
    # QA: `mlp.epochs` (drawn 15-39) was ranked where every trial trained --max-epochs 2
    from automed.results.report import importance_section

    store = Store(f"sqlite:///{tmp_path / 'cap.db'}")
    search_id = add_search(store, "cap")
    store.update_search_config(search_id, max_epochs=2)
    ostudy = optuna.create_study(study_name="cap", storage=store.optuna_storage(),
                                 direction="maximize")
    arch = optuna.distributions.CategoricalDistribution(["mlp"])
    width = optuna.distributions.IntDistribution(8, 64)
    epochs = optuna.distributions.IntDistribution(15, 40)
    rng = np.random.default_rng(0)
    for _ in range(8):
        w, e = int(rng.integers(8, 64)), int(rng.integers(15, 40))
        ostudy.add_trial(optuna.trial.create_trial(
            params={"architecture": "mlp", "mlp.width": w, "mlp.epochs": e},
            value=0.6 + e / 100, distributions={"architecture": arch, "mlp.width": width,
                                                "mlp.epochs": epochs}))
    html = importance_section(store, "cap")
    assert "left out mlp.epochs: --max-epochs 2 capped every trial" in html
    assert "mlp.width" in html and ">mlp.epochs<" not in html


def test_a_chart_of_one_value_keeps_its_axis_near_it_and_off_negative_numbers():
    # QA: one point drew negative minutes on the x axis and accuracy up to 1.2
    from automed.results.svgplot import _pad

    assert _pad(0.0, 0.0) == (0.0, 0.05)
    lo, hi = _pad(0.7, 0.7)
    assert 0.6 < lo < 0.7 < hi < 0.8
    assert _pad(0.2, 0.9) == (0.2, 0.9)


def test_the_objective_names_averaging_and_a_positive_class_only_where_the_metric_uses_them():
    # QA: "2-fold CV by accuracy (binary, positive class 'sick')": accuracy uses neither
    from automed.results.describe import objective_words

    config = {"folds": 2, "average": "binary", "pos_label": 1, "plan": {"pos_label": "sick"}}
    classes = ["healthy", "sick"]
    assert objective_words(config, "accuracy", classes) == "2-fold CV by accuracy"
    assert objective_words(config, "auroc", classes) == "2-fold CV by auroc"
    assert objective_words(config, "f1", classes) == (
        "2-fold CV by f1 (binary, positive class 'sick')")
    assert objective_words(config, "auprc", classes) == "2-fold CV by auprc (positive class 'sick')"
    # a macro average has no positive class, though one was given (for auprc and the curves)
    macro_given = dict(config, average="macro")
    assert objective_words(macro_given, "recall", classes) == "2-fold CV by recall (macro)"
    assert objective_words(macro_given, "auprc", classes) == (
        "2-fold CV by auprc (positive class 'sick')")
    macro = {"folds": 3, "average": "macro", "pos_label": 1, "plan": {}}
    assert objective_words(macro, "recall", ["a", "b", "c"]) == "3-fold CV by recall (macro)"
    # a ranking metric averages more than two classes too (QA: micro auprc read "by auprc")
    micro = dict(macro, average="micro")
    assert objective_words(micro, "auprc", ["a", "b", "c"]) == "3-fold CV by auprc (micro)"
    assert objective_words(micro, "auroc", ["a", "b"]) == "3-fold CV by auroc"


def test_show_says_no_spread_for_one_fold_and_names_the_averaging_once(tmp_path):
    # QA (numbers across outputs): show said "0.3333 ± 0.0000 over 1 fold(s)" where the
    # leaderboard says "± -", and "by f1 (macro) (average macro, seed 1)".
    from automed.results.describe import format_candidate, format_study, study_summary

    store = Store(f"sqlite:///{tmp_path / 'one.db'}")
    add_search(store, "f", metric="f1", candidates=[("cnn", "complete", 0.8, _metrics(0.8),
                                                      None)])
    sid = store.search("f")["id"]
    store.record_candidate(sid, 0, fold_scores=[0.8], score_std=0.0)
    [c] = store.candidates("f")
    assert "  f1: 0.8000 ± - over 1 fold(s)" in format_candidate(c)
    info = store.search("f")
    info["classes"] = ["a", "b", "c"]  # three classes: f1's averaging matters
    text = format_study(study_summary(info, store.candidates("f")))
    assert "  objective: 2-fold CV by f1 (macro) (seed 0)" in text, text
    # on two classes too (QA: a macro recall and specificity, both the balanced accuracy,
    # read as the positive class's sensitivity and specificity)
    two = format_study(study_summary(store.search("f"), store.candidates("f")))
    assert "  objective: 2-fold CV by f1 (macro) (seed 0)" in two, two
    info = store.search("f")
    info["metric"] = "accuracy"  # averaging nothing: no "average macro" (QA)
    assert "  objective: 2-fold CV by accuracy (seed 0)" in format_study(
        study_summary(info, store.candidates("f")))


def test_the_anytime_curve_holds_each_best_to_the_end_of_the_search():
    """QA: a family whose first complete candidate was never beaten drew one invisible
    point, and the axis ended at the last improvement of a search that ran on long after."""
    import re
    from datetime import datetime, timedelta

    from automed.results.report import anytime_section

    start = datetime(2026, 1, 1, 12, 0, 0)

    def cand(trial, arch, state, minute, score):
        return {"trial": trial, "architecture": arch, "state": state, "score_mean": score,
                "created_at": (start + timedelta(minutes=minute)).isoformat(),
                "duration_s": 30.0 if trial == 0 else 10.0}

    candidates = [cand(0, "cnn", "complete", 0.5, 0.8), cand(1, "cnn", "pruned", 1.0, None),
                  cand(2, "cnn", "complete", 2.0, 0.7), cand(3, "cnn", "pruned", 4.0, None)]
    svg = anytime_section(candidates, "accuracy", {})
    [line] = re.findall(r'<polyline points="([^"]+)"', svg)
    points = [tuple(map(float, p.split(","))) for p in line.split()]
    assert len(points) == 2 and points[0][1] == points[1][1]  # level, drawn to the end
    assert points[1][0] > points[0][0] + 200  # 4 minutes against 0.5, in pixels
    assert svg.count("<circle") == 1  # the one best, marked
    assert '>0</text>' in svg  # the time axis starts at 0


def test_a_leader_that_trails_on_the_pooled_predictions_is_said_to_trail(capsys):
    # QA: "#2 leads the first portfolio start #0 by -0.0413 out-of-fold"
    from automed.cli import _Progress
    from automed.results.describe import choice_words

    show = _Progress(quiet=False)
    event = {"event": "choice", "leader": 2, "incumbent": 0, "answer": 0, "diff": -0.0413,
             "p_better": 0.21, "confidence": 0.9875, "challengers": 4}
    show(event)
    show(dict(event, diff=0.02, p_better=0.999, answer=2))
    show(dict(event, diff=0.0))
    first, second, level = capsys.readouterr().err.splitlines()
    assert first == ("#2 (first by its mean fold score) trails the first portfolio start #0 "
                     "by 0.0413 on their pooled out-of-fold predictions: #0 answers")
    assert level == ("#2 (first by its mean fold score) is level with the first portfolio "
                     "start #0 on their pooled out-of-fold predictions: #0 answers")
    assert second == ("#2 leads the first portfolio start #0 by +0.0200 out-of-fold, in 100% "
                      "of paired resamples: it answers")
    assert "ahead of the leader #2 (first by its mean fold score) on their pooled out-of-fold " \
           "predictions by 0.0413" in choice_words(event)


def test_the_report_counts_interrupted_candidates(tmp_path):
    # QA: after a SIGTERM the report said "no candidate was stopped early or failed" and its
    # family table counted the interrupted candidate in no column
    store = Store(f"sqlite:///{tmp_path / 'i.db'}")
    add_search(store, "cut", candidates=[
        ("cnn", "complete", 0.70, _metrics(0.70), None),
        ("cnn", "interrupted", None, {}, "Interrupted: stopped by SIGTERM")])
    html = build_report(store, "cut")
    assert "1 candidate(s) stopped early, failed or interrupted, 0 of them collapsed" in html
    assert "1 interrupted (a resume runs them again)" in html
    assert "Interrupted: stopped by SIGTERM" in html and "interrupted or running" in html
    add_search(store, "dead", candidates=[("cnn", "failed", None, {}, "RuntimeError: boom")])
    import optuna

    optuna.create_study(study_name="dead", storage=store.optuna_storage())
    assert "no completed candidates: importances need at least" in build_report(store, "dead")
    add_search(store, "whole", candidates=[("cnn", "complete", 0.70, _metrics(0.70), None)])
    html = build_report(store, "whole")
    assert "no candidate was stopped early, failed or was interrupted" in html
    assert "interrupted or running" not in html


def test_the_leaderboard_says_which_row_answers_and_why(tmp_path):
    # QA: it ranked #2 first and never said that #0 answered (show did)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = Store(url)
    search_id = add_search(store, "a", candidates=[
        ("cnn", "complete", 0.70, _metrics(0.70), None),
        ("cnn", "complete", 0.72, _metrics(0.72), None),
        ("cnn", "complete", 0.75, _metrics(0.75), None)])
    store.update_search_config(search_id, choice={"leader": 2, "incumbent": 0, "answer": 0,
                                                  "diff": 0.05, "p_better": 0.606})
    store.finish_search(search_id, status="complete", best_trial=0)
    out = CliRunner().invoke(cli, ["leaderboard", "--study", "a", "--storage", url]).output
    assert ("answer #0 (the first portfolio start, since the leader #2 was ahead of it "
            "out-of-fold by +0.0500 in only 60.6% of paired bootstrap resamples) (no test set)"
            ) in out
