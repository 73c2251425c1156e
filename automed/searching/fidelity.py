"""Multi-fidelity: what a candidate reports while it trains, and when it is stopped early.

The resource is defined once, here:

* **Fold 0, epoch e** (0-based) reports the fold-0 validation score after epoch ``e`` at
  Optuna step ``e``. Fold 0's validation tensors are already in memory, so one extra forward
  pass per epoch is all it costs (the other folds train without it).
* **After fold i** (``i >= 0``) the running mean CV score of folds ``0..i`` is reported at
  step ``FOLD_STEP + i``. ``FOLD_STEP`` lies beyond any epoch count, so epoch steps and fold
  steps never collide, and candidates compare at the same step with the same meaning. Step
  ``FOLD_STEP`` (fold 0's final score) is where candidates with different epoch counts meet
  at the end of their schedules.

The pruner (:func:`make_pruner`, :class:`NoisyMedianPruner`) is Optuna's median rule on
these steps with a noise margin: once one candidate has completed, from the second epoch on,
a candidate whose best fold-0 score so far is below the median of the completed candidates at
the same step, by more than their typical fold-to-fold standard deviation (and never less
than the sampling error of one fold-0 score), stops. A portfolio start of the family that
leads (the best complete candidate's) is not judged at epoch steps, only at fold steps, from
the end of fold 0 on: the offline meta-search chose it as that family's alternative, and
early epochs of a one-cycle schedule say little about its end (on splice the biosequence
default, CV 0.957 when run to the end, was stopped at epoch 3 against the first start's
0.955). Other families' starts are judged like any candidate: exempting them all bought 4
candidates in 300 s on splice (an attention start alone took 108 s) against 45.
``--no-prune`` turns pruning and collapse stopping off.

A **collapsed** candidate predicts (nearly) one class for every validation sample, or its
training loss does not fall; it is stopped as soon as that is seen (:class:`CollapseWatch`)
and stored with state ``collapsed`` and a reason, instead of training folds for nothing.
During fold 0 a candidate counts as collapsed when, for ``COLLAPSE_PATIENCE`` epochs in a row,
one class takes ``COLLAPSE_SHARE`` of the validation predictions while its training loss is
no better than the best constant guess (a model still warming up has a falling loss), or when
by 30 % of its epochs its training loss has not fallen below the first epoch's and its
validation predictions are no more accurate than naming the majority class. At the
end of every fold, collapsed predictions alone are enough. Nothing is flagged before
``COLLAPSE_MIN_STEPS`` optimizer steps (tiny data or very few epochs are undertrained), and
predictions are not judged on validation folds of fewer than ``COLLAPSE_MIN_SAMPLES`` samples
(one class for all 7 of a fold is no evidence of collapse).
"""

from __future__ import annotations

import math

import numpy as np
import optuna

FOLD_STEP = 10_000  # after fold i >= 0, the running CV mean is reported at FOLD_STEP + i
PORTFOLIO_ATTR = "automed_default"  # marks a queued portfolio start (searching.study)
PRUNE_WARMUP_EPOCHS = 1  # epoch steps below this are never pruned (epoch 0 is noisy)
# Completed candidates before the median pruner acts. Optuna's median counts only COMPLETE
# candidates, so with 4 a search on a large image set trained four candidates to the end
# (portfolio starts, minutes each) before pruning anything: 3 candidates in 15 minutes on
# PneumoniaMNIST. With 1, the first complete candidate (the portfolio's best guess) is the
# bar every later one must keep up with from its second epoch on.
PRUNE_STARTUP_TRIALS = 1
COLLAPSE_SHARE = 0.98  # one class for at least this share of validation samples
COLLAPSE_PATIENCE = 2  # consecutive collapsed epochs (on fold 0) that stop a candidate
COLLAPSE_MIN_STEPS = 10  # fewer optimizer steps than this is undertrained, not collapsed
COLLAPSE_MIN_SAMPLES = 20  # one class for every one of fewer validation samples is no evidence
CONSTANT_LOSS_SHARE = 0.95  # collapsed mid-fold: training loss no better than a constant guess
LOSS_CHECK_EPOCH = 2  # the earliest epoch (0-based) by which training loss must have fallen
LOSS_CHECK_SHARE = 0.3  # ... or later: after 30 % of the epochs (OneCycle warms up for 25 %)
LOSS_FALL = 0.99  # ... to below this share of the first epoch's loss


def fold_step(fold: int) -> int:
    """The Optuna step at which fold ``fold`` (>= 0) reports the running CV mean."""
    return FOLD_STEP + fold


def make_pruner(prune: bool) -> optuna.pruners.BasePruner:
    if not prune:
        return optuna.pruners.NopPruner()
    return NoisyMedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS,
                             n_warmup_steps=PRUNE_WARMUP_EPOCHS)


class NoisyMedianPruner(optuna.pruners.BasePruner):
    """Optuna's median rule, minus the noise of one fold's score.

    A candidate stops at step ``s`` when its best score so far (fold-0 epochs up to ``s``; at a
    fold step, its running CV mean there) is below the median of the completed candidates at
    ``s`` by more than the *fold noise*: the median, over completed candidates, of the
    standard deviation of their fold scores, and at least the binomial standard error of a
    score measured on fold 0's validation samples (``sqrt(p (1 - p) / n)`` at the median
    ``p``; the candidate's ``val_samples`` attribute gives ``n``). On a small validation fold
    (BreastMNIST: 182 images, one image = 0.5 points) a plain median stopped good candidates
    for being a chance point behind the first. On splice the first candidate's three fold
    scores were equal, so its fold noise was 0, and a candidate 0.003 behind it at epoch 3
    (of 851 samples: one standard error is 0.012) was stopped; run to the end it scored CV
    0.960 against the answer's 0.955. On a large fold the noise is small and the rule is the
    median rule. Only COMPLETE candidates are the bar, as in Optuna's ``MedianPruner``.
    """

    def __init__(self, n_startup_trials: int = 1, n_warmup_steps: int = 1) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        completed = study.get_trials(deepcopy=False,
                                     states=(optuna.trial.TrialState.COMPLETE,))
        if len(completed) < self.n_startup_trials:
            return False
        better = study.direction == optuna.study.StudyDirection.MAXIMIZE
        start = trial.user_attrs.get(PORTFOLIO_ATTR)
        if step < FOLD_STEP and start and completed:
            leader = (max if better else min)(completed, key=lambda t: t.value)
            if leader.params.get("architecture") == start:
                return False  # the leading family's portfolio start: judged on its folds
        bar = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
        bar = [v for v in bar if math.isfinite(v)]
        if not bar:
            return False
        mine = trial.intermediate_values
        if step >= FOLD_STEP:
            value = mine[step]
        else:
            value = max((v for s, v in mine.items() if s <= step and math.isfinite(v)),
                        default=float("nan"))
        if not math.isfinite(value):
            return True  # a candidate whose score is not a number is not going anywhere
        median = float(np.median(bar))
        noise = max(fold_noise(completed),
                    sampling_error(median, trial.user_attrs.get("val_samples")))
        return value < median - noise if better else value > median + noise


def sampling_error(score: float, samples: int | None) -> float:
    """The binomial standard error of a score near ``score`` measured on ``samples`` samples
    (0 when unknown). Exact for accuracy and recall; for F1 or AUROC a floor of the same size.
    """
    if not samples or not 0.0 <= score <= 1.0:
        return 0.0
    return math.sqrt(score * (1.0 - score) / samples)


def fold_noise(completed: list) -> float:
    """The median standard deviation of fold scores over completed candidates (0 if none)."""
    stds = [float(np.std(f)) for t in completed
            if len(f := t.user_attrs.get("fold_scores") or []) > 1]
    return float(np.median(stds)) if stds else 0.0


class Collapsed(Exception):
    """A candidate stopped because it collapsed; ``str(exc)`` is the stored reason, shown
    after the state: ``collapsed: predicts class 1 for 100 % of samples after epoch 2``."""


def collapse_reason(predicted: np.ndarray, y_true: np.ndarray, classes: list[str],
                    share: float = COLLAPSE_SHARE) -> str | None:
    """``"predicts class X for 100 % of samples"`` when one class takes ``share`` or more.

    A dataset whose own majority class reaches ``share`` is not flagged: predicting it is not
    a collapse there. Nor is a validation fold of fewer than ``COLLAPSE_MIN_SAMPLES``: on
    TwoLeadECG's 7-series folds the first portfolio candidate (rocket, test accuracy 0.99)
    put all 7 of one fold in one class and was stopped as collapsed, with 13 of 31 candidates.
    """
    n = len(predicted)
    if n < COLLAPSE_MIN_SAMPLES:
        return None
    counts = np.bincount(np.asarray(predicted), minlength=len(classes))
    top = int(counts.argmax())
    frac = counts[top] / n
    truth = np.bincount(np.asarray(y_true), minlength=len(classes)).max() / max(1, len(y_true))
    if frac < share or truth >= share:
        return None
    return f"predicts class {classes[top]} for {100 * frac:.0f} % of samples"


class CollapseWatch:
    """Per-epoch checks on fold 0: collapsed predictions, or a training loss that stays put."""

    def __init__(self, y_val: np.ndarray, classes: list[str], epochs: int,
                 steps_per_epoch: int = COLLAPSE_MIN_STEPS,
                 constant_loss: float | None = None) -> None:
        self.y_val, self.classes = y_val, classes
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.constant_loss = constant_loss
        self.loss_epoch = max(LOSS_CHECK_EPOCH, math.ceil(LOSS_CHECK_SHARE * epochs) - 1)
        self.first_loss: float | None = None
        self.streak = 0

    def epoch(self, epoch: int, loss: float, predicted: np.ndarray) -> None:
        """Raise :class:`Collapsed` when the candidate should stop after ``epoch``."""
        if self.first_loss is None:
            self.first_loss = loss
        if (epoch + 1) * self.steps_per_epoch < COLLAPSE_MIN_STEPS:
            return
        reason = collapse_reason(predicted, self.y_val, self.classes)
        stuck = self.constant_loss is None or loss >= CONSTANT_LOSS_SHARE * self.constant_loss
        self.streak = self.streak + 1 if reason and stuck else 0
        if reason and self.streak >= COLLAPSE_PATIENCE:
            raise Collapsed(f"{reason} after epoch {epoch + 1}")
        if (epoch == self.loss_epoch and math.isfinite(self.first_loss)
                and (epoch + 1) * self.steps_per_epoch >= 3 * COLLAPSE_MIN_STEPS
                and loss >= LOSS_FALL * self.first_loss
                and not self.beats_majority(predicted)):
            raise Collapsed(f"training loss did not fall ({self.first_loss:.3f} -> "
                            f"{loss:.3f} after epoch {epoch + 1})")

    def beats_majority(self, predicted: np.ndarray) -> bool:
        """Whether the predictions are more accurate than always naming the validation
        majority class: a model that does is learning, whatever its training loss does (at
        its one-cycle peak a rocket head's loss on ECG200 was above its first epoch's while it
        predicted well, and the default candidate was stopped as collapsed)."""
        y = np.asarray(self.y_val)
        if len(y) == 0 or len(predicted) != len(y):
            return False
        majority = np.bincount(y).max() / len(y)
        return float(np.mean(np.asarray(predicted) == y)) > majority


def constant_loss(y_train: np.ndarray, n_classes: int, class_weight: str, sampler: str,
                  label_smoothing: float) -> float:
    """The training loss of the best constant prediction under these training settings.

    Balanced class weights or a balanced sampler make every class count equally (uniform
    effective prior); otherwise the class frequencies are the prior. Label smoothing mixes
    the target with uniform. The best constant predicts the target itself: its loss is the
    target's entropy.
    """
    counts = np.bincount(np.asarray(y_train), minlength=n_classes).astype(float)
    prior = (np.full(n_classes, 1.0 / n_classes)
             if "balanced" in (class_weight, sampler) or counts.sum() == 0
             else counts / counts.sum())
    target = (1 - label_smoothing) * prior + label_smoothing / n_classes
    target = target[target > 0]
    return float(-(target * np.log(target)).sum())


def final_collapse(predicted: np.ndarray, y_true: np.ndarray, classes: list[str],
                   steps: int = COLLAPSE_MIN_STEPS) -> str | None:
    """The reason a finished fold's predictions count as collapsed, or None."""
    if steps < COLLAPSE_MIN_STEPS:
        return None
    return collapse_reason(predicted, y_true, classes)
