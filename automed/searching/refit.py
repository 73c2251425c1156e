"""The answer: refit the best candidate on all training data, score it once on the test set.

The parameters come from :func:`~automed.searching.objective.candidate_params`, so the refit
model, the saved artifact and its model card all describe what really trained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from automed.contract import fixed_params
from automed.data.preprocess import Preprocessor, preprocessor_of
from automed.evaluation import metrics as M
from automed.evaluation.bootstrap import bootstrap_all
from automed.results.artifact import replacing_model, save_artifact
from automed.searching.objective import SIZED_ATTR, candidate_params
from automed.searching.prepare import Prepared
from automed.searching.study import seed_number
from automed.searching.training import SeedBag, fit_model, predict_proba


@dataclass
class Refit:
    trial: int
    architecture: str
    params: dict[str, Any]
    model: torch.nn.Module
    preprocessor: Preprocessor
    test_scores: dict | None = None
    test_proba: np.ndarray | None = None
    test_predictions: dict | None = None  # for ROC/PR/confusion in the report
    test_ci: dict | None = None
    seeds: int = 1  # models in the seed bag (1: a single model)


SEED_STRIDE = 7919  # seed k of a bag is seed 0's plus k times this


def refit_best(p: Prepared, trial: optuna.trial.FrozenTrial, device: torch.device, *,
               seeds: int | None = None, deadline: float | None = None) -> Refit:
    """Train ``trial``'s candidate on all training data; score it on the test set if any.

    With ``seeds`` > 1 (default: the plan's ``seeds``) the candidate trains that many times with
    different seeds and the model is their :class:`SeedBag`. The first seed always trains; a
    further one only when, at the pace of the first (its training, and its prediction of the
    test set, which the bag repeats once per seed), it ends before ``deadline`` (monotonic).
    """
    name, params = candidate_params(trial.params, p.plan.max_epochs, fixed_params(trial),
                                    trial.user_attrs.get(SIZED_ATTR))
    arch = p.architectures[name]
    spec = p.spec_for(name)
    pre = preprocessor_of(arch, p.train.modality).fit(p.train)
    x, y = pre.transform(p.train.x), torch.from_numpy(p.train.y)
    seeds = max(1, int(p.plan.seeds if seeds is None else seeds))
    models: list[torch.nn.Module] = []
    pace = 0.0  # the slowest seed's training
    scoring = 0.0  # one seed's test prediction: the bag predicts once per seed at the end
    first_proba = None
    x_test = pre.transform(p.test.x) if p.test is not None else None
    for k in range(seeds):
        if k and deadline is not None and (time.monotonic() + pace
                                           + scoring * (len(models) + 1) > deadline):
            break
        started = time.monotonic()
        torch.manual_seed(p.plan.seed + seed_number(trial) + k * SEED_STRIDE)
        model = arch.build(dict(params), spec)  # a copy: a build may not change them
        fit_model(model, x, y, params, spec, device=device,
                  seed=p.plan.seed + seed_number(trial) * 100 + k * SEED_STRIDE,
                  cpu_bf16=arch.cpu_bf16)
        models.append(model)
        pace = max(pace, time.monotonic() - started)
        if k == 0 and seeds > 1 and deadline is not None and x_test is not None:
            # ECGFiveDays: 23 training series, 861 test series; the test prediction, not the
            # training, took the refit 24 s past its deadline. Timed on the first seed (and
            # reused if it stays alone).
            started = time.monotonic()
            first_proba = predict_proba(model, x_test, device=device,
                                        cpu_bf16=arch.cpu_bf16)
            scoring = time.monotonic() - started
    model = models[0] if len(models) == 1 else SeedBag(models)
    out = Refit(trial.number, name, params, model, pre, seeds=len(models))
    if p.test is not None:
        proba = (first_proba if first_proba is not None and len(models) == 1
                 else predict_proba(model, x_test, device=device, cpu_bf16=arch.cpu_bf16))
        out.test_proba = proba
        out.test_scores, out.test_ci, out.test_predictions = score_on_test(p, proba)
    return out


def test_intervals(p: Prepared) -> dict:
    """How a grouped search's test intervals were drawn ({} for an ungrouped one): whole
    patients, none at all when the test set holds fewer than MIN_GROUPS of them, or single
    samples when its test data names no patients (a --groups file covers the training
    data only). The card, show, the leaderboard and the report say which."""
    from automed.evaluation.bootstrap import MIN_GROUPS, n_groups

    if p.train.groups is None or p.test is None:
        return {}
    if p.test.groups is None:
        return {"resampled": "samples"}
    n = n_groups(p.test.groups)
    return {"resampled": "groups" if n >= MIN_GROUPS else "too few groups", "groups": n}


def score_on_test(p: Prepared, proba: np.ndarray) -> tuple[dict, dict | None, dict]:
    """The answer's one look at the locked test set: every metric, its 95 % bootstrap
    intervals (unless ``--bootstrap 0``) and the predictions the report plots."""
    scores = M.all_scores(p.test.y, proba, p.average, p.pos_label)
    # A grouped search's test patients are resampled whole, as its folds kept them whole
    # (QA: the card said "grouped" beside intervals that resampled rows of one patient).
    groups = p.test.groups if p.train.groups is not None else None
    ci = (bootstrap_all(p.test.y, proba, p.average, p.pos_label, n=p.plan.bootstrap,
                        seed=p.plan.seed, groups=groups) if p.plan.bootstrap else None)
    # Six significant digits, not six decimals: a confident model's 1e-35 for the other class
    # is what orders its saturated samples (see metrics.binary_score), and the report's ROC
    # curve and AUC are drawn from these.
    predictions = {"classes": list(p.train.classes), "y_true": np.asarray(p.test.y).tolist(),
                   "proba": [[float(f"{v:.6g}") for v in row] for row in np.asarray(proba)]}
    return scores, ci, predictions


def save_best(p: Prepared, refit: Refit, *, study: str, best_row: dict | None,
              fold_scores: list | None, manifest: dict | None, folder: Path) -> Path:
    """The refit model and everything its model card reports, in one artifact folder."""
    info = artifact_info(p, refit, study=study, best_row=best_row, fold_scores=fold_scores,
                         manifest=manifest)
    with replacing_model(folder) as stage:  # whatever model an earlier run saved there goes
        save_artifact(stage, refit.model, refit.preprocessor, info)
    return Path(folder)


def artifact_info(p: Prepared, refit: Refit, *, study: str, best_row: dict | None,
                  fold_scores: list | None, manifest: dict | None) -> dict:
    """What a refit model's artifact config records (see :func:`model_info`)."""
    info = model_info(p, trial=refit.trial, architecture=refit.architecture,
                      params=refit.params, test_scores=refit.test_scores,
                      test_ci=refit.test_ci, study=study, best_row=best_row,
                      fold_scores=fold_scores, manifest=manifest, refit=True)
    info["bag"] = refit.seeds
    return info


def model_info(p: Prepared, *, trial: int, architecture: str, params: dict,
               test_scores: dict | None, test_ci: dict | None, study: str,
               best_row: dict | None, fold_scores: list | None, manifest: dict | None,
               refit: bool) -> dict:
    """What an artifact's config records about the model, its data, CV and test scores.

    ``refit``: the model was refit on all training data (else it is the bag of the k models
    its cross-validation trained); the model card says which.
    """
    test = p.test
    tf = p.plan.data.test_fraction
    grouped = p.train.groups is not None
    how = ("none" if test is None else f"held-out {tf:g} of the data, stratified"
           + (" and grouped" if grouped else "") if tf else "a separate test file or split")
    d = p.plan.data
    # a DataFrame's options were spent reading it (the plan holds none): a new file of its
    # table is read with them (review: a model searched on a DataFrame forgot its columns)
    load_options = {"format": d.format, "modality": d.modality, **d.options,
                    **(p.full.meta.get("frame_options") or {})}
    # A plugin's loader read the data: new data goes to it again (the built-in image-folder
    # loader would claim its folders), and the model says which plugin that needs (QA: an
    # export predicted a folder of .npy signals as "files automed does not read").
    loader = p.full.meta.get("loader") or p.train.meta.get("loader")
    read_by = _provider(loader, loader=True) if loader else None
    if read_by:
        load_options["format"] = loader
    family = architecture if architecture in p.architectures else None
    return {
        "study": study, "trial": trial, "architecture": architecture, "params": params,
        "refit": refit,
        "spec": p.spec_for(family).to_dict() if family else p.spec.to_dict(),
        "classes": p.train.classes,
        "load_options": {k: v for k, v in load_options.items() if v is not None},
        "metric": p.metric, "average": p.average, "pos_label": p.pos_label,
        "data": {"source": p.full.source, "fingerprint": p.full.fingerprint,
                 "samples": len(p.train), "class_counts": p.train.class_counts(),
                 **({"label": p.train.meta["label_name"]} if p.train.meta.get("label_name")
                    else {}),
                 # a text file's columns, for the model card (QA: it named none)
                 **({"text_col": p.train.meta["text_col"],
                     "label_col": p.train.meta.get("label_col")}
                    if p.train.modality == "text" and p.train.meta.get("text_col") else {}),
                 # the whole file's count when --test-fraction held some of it out, and
                 # which of its rows (``automed predict`` on the same file marks them test)
                 **({"file_samples": len(p.full),
                     "held_out_rows": test.meta.get("held_out_rows")}
                    if tf and test is not None else {})},
        "cv": {"folds": p.plan.folds, "grouped": grouped,
               "score_mean": (best_row or {}).get("score_mean"),
               "score_std": (best_row or {}).get("score_std"),
               "fold_scores": fold_scores},
        "test": None if test is None else {
            "source": test.source, "size": len(test), "how": how,
            "fingerprint": test.fingerprint,  # predict tells the --test file by it
            "scores": test_scores, "ci": test_ci,
            "bootstrap": p.plan.bootstrap,
            # intervals that resampled whole patients (score_on_test), as the card says
            **(test_intervals(p) if test_ci else {})},
        "manifest": manifest, "leakage_warnings": p.warnings,
        # a third-party family's plugin, distribution and version: what loading it elsewhere
        # needs installed (MissingArchitecture says it)
        **({"plugin": provided} if family and (provided := _provider(family)) else {}),
        **({"loader_plugin": {"loader": loader, **read_by}} if read_by else {}),
    }


def _provider(name: str, *, loader: bool = False) -> dict | None:
    from automed.plugin_manager import get_plugin_manager

    return get_plugin_manager().provider(name, loader=loader)
