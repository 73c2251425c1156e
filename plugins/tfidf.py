"""TF-IDF over word and character n-grams, with a linear head, for text.

The strongest cheap model on clinical abstracts is still a linear classifier on TF-IDF
features, and character n-grams carry what medical words share (``-itis``, ``cardio-``,
``-ectomy``). On Ohsumed, scikit-learn's LinearSVC on word 1-2-grams scores 0.670; adding
word-bounded character 3-5-grams lifts it to 0.705, and balanced class weights to 0.720
(BENCHMARKS.md, "tfidf"). This family is that model inside the search: the features are
this family's own preprocessing, fitted on each fold's training part only (vocabulary,
document frequencies and the kept n-grams), and the linear head is trained by automed's loop
with ``loss="squared_hinge"`` (LinearSVC's loss) or cross-entropy.

Each document reaches the model as ``(2, K)`` floats: its non-zero feature ids (1-based,
0 = padding) and their TF-IDF weights (each block L2-normalised, as scikit-learn's
``TfidfVectorizer``), largest weights first. ``K`` and the number of ids come from the whole
training set once (an upper bound for every fold), so the spec is the same on every fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from automed.architecture import Architecture
from automed.data.preprocess import Preprocessor
from automed.hookspecs import hookimpl
from automed.spec import Spec

MAX_FEATURES_PER_DOC = 4096  # longer documents keep their largest weights
_BLOCKS = (("word", (1, 2)), ("char_wb", (3, 5)))


def _vectorizers(n_docs: int) -> list:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # min_df 2 drops n-grams seen in one document (most char n-grams of typos and numbers);
    # tiny example sets (the plugin checks) keep everything.
    min_df = 2 if n_docs >= 20 else 1
    return [TfidfVectorizer(analyzer=a, ngram_range=r, sublinear_tf=True, min_df=min_df,
                            lowercase=True, dtype=np.float32) for a, r in _BLOCKS]


class TfidfFeatures(Preprocessor):
    """Raw strings -> ``(n, 2, K)``: sorted non-zero feature ids and their TF-IDF weights."""

    modality = "text"

    def __init__(self) -> None:
        self.vocab: list[list[str]] = []
        self.idf: list[np.ndarray] = []
        self.width = 0
        self._fitted: list = []

    @property
    def key(self) -> str:
        return "tfidf:" + ",".join(f"{a}{lo}-{hi}" for a, (lo, hi) in _BLOCKS)

    def _layout(self, dataset: Any) -> dict:
        slot = f"{self.key}:layout"
        if slot not in dataset.meta:
            whole = TfidfFeatures()
            # one pass: fit and transform tokenise once (QA: 20,000 texts took 125 s silent)
            nnz = np.diff(whole._learn(dataset.x, matrix=True).indptr)
            width = int(min(MAX_FEATURES_PER_DOC, max(8, -(-int(nnz.max()) // 8) * 8)))
            dataset.meta[slot] = {"ids": whole.n_features + 1, "width": width}
        return dataset.meta[slot]

    def spec(self, dataset: Any) -> Spec:
        lay = self._layout(dataset)
        return Spec("text", (2, lay["width"]), dataset.n_classes, vocab_size=lay["ids"],
                    extra={"tfidf_features": lay["ids"] - 1})

    @property
    def n_features(self) -> int:
        return sum(len(v) for v in self.vocab)

    def _learn(self, x: Any, matrix: bool = False):
        """Fit the vectorizers on ``x``; with ``matrix``, also return ``x``'s features (what
        :meth:`_matrix` gives) from the same pass."""
        from scipy.sparse import hstack

        texts = [str(t) for t in x]
        self._fitted = _vectorizers(len(texts))
        parts = [v.fit_transform(texts) if matrix else v.fit(texts) for v in self._fitted]
        self.vocab = [v.get_feature_names_out().tolist() for v in self._fitted]
        self.idf = [v.idf_.astype(np.float32) for v in self._fitted]
        return hstack(parts, format="csr") if matrix else None

    def fit(self, dataset: Any) -> TfidfFeatures:
        # A fold's part shares the whole training set's meta: every fold gets the same width.
        self._learn(dataset.x)
        self.width = self._layout(dataset)["width"]
        return self

    def _blocks(self) -> list:
        if not self._fitted:
            self._fitted = []
            for v, words, idf in zip(_vectorizers(10**6), self.vocab, self.idf):
                v.vocabulary_ = {w: i for i, w in enumerate(words)}
                v.idf_ = np.asarray(idf, dtype=np.float32)
                self._fitted.append(v)
        return self._fitted

    def _matrix(self, x: Any):
        from scipy.sparse import hstack

        texts = [str(t) for t in x]
        return hstack([v.transform(texts) for v in self._blocks()], format="csr")

    def transform(self, x: Any) -> torch.Tensor:
        m = self._matrix(x)
        width = self.width
        out = np.zeros((m.shape[0], 2, width), dtype=np.float32)
        for i in range(m.shape[0]):
            lo, hi = m.indptr[i], m.indptr[i + 1]
            ids, vals = m.indices[lo:hi], m.data[lo:hi]
            if len(ids) > width:
                keep = np.argsort(-vals, kind="stable")[:width]
                ids, vals = ids[keep], vals[keep]
            out[i, 0, :len(ids)] = ids + 1
            out[i, 1, :len(ids)] = vals
        return torch.from_numpy(out)

    def state(self) -> dict:
        return {"vocab": self.vocab, "idf": [v.tolist() for v in self.idf], "width": self.width}

    @classmethod
    def from_state(cls, state: dict) -> TfidfFeatures:
        obj = cls()
        obj.vocab = [list(v) for v in state["vocab"]]
        obj.idf = [np.asarray(v, dtype=np.float32) for v in state["idf"]]
        obj.width = int(state["width"])
        return obj


class TfidfModel(nn.Module):
    """A linear classifier on the TF-IDF features: per-feature class scores summed with the
    document's weights, plus a bias. (A low-rank 64-d bag with dropout scored 0.569 on
    Ohsumed's test set where this scored 0.717, at four times the cost: not searched.)"""

    def __init__(self, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(int(spec.vocab_size), spec.n_classes, mode="sum",
                                   padding_idx=0)
        nn.init.zeros_(self.bag.weight)
        self.bias = nn.Parameter(torch.zeros(spec.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x[:, 0].long().clamp_(0, self.bag.num_embeddings - 1)
        return self.bag(ids, per_sample_weights=x[:, 1].float()) + self.bias


class Tfidf(Architecture):
    name = "tfidf"
    modalities = frozenset({"text"})
    description = ("TF-IDF of word 1-2-grams and character 3-5-grams (fitted per fold), linear "
                   "head, squared-hinge (LinearSVC) or cross-entropy loss")
    cpu_bf16 = True  # measured faster under bf16 autocast (BENCHMARKS.md, "bf16 on the CPU")

    def preprocessor(self, modality: str) -> TfidfFeatures:
        return TfidfFeatures()

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return {}  # the model is fixed; what is searched is how it trains (training_space)

    def training_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        # A convex problem on L2-normalised features: SGD with large steps converges where
        # Adam's per-feature steps over-fit rare n-grams (0.670 vs 0.697, Ohsumed).
        return {
            "optimizer": "sgd",
            "lr": trial.suggest_float("lr", 0.05, 0.9, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-5, 2e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64]),
            "epochs": trial.suggest_int("epochs", 10, 40),
            "loss": trial.suggest_categorical("loss", ["squared_hinge", "cross_entropy"]),
            "label_smoothing": 0.0,
            "class_weight": trial.suggest_categorical("class_weight", ["balanced", "none"]),
            "sampler": "shuffle",
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        # LinearSVC(C=0.5, class_weight="balanced") in SGD form: weight decay 1 / (C n) for
        # Ohsumed's 3357 training documents; 0.717 test accuracy fitted alone.
        return {"optimizer": "sgd", "lr": 0.5, "weight_decay": 6e-4,
                "batch_size": 64, "epochs": 30, "loss": "squared_hinge", "label_smoothing": 0.0,
                "class_weight": "balanced", "sampler": "shuffle"}

    def priority(self, spec: Spec) -> int:
        return 4  # strongest and cheap on text: before fasttext

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        return TfidfModel(params, spec)


@hookimpl
def register_architectures(register):
    register(Tfidf())
