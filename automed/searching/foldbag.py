"""The answer without a refit: the k models each candidate's cross-validation trained.

AutoGluon's bagging. A complete candidate has already trained one model per fold, each on
(k - 1)/k of the training data; averaging their class probabilities is a bag of k models
whose out-of-fold predictions are exactly the ones the search ranked and the ensemble was
selected on. Answering with them costs no refit: on PneumoniaMNIST the first candidate's
fold models scored 0.947 / 0.986 (test accuracy / AUROC) where its three-seed refit, 329 s
more, scored 0.942 / 0.984 (BENCHMARKS.md, "Fold models or a refit"). ``--refit-full``
refits on all training data instead (:mod:`automed.searching.refit`).

Layout, beside the study's model folder (``<artifacts>/<study>-<hash>``, see
:func:`automed.results.artifact.default_dir`)::

    <study>-<hash>.candidates/automed_study.json          the study the bags belong to
    <study>-<hash>.candidates/trial-12/automed_model.json the bag: fold-0..k-1, 1/k each
    <study>-<hash>.candidates/trial-12/fold-0/            one artifact per fold

A bag is an ensemble artifact whose members are its folds, so :class:`LoadedModel` reads it,
and an ensemble of candidates nests their bags. Every worker writes the bags of the
candidates it completes, the best :data:`KEEP` stay (the pool ensemble selection draws
from); a worker on another machine writes to its own disk, and a member whose bag the final
phase cannot find is refit instead.

The folder and every bag carry the stamp of the study they belong to
(:func:`automed.results.artifact.study_stamp`): the final phase takes only its own study's
bags, and a search first deletes the bags another study of its name left in its folder (the
database deleted and created again), so the bag ``trial-3`` is always this study's #3.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed.errors import DataError
from automed.results.artifact import (
    CANDIDATES_SUFFIX,
    CONFIG,
    FORMAT,
    LoadedModel,
    is_automed_model,
    is_automed_stamp,
    read_stamp,
    refuse_link,
    same_study,
    save_artifact,
    write_stamp,
)
from automed.searching.ensemble import POOL, blend

KEEP = POOL  # candidates whose fold models are kept: those ensemble selection may pick
# Bags whose test predictions a search keeps time for under --timeout; the final phase then
# lets an ensemble have as many members (up to ensemble.MAX_MEMBERS) as the time left allows.
RESERVED_MEMBERS = 3
# A bag bigger than this is not kept (a large pretrained encoder, k times over, in each of
# KEEP candidates): the final phase refits that candidate instead.
MAX_BYTES = 1 << 30
SUFFIX = CANDIDATES_SUFFIX  # ".candidates"


def candidates_dir(answer_folder: str | Path) -> Path:
    """Where a study's candidates keep their fold models: beside its answer's folder."""
    folder = Path(answer_folder)
    return folder.with_name(folder.name + SUFFIX)


def trial_dir(root: Path, trial: int) -> Path:
    return Path(root) / f"trial-{int(trial)}"


def claim(root: Path, stamp: dict) -> None:
    """Make ``root`` the candidates' folder of the study ``stamp`` names: bags another study
    left there (no stamp, or another one: the same name in a database made again) are
    deleted, never taken for this study's, and the folder gets this study's stamp.

    Called before the search trains anything. ``root`` (and the answer's folder beside it)
    must not be a symbolic link, and a folder without automed's stamp is cleared only of
    bags automed wrote (QA: a link planted at the predictable name had another folder's
    ``trial-*`` deleted): one holding a ``trial-*`` that is not a bag is refused."""
    root = Path(root)
    refuse_link(root, "fold models")
    if root.name.endswith(SUFFIX):  # its answer's folder, beside it
        refuse_link(root.with_name(root.name[:-len(SUFFIX)]))
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a folder, so the candidates' fold models "
                        "cannot be kept there; move it away, or give --artifacts another "
                        "folder")
    found = read_stamp(root) if root.is_dir() else None
    if root.is_dir() and not same_study(found, stamp):
        old = [e for e in (*root.glob("trial-*"), *root.glob(".trial-*.tmp"))
               if e.is_dir() or e.is_symlink()]
        if not is_automed_stamp(found):  # not automed's folder: only bags of its own go
            foreign = [e for e in old if e.name.startswith("trial-") and
                       (e.is_symlink() or not is_automed_model(e))]
            if foreign:
                raise DataError(
                    f"{root} holds {', '.join(e.name for e in foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''} that automed did not write (no "
                    f"automed_study.json stamp), and keeping fold models there would delete "
                    "them; move them away (or delete the folder), or give --artifacts another "
                    "folder")
        for entry in old:
            if entry.is_symlink():
                entry.unlink()  # the link, never what it points at
            else:
                shutil.rmtree(entry, ignore_errors=True)
    if not same_study(found, stamp):
        write_stamp(root, stamp)


def owner_of(folder: Path) -> dict | None:
    """The stamp a bag was written with (None: a bag from before stamps)."""
    try:
        owner = json.loads((Path(folder) / CONFIG).read_text(encoding="utf-8")).get("owner")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    return owner if isinstance(owner, dict) else None


def bag_config(family: str, params: dict, spec: dict, classes: list[str],
               folds: int) -> dict[str, Any]:
    """The config of a bag of ``folds`` fold models (the members ``fold-0`` ...)."""
    return {"format": FORMAT, "architecture": family, "params": params, "spec": spec,
            "classes": classes,
            "ensemble": {"kind": "folds", "method": "the mean of the class probabilities of "
                         f"the {folds} models its {folds}-fold cross-validation trained",
                         "members": [{"folder": f"fold-{i}", "weight": 1.0 / folds, "fold": i}
                                     for i in range(folds)]}}


def save_bag(root: Path, trial: int, family: str, params: dict, spec: dict,
             classes: list[str], models: list[tuple], owner: dict | None = None) -> Path:
    """Write ``trial``'s fold models (``[(model, fitted preprocessor), ...]``) as one bag,
    stamped with ``owner``, the stamp of the study it belongs to.

    Written to a temporary folder and renamed into place, so a reader never sees half a bag.
    """
    root = Path(root)
    if root.is_symlink():  # planted after claim(): a worker warns and the answer is refit
        raise OSError(errno.ELOOP, f"{root} is a symbolic link; fold models are never "
                      "written through one")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".trial-{int(trial)}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        for i, (model, pre) in enumerate(models):
            save_artifact(tmp / f"fold-{i}", model, pre,
                          {"architecture": family, "params": params, "spec": spec,
                           "classes": classes, "fold": i})
        config = bag_config(family, params, spec, classes, len(models))
        if owner is not None:
            config["owner"] = owner
        (tmp / CONFIG).write_text(json.dumps(config, indent=1), encoding="utf-8")
        final = trial_dir(root, trial)
        if final.is_symlink():
            final.unlink()  # the link, never what it points at
        elif final.exists():  # a retried candidate's earlier bag
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def drop_bags(root: Path, trials: set[int]) -> None:
    """Delete the bags of ``trials`` (candidates that fell out of the best KEEP)."""
    if Path(root).is_symlink():
        return  # never deleted through a link (claim refused one; this is one planted since)
    for trial in trials:
        folder = trial_dir(Path(root), trial)
        if folder.is_symlink():
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def bag_bytes(models: list[tuple]) -> int:
    """The size of a bag's weights: parameters and buffers of every fold model."""
    return sum(t.numel() * t.element_size() for model, _ in models
               for t in (*model.parameters(), *model.buffers()))


def load_bag(root: Path | None, trial: int, owner: dict | None = None) -> LoadedModel | None:
    """``trial``'s bag of fold models, or None when it is not here, does not load or, with
    ``owner`` (a study's stamp), was written by another study."""
    if root is None:
        return None
    folder = trial_dir(Path(root), trial)
    if not (folder / CONFIG).is_file():
        return None
    if owner is not None and not same_study(owner_of(folder), owner):
        warnings.warn(f"{folder}: its fold models are not of study {owner.get('study')!r} "
                      "(another study of that name left them); refitting it instead",
                      stacklevel=2)
        return None
    try:
        return LoadedModel(folder)
    except Exception as exc:  # noqa: BLE001 - a damaged bag is refit, not fatal
        warnings.warn(f"{folder}: its fold models do not load ({exc}); refitting it instead",
                      stacklevel=2)
        return None


# -- the answer ---------------------------------------------------------------------------
def members_in_time(p, trials, deadline: float | None) -> int:
    """How many fold bags can predict the test set before ``deadline`` (monotonic), at the
    slowest pace the complete ``trials`` measured (their ``answer_pace`` attribute); at least
    RESERVED_MEMBERS, which the search kept time for (its last epoch may have eaten a little
    of it: on BreastMNIST a cap of 1 member by a few seconds turned a 5-member ensemble
    with a far better out-of-fold log-loss into the best single), at most
    ensemble.MAX_MEMBERS."""
    from automed.searching.ensemble import MAX_MEMBERS
    from automed.searching.objective import answer_seconds

    paces = [pc for pc in map(_answer_pace, trials) if pc is not None]
    if deadline is None or p.test is None or not paces:
        return MAX_MEMBERS
    pace, score_pace = max(pc[0] for pc in paces), max(pc[1] for pc in paces)
    left = deadline - time.monotonic()
    fits = [m for m in range(1, MAX_MEMBERS + 1)
            if answer_seconds(m, len(p.splits), pace, score_pace, len(p.test),
                              p.plan.bootstrap) <= left]
    return max(RESERVED_MEMBERS, max(fits, default=0))


def predicts_in_time(p, trial, deadline: float | None) -> bool:
    """Whether one more bag, ``trial``'s, predicts the raw test set before ``deadline``
    (monotonic) at its measured ``answer_pace``: the best single's test score, reported beside
    an ensemble that left it out and never chosen on, is skipped past --timeout
    (ECGFiveDays, 120 s: a rocket bag's 32 s prediction ended the run 26 s past the limit)."""
    from automed.searching.objective import answer_seconds

    pace = _answer_pace(trial)
    if deadline is None or pace is None:
        return True
    return (time.monotonic() + answer_seconds(1, len(p.splits), pace[0], 0.0, len(p.test), 0)
            <= deadline)


def _answer_pace(trial) -> list | None:
    """A complete trial's ``[prediction pace, bootstrap pace]`` (objective.answer_seconds),
    or None for a trial from before paces were kept."""
    pace = trial.user_attrs.get("answer_pace")
    return pace if isinstance(pace, list) and len(pace) == 2 else None


@dataclass
class FoldAnswer:
    """The search's answer made of fold bags: the best single's, or an ensemble's members'."""

    weights: dict[int, float]  # trial -> weight (one trial: the best single, weight 1)
    bags: dict[int, LoadedModel]
    ensemble: Any = None  # the EnsembleResult when the ensemble answers
    test_proba: np.ndarray | None = None
    test_scores: dict | None = None
    test_ci: dict | None = None
    test_predictions: dict | None = None
    artifact: Path | None = None
    member_test: dict[int, np.ndarray] | None = None  # each member's test probabilities

    def member_probas(self, x: Any, device: Any = "cpu") -> dict[int, np.ndarray]:
        return {t: self.bags[t].predict_proba(x, device=device) for t in self.weights}

    def predict_proba(self, x: Any, device: Any = "cpu") -> np.ndarray:
        """The answer's class probabilities for raw samples (as the artifact gives them)."""
        return blend(self.member_probas(x, device=device), self.weights)


def answer(p, best: int, root: Path | None, *, ensemble=None, device: Any = "cpu",
           progress=None, owner: dict | None = None,
           said: dict | None = None) -> FoldAnswer | None:
    """Answer with fold bags, scored once on the locked test set; nothing is refit.

    ``ensemble`` is the selection (:func:`~automed.searching.ensemble.select_ensemble`) when
    it answers (better than the best single by more than its noise), else None. Returns None
    when a member's bag is not in ``root`` (written on another machine, too large, or not
    stamped with ``owner``, the study's stamp): the caller then refits. ``said``: a progress
    event (the ensemble's verdict) to report first, only when the bags answer (QA: the
    verdict was printed twice, here and again by the refit that followed).
    """
    from automed.searching.refit import score_on_test

    weights = ensemble.selection.weights if ensemble is not None else {best: 1.0}
    bags = {t: load_bag(root, t, owner) for t in weights}
    if any(bag is None for bag in bags.values()):
        return None
    out = FoldAnswer(weights, bags, ensemble=ensemble)
    if progress is not None:
        if said is not None:
            progress(said)
        progress({"event": "answer", "trial": best, "members": sorted(weights),
                  "folds": len(p.splits), "test": p.test is not None})
    if p.test is not None:
        out.member_test = out.member_probas(p.test.x, device=device)
        out.test_proba = blend(out.member_test, weights)
        out.test_scores, out.test_ci, out.test_predictions = score_on_test(p, out.test_proba)
        if ensemble is not None:
            ensemble.test_proba, ensemble.test_scores = out.test_proba, out.test_scores
            ensemble.test_ci, ensemble.test_predictions = out.test_ci, out.test_predictions
    return out


def save_answer(folder: Path, root: Path, out: FoldAnswer, infos: dict[int, dict],
                top: dict | None = None) -> Path:
    """The answer's artifact: a copy of its bag (the best single), or of each member's bag in
    ``member-<trial>`` under an ensemble config. ``infos`` are each member's artifact info
    (study, CV and test scores, manifest: what its model card reports); ``top`` the
    ensemble's own."""
    from automed.results.artifact import replacing_model

    folder = Path(folder)
    with replacing_model(folder) as stage:  # whatever model an earlier run saved there goes
        _write_answer(stage, root, out, infos, top)
    return folder


def _write_answer(folder: Path, root: Path, out: FoldAnswer, infos: dict[int, dict],
                  top: dict | None) -> None:
    def copy_bag(trial: int, dest: Path) -> dict:
        source = trial_dir(root, trial)
        bag = json.loads((source / CONFIG).read_text(encoding="utf-8"))
        for fold in bag["ensemble"]["members"]:
            shutil.copytree(source / fold["folder"], dest / fold["folder"])
        return {**infos[trial], "ensemble": bag["ensemble"]}

    if len(out.weights) == 1:
        [trial] = out.weights
        config = copy_bag(trial, folder)
    else:
        for trial in out.weights:
            member = folder / f"member-{trial}"
            member.mkdir()
            (member / CONFIG).write_text(json.dumps({"format": FORMAT, **copy_bag(trial, member)},
                                                    indent=2, default=str), encoding="utf-8")
        config = dict(top or {})
    (folder / CONFIG).write_text(json.dumps({"format": FORMAT, **config}, indent=2,
                                            default=str), encoding="utf-8")
