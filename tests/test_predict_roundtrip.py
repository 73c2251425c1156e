"""search -> export -> predict, for every loader format, on labeled and unlabeled files.

Each format gets a tiny search here (one candidate, one epoch); a fresh Python process then
exports each answer (its fold models; one format also refit, --refit-full) and predicts with
it, through the real CLI, on the training file and on a file of the same samples without
labels. Every probability must equal the answer's own prediction in this process, and the
test probabilities the search scored.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automed.data.loaders import load_data
from automed.demo import make_demo
from automed.plugin_manager import get_plugin_manager
from automed.searching.runner import search
from automed.searching.training import predict_proba
from automed.storage import Store

RNG_SEED = 7
N = 24  # samples per file: 12 per class


def _labels(n: int = N) -> list[str]:
    return ["neg" if i % 2 else "pos" for i in range(n)]


def _image_folder(root: Path) -> tuple[Path, Path, dict]:
    rng = np.random.default_rng(RNG_SEED)
    train, flat = root / "images", root / "images_unlabeled"
    for i, label in enumerate(_labels()):
        pixels = rng.integers(0, 120 if label == "neg" else 255, (8, 8), dtype=np.uint8)
        (train / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(train / label / f"{i:03d}.png")
    # The unlabeled folder holds the same images in the order the loader reads them.
    flat.mkdir()
    k = 0
    for label in sorted(set(_labels())):
        for f in sorted((train / label).iterdir()):
            (flat / f"{k:03d}.png").write_bytes(f.read_bytes())
            k += 1
    return train, flat, {"modality": "image", "architectures": ["cnn"]}


def _npz(root: Path, kind: str) -> tuple[Path, Path, dict]:
    path = make_demo(kind, root / f"demo_{kind}.npz", n=40, seed=1)
    with np.load(path) as a:
        x = np.concatenate([a["train_images"], a["val_images"]])
    unlabeled = root / f"demo_{kind}_x.npz"
    np.savez(unlabeled, x=x)
    return path, unlabeled, {"architectures": ["cnn"]}


def _signal_table(root: Path) -> tuple[Path, Path, dict]:
    rng = np.random.default_rng(RNG_SEED)
    rows, bare = [], []
    for label in _labels():
        values = rng.normal(1.0 if label == "pos" else 0.0, 1.0, 16)
        text = " ".join(f"{v:.5f}" for v in values)
        rows.append(f"{1 if label == 'pos' else 2} {text}")
        bare.append(text)
    train, unlabeled = root / "ecg.txt", root / "ecg_unlabeled.txt"
    train.write_text("\n".join(rows) + "\n")
    unlabeled.write_text("\n".join(bare) + "\n")
    return train, unlabeled, {"architectures": ["cnn"]}


WORDS = {"pos": "fever cough infiltrate pneumonia opacity".split(),
         "neg": "fracture femur cast bone splint".split()}


def _texts() -> list[str]:
    rng = np.random.default_rng(RNG_SEED)
    return [" ".join(rng.choice(WORDS[label], 6)) for label in _labels()]


def _text_jsonl(root: Path) -> tuple[Path, Path, dict]:
    train, unlabeled = root / "notes.jsonl", root / "notes_unlabeled.jsonl"
    texts = _texts()
    train.write_text("".join(json.dumps({"text": t, "label": y}) + "\n"
                             for t, y in zip(texts, _labels())))
    unlabeled.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return train, unlabeled, {"architectures": ["mlp"]}


def _text_csv(root: Path) -> tuple[Path, Path, dict]:
    train, unlabeled = root / "notes.csv", root / "notes_unlabeled.csv"
    texts = _texts()
    train.write_text("id,note,diagnosis\n" + "".join(
        f"{i},{t},{y}\n" for i, (t, y) in enumerate(zip(texts, _labels()))))
    unlabeled.write_text("id,note\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts)))
    return train, unlabeled, {"architectures": ["mlp"]}


def _sequences() -> list[str]:
    rng = np.random.default_rng(RNG_SEED)
    out = []
    for label in _labels():
        seq = "".join(rng.choice(list("ACGT"), 20))
        out.append(seq[:8] + ("GGTAAG" if label == "pos" else "CCATTC") + seq[14:])
    return out


def _fasta(root: Path) -> tuple[Path, Path, dict]:
    train, unlabeled = root / "seqs.fasta", root / "seqs_unlabeled.fasta"
    seqs = _sequences()
    train.write_text("".join(f">s{i} {y}\n{s}\n" for i, (s, y) in
                             enumerate(zip(seqs, _labels()))))
    unlabeled.write_text("".join(f">s{i}\n{s[:10]}\n{s[10:]}\n" for i, s in enumerate(seqs)))
    return train, unlabeled, {"architectures": ["biosequence"]}


def _sequence_csv(root: Path) -> tuple[Path, Path, dict]:
    train, unlabeled = root / "seqs.csv", root / "seqs_unlabeled.csv"
    seqs = _sequences()
    train.write_text("sequence,class\n" + "".join(f"{s},{y}\n" for s, y in
                                                  zip(seqs, _labels())))
    unlabeled.write_text("name,sequence\n" + "".join(f"s{i},{s}\n" for i, s in enumerate(seqs)))
    return train, unlabeled, {"architectures": ["biosequence"]}


def _uci(root: Path) -> tuple[Path, Path, dict]:
    train, unlabeled = root / "splice.data", root / "splice_unlabeled.fasta"
    seqs = _sequences()
    train.write_text("".join(f"{y},  S{i},  {s}\n" for i, (s, y) in
                             enumerate(zip(seqs, _labels()))))
    unlabeled.write_text("".join(f">S{i}\n{s}\n" for i, s in enumerate(seqs)))
    return train, unlabeled, {"architectures": ["biosequence"]}


def _tabular(root: Path) -> tuple[Path, Path, dict]:
    rng = np.random.default_rng(RNG_SEED)
    train, unlabeled = root / "visits.csv", root / "visits_unlabeled.csv"
    lines, bare = ["age,sex,smoker,label"], ["smoker,record,sex,age"]  # other order, an extra
    for i, label in enumerate(_labels()):
        age = 60 + 10 * (label == "pos") + int(rng.integers(-5, 5))
        sex = "F" if rng.random() < 0.5 else "M"
        smoker = ("yes" if label == "pos" else "no") if i % 5 else "NA"
        lines.append(f"{age},{sex},{smoker},{label}")
        bare.append(f"{smoker},r{i},{sex},{age}")
    train.write_text("\n".join(lines) + "\n")
    unlabeled.write_text("\n".join(bare) + "\n")
    return train, unlabeled, {"architectures": ["mlp"]}


FORMATS = {
    "npz-image": lambda root: _npz(root, "image"),
    "npz-signal": lambda root: _npz(root, "signal"),
    "image-folder": _image_folder,
    "signal-table": _signal_table,
    # Fixed random kernels and data-fitted biases are buffers: they must survive the export.
    "signal-rocket": lambda root: (*_signal_table(root)[:2], {"architectures": ["rocket"]}),
    # The answer refit on all training data (a seed bag) rather than its fold models.
    "signal-refit-full": lambda root: (*_signal_table(root)[:2],
                                       {"architectures": ["cnn"], "refit_full": True}),
    "text-jsonl": _text_jsonl,
    "text-csv": _text_csv,
    "fasta": _fasta,
    "sequence-csv": _sequence_csv,
    "uci-splice": _uci,
    "tabular": _tabular,
}

DRIVER = """
import json, sys
from automed.cli import cli
for args in json.loads(sys.argv[1]):
    cli.main(args, standalone_mode=False)
"""


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory):
    """Search every format here; export and predict them all in one fresh process."""
    root = tmp_path_factory.mktemp("roundtrip")
    storage = f"sqlite:///{root / 'studies.db'}"
    expected, commands, outputs = {}, [], {}
    for name, make in FORMATS.items():
        folder = root / name
        folder.mkdir()
        train, unlabeled, opts = make(folder)
        archs = opts.pop("architectures")
        refit_full = opts.pop("refit_full", False)
        result = search(train, trials=1, folds=2, max_epochs=1, storage=storage, study=name,
                        architectures=archs, bootstrap=0, seed=0, refit_full=refit_full, **opts)
        assert result.artifact, name
        assert (result.model is not None) == refit_full, name  # fold models: nothing refit
        loaded = load_data(train, **opts)
        parts = {"train": loaded.train}
        if loaded.test is not None:
            parts["test"] = loaded.test
        expected[name] = {split: result.predict_proba(d.x) for split, d in parts.items()}
        if refit_full:  # the in-memory refit model, not the saved one, gives the same
            bf16 = get_plugin_manager().architectures()[archs[0]].cpu_bf16
            np.testing.assert_allclose(expected[name]["train"], predict_proba(
                result.model, result.preprocessor.transform(loaded.train.x), cpu_bf16=bf16),
                atol=2e-6)
        if loaded.test is not None:  # what the search scored is what the saved model says
            scored = Store(storage).test_predictions(name)["proba"]
            np.testing.assert_allclose(expected[name]["test"], scored, atol=2e-6)
        model_dir = folder / "exported"
        labeled, bare = folder / "pred_labeled.csv", folder / "pred_unlabeled.csv"
        commands += [["export", "--study", name, "-o", str(model_dir), "--storage", storage],
                     ["predict", str(train), "--model", str(model_dir), "-o", str(labeled)],
                     ["predict", str(unlabeled), "--model", str(model_dir), "-o", str(bare)]]
        outputs[name] = (labeled, bare, [str(c) for c in loaded.train.classes],
                         list(loaded.train.y) + ([] if loaded.test is None
                                                 else list(loaded.test.y)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return expected, outputs


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", list(FORMATS))
def test_predict_reproduces_the_answer(roundtrip, name):
    expected, outputs = roundtrip
    labeled, bare, classes, y = outputs[name]
    want = {split: np.asarray(p) for split, p in expected[name].items()}
    rows = _read(labeled)
    columns = [f"p_{c}" for c in classes]
    for split, proba in want.items():
        got = np.array([[float(r[c]) for c in columns] for r in rows if r["split"] == split])
        assert got.shape == proba.shape, (name, split)
        np.testing.assert_allclose(got, proba, atol=2e-6)
    # The labeled file's labels come through, in loading order.
    assert [r["label"] for r in rows] == [classes[i] for i in y]
    # The same samples without labels: the same probabilities, no labels.
    unlabeled = _read(bare)
    all_proba = np.concatenate([want[s] for s in ("train", "test") if s in want])
    got = np.array([[float(r[c]) for c in columns] for r in unlabeled])
    n_train = len(want["train"])
    if name.startswith("npz"):  # the unlabeled npz holds the training samples only
        all_proba = all_proba[:n_train]
    assert got.shape == all_proba.shape
    np.testing.assert_allclose(got, all_proba, atol=2e-6)
    assert {r["label"] for r in unlabeled} == {""}
    # the predicted class has the highest probability (ties at the CSV's 6 decimals allowed)
    assert all(r["predicted"] in {classes[i] for i in np.flatnonzero(p >= p.max() - 2e-6)}
               for r, p in zip(unlabeled, got))
