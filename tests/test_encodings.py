"""Per-fold encodings: fitted on training data only, JSON-able state, the Spec known up front."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from automed.data.dataset import Dataset
from automed.data.preprocess import preprocessor_for
from automed.data.tabular import TabularPreprocessor
from automed.data.tokens import BioSequencePreprocessor, TextPreprocessor
from automed.errors import DataError


def _texts() -> Dataset:
    x = np.array(["fever cough fever", "fever cough", "rash itch rash", "rash itch",
                  "zebra only here zebra"], dtype=object)
    return Dataset(x, np.array([0, 0, 1, 1, 1]), ["a", "b"], "text", "t.jsonl")


def test_text_vocab_from_training_fold_only():
    data = _texts()
    spec = preprocessor_for("text").spec(data)
    pre = preprocessor_for("text").fit(data.subset(np.arange(4)))
    assert "zebra" not in pre.vocab  # only in the held-out row
    ids = pre.transform(data.x)
    assert ids.dtype == torch.int64 and ids.shape == (5, spec.length)
    assert ids[4, 0] == 1 and ids[0, 0] == ids[0, 2] >= 2  # UNK, then a known word twice
    assert int(ids.max()) < spec.vocab_size and ids[1, -1] == 0  # right padding
    again = TextPreprocessor.from_state(json.loads(json.dumps(pre.state())))
    assert torch.equal(again.transform(data.x), ids)


def test_text_spec_is_the_same_for_every_fold():
    data = _texts()
    spec = preprocessor_for("text").spec(data)
    for idx in ([0, 1, 2], [2, 3, 4]):
        pre = preprocessor_for("text").fit(data.subset(np.array(idx)))
        assert pre.transform(data.x).shape == (5, spec.length)
        assert pre.vocab_size == spec.vocab_size


def test_biosequence_ids_and_iupac():
    x = np.array(["ACGTN", "acgr", "TTT"], dtype=object)
    data = Dataset(x, np.array([0, 1, 0]), ["a", "b"], "biosequence", "s.fa")
    spec = preprocessor_for("biosequence").spec(data)
    assert spec.alphabet == "dna" and spec.input_shape == (5,) and spec.vocab_size == 16
    pre = preprocessor_for("biosequence").fit(data)
    ids = pre.transform(x)
    assert ids[0].tolist() == [1, 2, 3, 4, 15] and ids[1].tolist() == [1, 2, 3, 5, 0]
    again = BioSequencePreprocessor.from_state(json.loads(json.dumps(pre.state())))
    assert torch.equal(again.transform(x), ids)
    # RNA for a DNA model says how to make it DNA (QA: "clean the input")
    with pytest.raises(DataError, match=r"sequence 2 has 'U', which is not in the DNA alphabet "
                                        r"the model was trained on; convert U to T"):
        pre.transform(np.array(["ACGT", "ACGU"], dtype=object))
    with pytest.raises(DataError, match="has 'E'.*; clean the input"):
        pre.transform(np.array(["ACGE"], dtype=object))


def test_tabular_scaling_and_levels_fitted_per_fold():
    x = np.array([["1", "M"], ["3", "F"], ["", "M"], ["100", "X"]], dtype=object)
    data = Dataset(x, np.array([0, 1, 0, 1]), ["a", "b"], "tabular", "c.csv",
                   meta={"feature_names": ["age", "sex"]})
    spec = preprocessor_for("tabular").spec(data)
    assert spec.input_shape == (5,)  # age, age-missing, sex F/M/X
    pre = preprocessor_for("tabular").fit(data.subset(np.arange(3)))
    out = pre.transform(x).numpy()
    assert out.shape == (4, 5) and out.dtype == np.float32
    # Median 2 fills the gap; 100 never influenced the mean/std (fold rows only).
    assert out[2, 1] == 1.0 and abs(out[2, 0]) < 1e-6
    assert out[3, 0] > 10
    assert out[3, 2:].tolist() == [0.0, 0.0, 0.0]  # level X unseen in this fold: zeros
    again = TabularPreprocessor.from_state(json.loads(json.dumps(pre.state())))
    assert np.allclose(again.transform(x).numpy(), out)


def test_biosequence_position_bins_are_searched_and_fit_short_windows():
    """``bins`` pooling keeps where a motif sits at the resolution asked for (the head sees
    filters x bins features), never finer than the window itself."""
    from automed.plugins.biosequence import BioSequence, BioSequenceModel, bin_choices

    x = np.array(["ACGTACGTAC" * 6, "TTGCA" * 12], dtype=object)
    data = Dataset(x, np.array([0, 1]), ["a", "b"], "biosequence", "s.fa")
    spec = preprocessor_for("biosequence").spec(data)
    assert bin_choices(spec) == [6, 15, 30]
    ids = preprocessor_for("biosequence").fit(data).transform(x)
    params = {**BioSequence().default_params(spec), "filters": 8, "bins": 15}
    model = BioSequenceModel(params, spec).eval()
    assert model.head[1].in_features == 8 * 15 and model(ids).shape == (2, 2)
    short = preprocessor_for("biosequence").spec(
        Dataset(np.array(["ACGTAC", "GGTACA"], dtype=object), np.array([0, 1]), ["a", "b"],
                "biosequence", "s.fa"))
    assert bin_choices(short) == [6]
    assert BioSequenceModel({**params, "bins": 30}, short).head[1].in_features == 8 * 6
