"""A synthetic cohort where the truth is chance: 60 patients x 10 near-identical rows, the label
drawn at random per patient. Ungrouped CV memorises patients and scores near 1.0; grouped CV
must score near chance. Written in every format that can carry a group column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PATIENTS, ROWS, FEATURES = 60, 10, 12
WORDS = [f"w{i}" for i in range(200)]


def cohort(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patient ids, labels, features): features are the patient's base vector + tiny noise."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(PATIENTS) % 2)  # balanced, random per patient
    base = rng.normal(size=(PATIENTS, FEATURES))
    pid = np.repeat(np.arange(PATIENTS), ROWS)
    x = base[pid] + rng.normal(scale=0.01, size=(PATIENTS * ROWS, FEATURES))
    return np.array([f"p{p:02d}" for p in pid]), labels[pid].astype(str), x


def write(fmt: str, folder: Path, seed: int = 0) -> Path:
    """The cohort as ``fmt``: tabular, signal, text, sequence (CSV) or npz."""
    pid, y, x = cohort(seed)
    rng = np.random.default_rng(seed + 1)
    if fmt == "npz":
        path = folder / "cohort.npz"
        np.savez(path, x=x.astype("float32")[:, None, :], y=y.astype(int), groups=pid)
        return path
    if fmt in ("tabular", "signal"):
        path = folder / f"cohort_{fmt}.csv"
        head = ["patient", "label"] + [f"f{i}" for i in range(FEATURES)]
        lines = [",".join(head)] + [",".join([p, lab] + [f"{v:.5f}" for v in row])
                                    for p, lab, row in zip(pid, y, x)]
        path.write_text("\n".join(lines) + "\n")
        return path
    if fmt == "text":
        docs = {p: list(rng.choice(WORDS, 30)) for p in np.unique(pid)}
        path = folder / "cohort_text.jsonl"
        with path.open("w") as f:
            for p, lab in zip(pid, y):
                words = list(docs[p])
                words[rng.integers(30)] = str(rng.choice(WORDS))
                f.write(json.dumps({"patient": p, "label": lab, "text": " ".join(words)}) + "\n")
        return path
    if fmt == "sequence":
        seqs = {p: rng.choice(list("ACGT"), 40) for p in np.unique(pid)}
        path = folder / "cohort_seq.csv"
        lines = ["patient,label,sequence"]
        for p, lab in zip(pid, y):
            s = seqs[p].copy()
            s[rng.integers(40)] = rng.choice(list("ACGT"))
            lines.append(f"{p},{lab},{''.join(s)}")
        path.write_text("\n".join(lines) + "\n")
        return path
    raise ValueError(fmt)


# format -> the --format that reads it (None: detected)
FORMATS = {"tabular": "tabular", "signal": "signal-table", "text": "text",
           "sequence": "biosequence", "npz": "npz"}
