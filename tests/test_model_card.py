"""MODEL_CARD.md from hand-made artifact configs (no search)."""

from __future__ import annotations

from automed.results.model_card import render_model_card


def _config(**test) -> dict:
    return {"architecture": "cnn1d", "study": "rf", "trial": 2, "params": {"width": 8},
            "classes": ["0", "1"], "spec": {"modality": "signal", "input_shape": [3, 50]},
            "metric": "accuracy", "average": "macro", "refit": True, "bag": 2,
            "data": {"source": "sig3.npz", "samples": 40, "fingerprint": "abc",
                     "class_counts": {"0": 20, "1": 20}},
            "cv": {"folds": 2, "score_mean": 0.8, "score_std": 0.1},
            "test": {"source": "sig3.npz", "size": 10, "how": "the data's own test split",
                     **test},
            "manifest": {}}


def test_the_card_shows_test_scores_without_intervals_when_bootstrap_is_off():
    """QA: with --bootstrap 0 the card's Performance section showed only the CV score."""
    card = render_model_card(_config(scores={"accuracy": 0.9, "auroc": 0.95}, ci=None,
                                     bootstrap=0))
    performance = card.split("## Performance")[1].split("## Intended use")[0]
    assert "Test set (10 samples), no bootstrap intervals" in performance
    assert "| accuracy | 0.9000 |" in performance and "| auroc | 0.9500 |" in performance
    assert "95 % CI" not in performance


def test_the_card_shows_test_intervals_when_bootstrapped():
    ci = {"accuracy": {"value": 0.9, "low": 0.7, "high": 1.0}}
    card = render_model_card(_config(scores={"accuracy": 0.9}, ci=ci, bootstrap=50))
    assert "| accuracy | 0.9000 | 0.7000 – 1.0000 |" in card
    assert "no bootstrap intervals" not in card


def test_the_card_counts_the_file_and_its_held_out_test_rows():
    """QA: with --test-fraction the card said "24 samples" beside the whole file's
    fingerprint, where show and the report said 30."""
    config = _config(scores={"accuracy": 0.9}, ci=None, bootstrap=0)
    config["data"].update(samples=30, file_samples=40)
    card = render_model_card(config)
    assert ("- data file: `sig3.npz`, 40 samples, fingerprint `abc`: 30 for the search "
            "(training), 10 held out as the locked test set") in card
    assert "- class counts (training):" in card
    config["data"].pop("file_samples")  # a separate test file: the training file's count
    assert "- training data: `sig3.npz`, 30 samples" in render_model_card(config)
