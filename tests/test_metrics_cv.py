"""Metrics from probabilities and the CV splits that feed them."""

from __future__ import annotations

import numpy as np
import pytest

from automed.data.dataset import Dataset
from automed.errors import ConfigError, DataError
from automed.evaluation import metrics as M
from automed.evaluation.cv import check_folds, make_folds


def _proba(pred: list[int], n: int = 2) -> np.ndarray:
    p = np.full((len(pred), n), 0.1 / (n - 1))
    p[np.arange(len(pred)), pred] = 0.9
    return p


def test_thresholded_metrics_match_hand_counts():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    pred = [0, 0, 1, 1, 1, 1, 0, 0]  # TN=2 FP=1 TP=3 FN=2
    p = _proba(pred)
    assert M.score("accuracy", y, p) == pytest.approx(5 / 8)
    assert M.score("recall", y, p, "binary", 1) == pytest.approx(3 / 5)
    assert M.score("specificity", y, p, "binary", 1) == pytest.approx(2 / 3)
    assert M.score("precision", y, p, "binary", 1) == pytest.approx(3 / 4)
    f1 = 2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5)
    assert M.score("f1", y, p, "binary", 1) == pytest.approx(f1)
    # macro recall is the mean of per-class recalls: (2/3 + 3/5) / 2
    assert M.score("recall", y, p, "macro") == pytest.approx((2 / 3 + 3 / 5) / 2)
    assert M.score("balanced_accuracy", y, p) == pytest.approx((2 / 3 + 3 / 5) / 2)
    # the positive label flips sensitivity and specificity
    assert M.score("recall", y, p, "binary", 0) == pytest.approx(2 / 3)


def test_ranking_metrics_use_probabilities():
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.2, 0.8]])
    assert M.score("auroc", y, perfect) == 1.0
    assert M.score("auprc", y, perfect) == 1.0
    reversed_ = perfect[:, ::-1]
    assert M.score("auroc", y, reversed_) == 0.0


def test_multiclass_auroc_tolerates_a_missing_class():
    y = np.array([0, 0, 1, 1])  # class 2 absent from this fold
    p = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    assert M.score("auroc", y, p) == 1.0
    assert set(M.all_scores(y, p)) == set(M.METRICS)


def test_metric_names_and_averages_are_checked():
    assert M.resolve_metric("AUC") == "auroc"
    assert M.resolve_metric("sensitivity") == "recall"
    with pytest.raises(ConfigError, match="unknown metric 'recal'.*choose from"):
        M.resolve_metric("recal")
    with pytest.raises(ConfigError, match="binary needs two classes"):
        M.resolve_average("binary", 3, None)
    assert M.resolve_average("binary", 2, None) == ("binary", 1)


def _dataset(counts: list[int], groups=None) -> Dataset:
    y = np.concatenate([np.full(n, i) for i, n in enumerate(counts)])
    return Dataset(np.zeros((len(y), 1, 8), np.float32), y, [f"c{i}" for i in range(len(counts))],
                   "signal", source="toy.txt", groups=groups)


def test_folds_are_stratified_disjoint_and_complete():
    ds = _dataset([30, 60])
    folds = make_folds(ds, 3, seed=1)
    assert len(folds) == 3
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen) == list(range(90))
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert np.bincount(ds.y[va]).tolist() == [10, 20]
    again = make_folds(ds, 3, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_grouped_folds_keep_groups_together():
    groups = np.repeat(np.arange(30), 3)
    ds = _dataset([45, 45], groups=groups)
    for tr, va in make_folds(ds, 3):
        assert not set(groups[tr]) & set(groups[va])


def test_groups_that_are_the_labels_are_refused():
    # --group-col naming the label: each class one group, every fold validates a class its
    # training part never saw, and the search scored 0.0 (QA: text, sequence CSV, npz).
    ds = _dataset([20, 20])
    labelled = Dataset(ds.x, ds.y, ds.classes, ds.modality, ds.source,
                       groups=np.array(ds.classes, dtype=object)[ds.y])
    with pytest.raises(DataError, match="the group ids are the labels themselves"):
        check_folds(labelled, 2)
    # one class seen in one patient only: the same flaw, another fix
    groups = np.where(ds.y == 0, "p0", np.array([f"p{i}" for i in range(40)], dtype=object))
    one = Dataset(ds.x, ds.y, ds.classes, ds.modality, ds.source, groups=groups)
    with pytest.raises(DataError, match="every sample of class 'c0' is in one group .'p0'."):
        check_folds(one, 2)


def test_too_few_samples_per_class_for_the_folds():
    ds = _dataset([3, 20])
    with pytest.raises(DataError, match="class 'c0' has 3 sample.*use --folds 3 or fewer"):
        check_folds(ds, 5)
    with pytest.raises(ConfigError, match="at least 2"):
        check_folds(ds, 1)


def test_binary_auroc_ranks_saturated_probabilities_by_the_other_class():
    """A confident model's float32 probability rounds to exactly 1.0 for several samples;
    ranking by it ties them, and the AUROC then depended on the array's dtype (the search's
    float64 blend against the saved model's float32: 0.961 against 0.940 on ECG200)."""
    from automed.evaluation.metrics import score

    y = np.array([1, 0, 0, 1])
    proba = np.array([[1e-30, 1.0], [1e-10, 1.0], [0.9, 0.1], [0.2, 0.8]])
    # log-odds 69, 23, -2.2, 1.4: positives above negatives in 3 of 4 pairs
    for dtype in (np.float64, np.float32):
        assert score("auroc", y, proba.astype(dtype)) == pytest.approx(0.75)
    assert score("auroc", 1 - y, proba[:, ::-1].copy(), pos_label=1) == pytest.approx(0.75)
    assert score("auprc", y, proba.astype(np.float32)) == pytest.approx((1 + 2 / 3) / 2)


def test_micro_averaging_of_ranking_metrics_and_specificity_is_scikit_learns():
    # QA: --average micro was scored as macro for auroc, auprc and specificity on 3 classes
    # (test auprc 0.776 where scikit-learn's micro average of the same probabilities is 0.890)
    from sklearn import metrics as skm

    from automed.evaluation.metrics import score

    rng = np.random.default_rng(9)
    y = rng.choice(3, 200, p=[0.7, 0.2, 0.1])
    proba = rng.dirichlet(np.ones(3), 200)
    proba[np.arange(200), y] += 0.4
    proba /= proba.sum(1, keepdims=True)
    onehot = np.eye(3)[y]
    assert score("auprc", y, proba, "micro") == pytest.approx(
        skm.average_precision_score(onehot, proba, average="micro"))
    assert score("auroc", y, proba, "micro") == pytest.approx(
        skm.roc_auc_score(onehot, proba, average="micro"))
    assert score("auprc", y, proba, "micro") != pytest.approx(score("auprc", y, proba, "macro"))
    mcm = skm.multilabel_confusion_matrix(y, proba.argmax(1))
    tn, fp = mcm[:, 0, 0].sum(), mcm[:, 0, 1].sum()
    assert score("specificity", y, proba, "micro") == pytest.approx(tn / (tn + fp))


def test_pos_label_is_refused_where_no_score_uses_it():
    # Two classes: auprc ranks the positive class under any averaging, so --pos-label counts
    # (and --help says so); more classes: nothing uses it, so it is refused, not ignored.
    from automed.evaluation.metrics import resolve_average, score

    assert resolve_average("macro", 2, 0) == ("macro", 0)
    y = np.array([1, 0, 0, 1, 0])
    proba = np.array([[0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.45, 0.55], [0.9, 0.1]])
    assert score("auprc", y, proba, "macro", 0) != pytest.approx(score("auprc", y, proba,
                                                                       "macro", 1))
    for average in ("macro", "weighted", "micro"):
        with pytest.raises(ConfigError, match="--pos-label applies to two classes only.*"
                                              "the data has 3; drop --pos-label"):
            resolve_average(average, 3, 1)
    assert resolve_average("macro", 3, None) == ("macro", 1)


def test_stored_test_predictions_and_the_report_give_the_searchs_test_auroc():
    """What the search stores for the report (and what `automed predict` writes) keeps six
    significant digits, so a saturated model's stored predictions still rank as the search
    ranked them: the report's AUC equals the test score."""
    from types import SimpleNamespace

    from automed.results.report import test_section
    from automed.searching.refit import score_on_test

    y = np.array([1, 0, 0, 1])
    proba = np.array([[1e-30, 1.0], [1e-10, 1.0], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    p = SimpleNamespace(test=SimpleNamespace(y=y),
                        train=SimpleNamespace(classes=["a", "b"], groups=None),
                        average="macro", pos_label=1,
                        plan=SimpleNamespace(bootstrap=0, seed=0))
    scores, _, stored = score_on_test(p, proba)
    assert scores["auroc"] == pytest.approx(0.75)
    assert M.score("auroc", y, np.array(stored["proba"])) == pytest.approx(scores["auroc"])
    html = test_section({"test_scores": scores, "config": {"pos_label": 1}, "best_trial": 0,
                         "test_size": 4}, stored)
    assert "b (AUC 0.750)" in html


def test_macro_recall_on_a_test_set_lacking_a_class_is_balanced_accuracy():
    # QA: a test set without one of three classes reported balanced accuracy 0.5 and macro
    # recall 0.333 (the absent class counted as recall 0).
    from automed.evaluation.metrics import all_scores

    y = np.array([0, 0, 1, 1])
    proba = np.array([[.9, .05, .05], [.1, .1, .8], [.1, .8, .1], [.2, .1, .7]])
    scores = all_scores(y, proba)
    assert scores["recall"] == scores["balanced_accuracy"] == 0.5
    # a predicted class the data lacks still costs precision (class 2: predicted, never right)
    assert scores["precision"] == pytest.approx(2 / 3)


def test_a_test_set_lacking_a_training_class_is_said():
    from automed.data.dataset import Dataset
    from automed.searching.prepare import _test_class_warnings

    train = Dataset(np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"], "tabular")
    test = Dataset(np.zeros((2, 2)), np.array([0, 1]), ["a", "b", "c"], "tabular")
    assert _test_class_warnings(train, test) == [
        "the test set has no sample of class 'c': its scores say nothing of it (its macro "
        "recall, precision and f1 average the classes it has)"]
    assert _test_class_warnings(train, train) == []
