"""The tfidf text family: features fitted inside each fold, LinearSVC's loss, and a search that
saves and predicts with its own preprocessing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_text_families import TRAIN, VALIDATION, _clinical_texts

from automed.data.dataset import Dataset
from automed.plugin_manager import get_plugin_manager
from automed.plugins.tfidf import TfidfFeatures
from automed.searching.runner import search
from automed.searching.training import squared_hinge
from automed.testing import check_architecture

pytestmark = pytest.mark.filterwarnings("ignore:Fixed parameter:UserWarning")


def _fold():
    texts = np.array(TRAIN + VALIDATION, dtype=object)
    data = Dataset(texts, np.array([0, 0, 1, 1, 0, 1]), ["a", "b"], "text", "t.jsonl")
    pre = TfidfFeatures()
    spec = pre.spec(data)
    pre.fit(data.subset(np.arange(len(TRAIN))))
    return pre, spec


def test_ngrams_seen_only_in_validation_get_no_feature():
    pre, spec = _fold()
    words, chars = pre.vocab
    assert "zebra" not in words and " zeb" not in chars and "quokk" not in chars
    assert "fever cough" in words and "fev" in chars
    x = pre.transform(VALIDATION)
    assert x.shape == (2, 2, spec.input_shape[1])
    ids, weights = x[:, 0].long(), x[:, 1]
    assert int(ids.max()) <= pre.n_features < spec.vocab_size  # the whole-set bound holds
    # "zebra quokka" shares only short char n-grams with training ("a ", " q"? none of 3-5):
    # whatever it keeps is a training n-gram, and each block is L2-normalised.
    names = words + chars
    kept = [names[i - 1] for i in ids[1].tolist() if i > 0]
    assert all(n in chars for n in kept) and "zebra" not in kept
    nonzero = weights[0][ids[0] > 0]
    assert 1.0 <= float((nonzero ** 2).sum()) <= 2.0 + 1e-5  # two blocks, each of norm <= 1


def test_every_fold_gets_the_same_width_and_the_state_round_trips():
    pre, spec = _fold()
    other = TfidfFeatures().fit(Dataset(np.array(TRAIN + VALIDATION, dtype=object)[2:],
                                        np.array([1, 1, 0, 1]), ["a", "b"], "text", "t",
                                        meta={}))
    assert pre.width == spec.input_shape[1]
    restored = TfidfFeatures.from_state(json.loads(json.dumps(pre.state())))
    assert torch.equal(restored.transform(VALIDATION), pre.transform(VALIDATION))
    assert other.vocab != pre.vocab


def test_squared_hinge_matches_a_hand_computation():
    logits = torch.tensor([[0.5, -2.0, 0.0], [2.0, 0.5, -1.0]])
    y = torch.tensor([0, 2])
    # sample 0 (class 0): (1-0.5)^2 + 0 + (1+0)^2 = 1.25
    # sample 1 (class 2): (1+2)^2 + (1+0.5)^2 + (1-(-1))^2 = 15.25
    assert torch.isclose(squared_hinge(logits, y), torch.tensor((1.25 + 15.25) / 2))
    w = torch.tensor([1.0, 1.0, 3.0])
    assert torch.isclose(squared_hinge(logits, y, w), torch.tensor((1.25 + 3 * 15.25) / 4))


def test_tfidf_conforms():
    arch = get_plugin_manager().architectures()["tfidf"]
    failures = check_architecture(arch, "text", n_samples=2)
    assert not failures, "\n".join(map(str, failures))


def test_search_learns_and_the_saved_model_predicts_in_a_fresh_process(tmp_path):
    _clinical_texts(tmp_path / "notes.jsonl", n=60)
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    result = search(tmp_path / "notes.jsonl", folds=2, trials=2, storage=storage,
                    architectures=["tfidf"], prune=False, artifacts=tmp_path / "m", ensemble=False,
                    bootstrap=0)
    first = min(result.leaderboard, key=lambda r: r["trial"])
    assert first["architecture"] == "tfidf" and first["score_mean"] >= 0.9  # chance: 1/3
    assert result.test_scores["accuracy"] >= 0.9
    notes = [json.loads(line)["text"] for line in (tmp_path / "notes.jsonl").open()]
    expected = result.predict_proba(notes)
    out = tmp_path / "pred.csv"
    run = subprocess.run([sys.executable, "-m", "automed.cli", "predict", "--model",
                          result.artifact, str(tmp_path / "notes.jsonl"), "--output", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with out.open() as f:
        got = [[float(r[f"p_c{k}"]) for k in range(3)] for r in csv.DictReader(f)]
    np.testing.assert_allclose(np.array(got), expected, atol=2e-6)
