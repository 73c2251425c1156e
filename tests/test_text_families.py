"""The text families: n-grams and IDF fitted inside each fold, and a small end-to-end search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from automed.data.dataset import Dataset
from automed.data.preprocess import preprocessor_for
from automed.plugin_manager import get_plugin_manager
from automed.plugins.fasttext import BagOfNgrams, FastTextModel, hash_ngrams, occurrences
from automed.searching.runner import search
from automed.searching.training import fit_model
from automed.testing import check_architecture

# The quick settings below train fewer epochs than the searched range; Optuna warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Fixed parameter:UserWarning")

TRAIN = ["fever cough chest pain", "fever cough chest", "rash itch skin", "rash skin itch pain"]
VALIDATION = ["fever zebra cough", "zebra quokka"]  # zebra and quokka: never in training


def _fold():
    texts = np.array(TRAIN + VALIDATION, dtype=object)
    data = Dataset(texts, np.array([0, 0, 1, 1, 0, 1]), ["a", "b"], "text", "t.jsonl")
    pre = preprocessor_for("text")
    spec = pre.spec(data)
    pre.fit(data.subset(np.arange(len(TRAIN))))
    return pre, spec


def test_word_seen_only_in_validation_gets_no_word_or_ngram_id():
    pre, spec = _fold()
    val = pre.transform(VALIDATION)
    assert "zebra" not in pre.vocab and "quokka" not in pre.vocab
    fever, cough = pre._index["fever"], pre._index["cough"]
    assert val[0, :3].tolist() == [fever, 1, cough]  # zebra -> UNK
    # Every bigram touching the unknown word is no n-gram at all, so "fever zebra" and
    # "zebra cough" cannot own (or even share) a bucket that training never filled.
    assert hash_ngrams(val, 2, 1 << 10)[0, :2].tolist() == [0, 0]
    assert not hash_ngrams(val[1:], 2, 1 << 10).any()
    # A bigram of two kept words does get an id, the same one wherever it occurs.
    train = pre.transform(TRAIN)
    grams = hash_ngrams(train, 2, 1 << 10)
    assert grams[0, 0] > 0 and grams[0, 0] == grams[1, 0]  # "fever cough" in both


def test_document_frequencies_come_from_training_batches_only():
    pre, spec = _fold()
    train, val = pre.transform(TRAIN), pre.transform(VALIDATION)
    params = {"ngrams": 2, "buckets": 64, "weighting": "tfidf", "dim": 0, "hidden": 0,
              "dropout": 0.0, "token_dropout": 0.0, "lr": 0.05, "batch_size": 4, "epochs": 1,
              "class_weight": "none"}
    torch.manual_seed(0)
    model = fit_model(FastTextModel(params, spec), train, torch.tensor([0, 0, 1, 1]), params,
                      spec)
    bag = model.bag
    assert float(bag.docs) == 4.0
    expected = torch.zeros_like(bag.df)
    for row in bag.items(train):
        expected[row[row > 0].unique()] += 1
    assert torch.equal(bag.df, expected)
    assert float(bag.df[pre._index["fever"]]) == 2.0 and float(bag.df[1]) == 0.0
    model.eval()
    with torch.no_grad():
        model(val)  # predicting never updates the statistics
    assert torch.equal(bag.df, expected) and float(bag.docs) == 4.0


def test_tfidf_weights_match_scikit_learn():
    """The bag's weights are scikit-learn's TF-IDF (sublinear tf, smooth idf, L2 norm)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = ["a b b c", "a c c c d", "b d", "a a a a b"]
    vocab = {w: i + 2 for i, w in enumerate("abcd")}
    ids = torch.tensor([[vocab[w] for w in d.split()] + [0] * (5 - len(d.split()))
                        for d in docs])
    bag = BagOfNgrams(6, {"ngrams": 1, "weighting": "tfidf", "dim": 4})
    bag.train()
    bag(ids)  # one pass counts the document frequencies
    bag.eval()
    with torch.no_grad():
        bag.bag.weight.copy_(torch.cat([torch.zeros(2, 4), torch.eye(4)]))  # id -> its one-hot
        ours = bag(ids).numpy()
    ref = TfidfVectorizer(sublinear_tf=True, token_pattern=r"\w").fit_transform(docs)
    np.testing.assert_allclose(ours, ref.toarray(), atol=1e-5)


def test_occurrences_counts_and_marks_each_distinct_item_once():
    x = torch.tensor([[3, 5, 3, 0, 0], [7, 7, 7, 2, 0]])
    count, first = occurrences(x)
    assert count.tolist() == [[2, 1, 2, 2, 2], [3, 3, 3, 1, 1]]
    assert sorted(x[0][first[0]].tolist()) == [0, 3, 5]
    assert sorted(x[1][first[1]].tolist()) == [0, 2, 7]


@pytest.mark.parametrize("name", ["fasttext", "textcnn"])
def test_new_families_conform(name):
    arch = get_plugin_manager().architectures()[name]
    for modality in sorted(arch.modalities):
        failures = check_architecture(arch, modality, n_samples=2)
        assert not failures, "\n".join(map(str, failures))


def _clinical_texts(path, n=48):
    rng = np.random.default_rng(0)
    words = {0: ["fever", "cough", "sputum", "pneumonia"], 1: ["fracture", "bone", "cast"],
             2: ["rash", "itch", "eczema", "skin"]}
    filler = ["the", "patient", "was", "seen", "with", "and", "today"]
    with open(path, "w") as f:
        for i in range(n):
            y = i % 3
            text = " ".join(rng.choice(words[y] + filler, 12))
            split = "test" if i >= n - 12 else "train"
            f.write(json.dumps({"text": text, "label": f"c{y}", "split": split}) + "\n")


def test_small_text_search_with_the_new_families(tmp_path):
    _clinical_texts(tmp_path / "notes.jsonl")
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    result = search(tmp_path / "notes.jsonl", folds=2, trials=3, storage=storage,
                    architectures=["fasttext", "textcnn"], prune=False, artifacts=tmp_path,
                    bootstrap=0)
    tried = {r["architecture"] for r in result.leaderboard if r["state"] == "complete"}
    assert tried == {"fasttext", "textcnn"}
    # Class words decide the label: the defaults must learn it, not guess (chance is 1/3).
    fasttext = min((r for r in result.leaderboard if r["architecture"] == "fasttext"),
                   key=lambda r: r["trial"])
    assert fasttext["score_mean"] >= 0.9
    assert result.test_scores["accuracy"] >= 0.9
