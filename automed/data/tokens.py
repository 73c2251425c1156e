"""Token encodings for text and biosequences: int64 ids, 0 = padding, right-padded.

The model must be built before any fold is fitted, so the *sizes* (sequence length, vocabulary
size) are decided once per dataset from its training set and cached in ``dataset.meta``, which
every fold subset shares. Sizes carry no label information. The *contents* (which words get an
id) are fitted on each fold's training part only, so no word seen only in validation or test
data gets its own id.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import torch

from automed.data.alphabets import ALPHABETS, detect_alphabet
from automed.data.dataset import Dataset
from automed.data.preprocess import PREPROCESSORS, Preprocessor
from automed.errors import DataError
from automed.spec import Spec

PAD, UNK = 0, 1
MAX_VOCAB = 20_000  # words kept per fold, most frequent first (plus PAD and UNK)
MIN_COUNT = 2  # a word seen once in a fold's training part is noise: it maps to UNK
MAX_TEXT_LENGTH = 256  # tokens; longer texts keep their head and tail (see clip)
TAIL_FRACTION = 0.25  # of the kept tokens that come from the end of a long text
MAX_SEQUENCE_LENGTH = 1024  # residues; longer sequences are truncated

_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore); punctuation is dropped."""
    return _WORD.findall(str(text).lower())


def clip(tokens: list[str], length: int, tail: float = TAIL_FRACTION) -> list[str]:
    """At most ``length`` tokens: a long text keeps its head (title, aims) and its tail
    (results, conclusion); ``tail`` is the share of ``length`` taken from the end."""
    if len(tokens) <= length:
        return tokens
    back = int(length * tail)
    return tokens[:length - back] + (tokens[len(tokens) - back:] if back else [])


def _round_up(n: int, multiple: int = 8) -> int:
    return -(-n // multiple) * multiple


def _pad(rows: list[list[int]], length: int) -> torch.Tensor:
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, ids in enumerate(rows):
        ids = ids[:length]
        out[i, :len(ids)] = ids
    return torch.from_numpy(out)


class TextPreprocessor(Preprocessor):
    """Word-level vocabulary fitted on the training fold; unknown words map to UNK (1)."""

    modality = "text"

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self.length = 0
        self.vocab_size = 0
        self._index: dict[str, int] = {}
        self.tail = TAIL_FRACTION

    @staticmethod
    def layout(dataset: Dataset) -> dict:
        """Sequence length (95th percentile of token counts, capped) and vocabulary size."""
        if "text_layout" not in dataset.meta:
            tokens = [tokenize(t) for t in dataset.x]
            counts = np.array([len(t) for t in tokens])
            length = int(min(MAX_TEXT_LENGTH, max(8, _round_up(int(np.percentile(counts, 95))))))
            distinct = len({w for t in tokens for w in t})
            dataset.meta["text_layout"] = {"length": length,
                                           "vocab_size": min(MAX_VOCAB, distinct) + 2}
        return dataset.meta["text_layout"]

    def spec(self, dataset: Dataset) -> Spec:
        lay = self.layout(dataset)
        return Spec("text", (lay["length"],), dataset.n_classes, vocab_size=lay["vocab_size"])

    def fit(self, dataset: Dataset) -> TextPreprocessor:
        lay = self.layout(dataset)
        self.length, self.vocab_size = lay["length"], lay["vocab_size"]
        counts = Counter(w for t in dataset.x for w in clip(tokenize(t), self.length, self.tail))
        # Sorted by count then word, so the same fold always gives the same ids.
        kept = sorted((w for w, c in counts.items() if c >= MIN_COUNT),
                      key=lambda w: (-counts[w], w))
        self.vocab = kept[:self.vocab_size - 2]
        self._index = {w: i + 2 for i, w in enumerate(self.vocab)}
        return self

    def transform(self, x: Any) -> torch.Tensor:
        rows = [[self._index.get(w, UNK) for w in clip(tokenize(t), self.length, self.tail)]
                for t in x]
        return _pad(rows, self.length)

    def state(self) -> dict:
        return {"vocab": list(self.vocab), "length": self.length, "vocab_size": self.vocab_size,
                "tail": self.tail}

    @classmethod
    def from_state(cls, state: dict) -> TextPreprocessor:
        obj = cls()
        obj.vocab, obj.length = list(state["vocab"]), int(state["length"])
        obj.vocab_size = int(state["vocab_size"])
        obj.tail = float(state.get("tail", 0.0))  # models saved before head+tail kept the head
        obj._index = {w: i + 2 for i, w in enumerate(obj.vocab)}
        return obj


class BioSequencePreprocessor(Preprocessor):
    """Residues to ids ``1..len(alphabet)`` in the alphabet's fixed order (nothing to fit)."""

    modality = "biosequence"

    def __init__(self) -> None:
        self.alphabet = ""
        self.symbols = ""
        self.length = 0

    @staticmethod
    def layout(dataset: Dataset) -> dict:
        """The alphabet (detected unless a loader set it) and the padded length."""
        if "sequence_layout" not in dataset.meta:
            seqs = [str(s).upper() for s in dataset.x]
            alphabet = dataset.meta.get("alphabet") or detect_alphabet(seqs, dataset.source)
            longest = max(len(s) for s in seqs)
            dataset.meta["sequence_layout"] = {"alphabet": alphabet,
                                               "length": min(MAX_SEQUENCE_LENGTH, longest)}
        return dataset.meta["sequence_layout"]

    def spec(self, dataset: Dataset) -> Spec:
        lay = self.layout(dataset)
        symbols = ALPHABETS[lay["alphabet"]]
        return Spec("biosequence", (lay["length"],), dataset.n_classes,
                    vocab_size=len(symbols) + 1, alphabet=lay["alphabet"],
                    extra={"symbols": symbols})

    def fit(self, dataset: Dataset) -> BioSequencePreprocessor:
        lay = self.layout(dataset)
        self.alphabet, self.length = lay["alphabet"], lay["length"]
        self.symbols = ALPHABETS[self.alphabet]
        return self

    def transform(self, x: Any) -> torch.Tensor:
        index = {c: i + 1 for i, c in enumerate(self.symbols)}
        rows = []
        for n, s in enumerate(x):
            s = str(s).upper()
            try:
                rows.append([index[c] for c in s[:self.length]])
            except KeyError as exc:
                # QA: RNA given to a DNA model was told to "clean the input"
                fix = {("dna", "U"): "convert U to T (RNA to DNA) first",
                       ("rna", "T"): "convert T to U (DNA to RNA) first"}.get(
                    (self.alphabet, exc.args[0]), "clean the input")
                raise DataError(
                    f"sequence {n + 1} has {exc.args[0]!r}, which is not in the "
                    f"{self.alphabet.upper()} alphabet the model was trained on; {fix}"
                ) from None
        return _pad(rows, self.length)

    def state(self) -> dict:
        return {"alphabet": self.alphabet, "symbols": self.symbols, "length": self.length}

    @classmethod
    def from_state(cls, state: dict) -> BioSequencePreprocessor:
        obj = cls()
        obj.alphabet, obj.symbols = state["alphabet"], state["symbols"]
        obj.length = int(state["length"])
        return obj


PREPROCESSORS["text"] = TextPreprocessor
PREPROCESSORS["biosequence"] = BioSequencePreprocessor
