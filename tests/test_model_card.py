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


def test_a_two_class_card_names_how_recall_and_specificity_are_averaged():
    """QA: a two-class card showed "| recall | 0.9375 |" and "| specificity | 0.9375 |",
    macro averages (both the balanced accuracy), where the positive class's sensitivity
    was 0.875 and its specificity 1.0."""
    ci = {m: {"value": v, "low": v - 0.1, "high": v}
          for m, v in (("accuracy", 0.95), ("recall", 0.9375), ("specificity", 0.9375))}
    card = render_model_card(_config(scores=None, ci=ci, bootstrap=50))
    assert "| recall (macro) | 0.9375 |" in card and "| specificity (macro) | 0.9375 |" in card
    assert "| accuracy | 0.9500 |" in card  # accuracy averages nothing
    assert "not one class's sensitivity and specificity" in card
    binary = _config(scores=None, ci=ci, bootstrap=50)
    binary["average"] = "binary"
    card = render_model_card(binary)
    assert "| recall (binary) | 0.9375 |" in card
    assert "not one class's sensitivity" not in card  # binary: they are the class's own
    three = _config(scores=None, ci=ci, bootstrap=50)
    three["classes"] = ["a", "b", "c"]
    assert "not one class's sensitivity" not in render_model_card(three)


def test_a_card_without_a_test_set_says_its_only_score_is_optimistic():
    """QA: "locked test set: none", and Limitations spoke of reading the test interval."""
    config = _config()
    config["test"] = None
    card = render_model_card(config)
    assert "No locked test set" in card and "Small test sets" not in card
    assert "Small test sets" in render_model_card(_config(scores={"accuracy": 0.9}, ci=None,
                                                          bootstrap=0))


def test_the_card_lists_class_names_each_as_written():
    """QA: the class "quo'ted" showed as "quo\\'ted" (the list's repr, Markdown-escaped)."""
    config = _config(scores={"accuracy": 0.9}, ci=None, bootstrap=0)
    config["classes"] = ["quo'ted", "b"]
    config["data"]["class_counts"] = {"quo'ted": 20, "b": 20}
    card = render_model_card(config)
    assert "probabilities of 2 classes `quo'ted`, `b`" in card
    assert "class counts: `quo'ted`: 20, `b`: 20" in card
    assert "\\'" not in card


def test_a_grouped_card_says_how_its_intervals_were_drawn():
    ci = {"accuracy": {"value": 0.9, "low": None, "high": None}}
    config = _config(scores=None, ci=ci, bootstrap=50, resampled="too few groups", groups=3)
    config["cv"]["grouped"] = True
    card = render_model_card(config)
    assert "no bootstrap intervals (the test set holds 3 patients (groups), too few to " \
        "resample)" in card and "| accuracy | 0.9000 |" in card and "95 % CI" not in card
    config["test"].update(resampled="groups", groups=40)
    assert "of whole groups: a patient's samples are drawn together" in render_model_card(config)
    config["test"].pop("resampled")  # a grouped search's card from before: said as it was
    assert "of single samples: samples of one patient count as independent" in \
        render_model_card(config)


def test_a_text_card_says_its_input_is_strings_not_a_shape():
    # QA: "input: text of shape (2, 136)"
    config = _config(scores={"accuracy": 0.9})
    config["spec"] = {"modality": "text", "input_shape": [2, 136]}
    config["data"].update(text_col="transcription", label_col="specialty")
    card = render_model_card(config)
    assert ("- input column, found by name in a new file: text `transcription`; label "
            "`specialty`") in card  # QA: the card named no column a new file must carry
    assert ("- input: text, one string per sample (encoded by the model's preprocessing to "
            "shape (2, 136)); output: probabilities of 2 classes") in card
    assert "- input: signal of shape (3, 50); output" in render_model_card(
        _config(scores={"accuracy": 0.9}))
