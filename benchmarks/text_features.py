#!/usr/bin/env python
"""Which TF-IDF features a linear model wants on Ohsumed (scikit-learn, test accuracy).

    python benchmarks/text_features.py [--data PATH]

(PATH defaults to ../shared/data/ohsumed_textgcn/ohsumed_23_textgcn.jsonl.)

The scan behind the ``tfidf`` family's features: word n-grams (the peer's), word-bounded
character n-grams, both, and balanced class weights, each with LinearSVC(C=0.5) fitted on the
TextGCN training split and scored on its test split. Prints one line per variant: the number
of features, non-zero features per document (median / 99th percentile / max), accuracy and
seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DEFAULT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "ohsumed_textgcn"
           / "ohsumed_23_textgcn.jsonl")


def main() -> None:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.data.open()]
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    ytr = np.array([r["label"] for r in train])
    yte = np.array([r["label"] for r in test])

    def word(lo=1, hi=2):
        return TfidfVectorizer(ngram_range=(lo, hi), sublinear_tf=True, min_df=2)

    def char(lo, hi):
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(lo, hi), sublinear_tf=True,
                               min_df=2)

    variants = [
        ("word 1-2 (the peer)", [word()], None),
        ("char_wb 2-5", [char(2, 5)], None),
        ("word 1-2 + char_wb 2-5", [word(), char(2, 5)], None),
        ("word 1-2 + char_wb 2-5, balanced", [word(), char(2, 5)], "balanced"),
        ("word 1-2 + char_wb 3-5, balanced (tfidf family)", [word(), char(3, 5)], "balanced"),
        ("word 1 + char_wb 2-5, balanced", [word(1, 1), char(2, 5)], "balanced"),
    ]
    for name, vecs, weight in variants:
        start = time.perf_counter()
        xtr = hstack([v.fit_transform([r["text"] for r in train]) for v in vecs]).tocsr()
        xte = hstack([v.transform([r["text"] for r in test]) for v in vecs]).tocsr()
        clf = LinearSVC(C=0.5, class_weight=weight).fit(xtr, ytr)
        acc = float((clf.predict(xte) == yte).mean())
        nnz = np.diff(xtr.indptr)
        print(f"{name}: {xtr.shape[1]} features, per document {int(np.median(nnz))} / "
              f"{int(np.percentile(nnz, 99))} / {int(nnz.max())}, test accuracy {acc:.4f}, "
              f"{time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
