"""The optional Hugging Face family: offline search -> saved model -> predict, and its errors.

No download: a tiny randomly initialised BERT (hidden 32, 2 layers, 2 heads) and a WordPiece
tokenizer on a 30-word vocabulary are written into a temporary folder, which the family loads
as a local model. Skipped where ``transformers`` is not installed (``pip install automed[hf]``).
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
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (pip install 'automed[hf]')")

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("patient presents with fever cough chest pain heart lung kidney liver acute chronic "
         "severe mild no history of infection failure normal scan shows left right the and "
         "was").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _tokenizer(folder: Path):
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    if int(transformers.__version__.split(".")[0]) >= 5:
        return transformers.BertTokenizer(vocab=vocab)
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(path))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = _tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(SPECIALS) + len(WORDS), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _notes(path: Path, n: int = 24) -> Path:
    """Heart notes against lung notes, with a little shared filler and an unknown word."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = "cardiac" if i % 2 else "pulmonary"
        topic = ["heart", "chest", "pain"] if label == "cardiac" else ["lung", "cough", "fever"]
        words = list(rng.choice(topic, 4)) + list(rng.choice(["the", "patient", "was", "mild",
                                                             "zzzunknown"], 3))
        rows.append((i, " ".join(rng.permutation(words)), label))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "note", "diagnosis"])
        w.writerows(rows)
    return path


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMED_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **extra)
    return env


def test_tokens_are_the_models_own_and_roundtrip_through_state(tiny_bert, tmp_path,
                                                               monkeypatch):
    from automed.data.loaders import load_data
    from automed.plugins.hf import HFEncoder, HFTokens

    monkeypatch.setenv("AUTOMED_HF_MODEL", str(tiny_bert))
    data = load_data(_notes(tmp_path / "notes.csv")).train
    pre = HFEncoder().preprocessor("text")
    assert pre.key == f"hf:{tiny_bert}"
    spec = pre.spec(data)
    # 7 words + [CLS] + [SEP] = 9 tokens, rounded up to a multiple of 8.
    assert spec.input_shape == (16,) and spec.extra["hf_model"] == str(tiny_bert)
    assert spec.vocab_size == len(SPECIALS) + len(WORDS) and spec.extra["pad_id"] == 0
    ids = pre.fit(data).transform(["Heart pain zzzunknown", "lung"])
    cls, sep, unk = 2, 3, 1
    heart, pain = 5 + WORDS.index("heart"), 5 + WORDS.index("pain")
    assert ids.tolist() == [[cls, heart, pain, unk, sep] + [0] * 11,
                            [cls, 5 + WORDS.index("lung"), sep] + [0] * 13]
    # AUTOMED_HF_MAX_LENGTH caps the length; a long text keeps its head and its [SEP].
    monkeypatch.setenv("AUTOMED_HF_MAX_LENGTH", "8")
    capped = HFEncoder().preprocessor("text")
    fresh = load_data(tmp_path / "notes.csv").train
    assert capped.spec(fresh).input_shape == (8,)
    assert capped.fit(fresh).transform(["heart " * 20]).tolist() == [[cls] + [heart] * 6 + [sep]]
    again = HFTokens.from_state(json.loads(json.dumps(pre.state())))
    assert torch.equal(again.transform(list(data.x)), pre.transform(list(data.x)))


def test_search_saves_a_model_that_predicts_in_a_fresh_process(tiny_bert, tmp_path,
                                                               monkeypatch):
    from automed.searching.runner import search
    from automed.searching.training import predict_proba

    monkeypatch.setenv("AUTOMED_HF_MODEL", str(tiny_bert))
    data = _notes(tmp_path / "notes.csv")
    result = search(data, architectures=["hf"], folds=2, trials=2, max_epochs=1,
                    storage=f"sqlite:///{tmp_path / 'study.db'}", device="cpu",
                    artifacts=tmp_path / "models", ensemble=False, refit_full=True)
    rows = [r for r in result.leaderboard if r["state"] == "complete"]
    assert rows and {r["architecture"] for r in result.leaderboard} == {"hf"}
    assert result.spec.extra["hf_model"] == str(tiny_bert)  # the spec of the refit model
    config = json.loads((Path(result.artifact) / "automed_model.json").read_text())
    assert config["architecture"] == "hf" and config["spec"]["extra"]["hf_model"] == str(tiny_bert)
    assert config["preprocessor"]["state"]["tokenizer"]  # the tokenizer travels with the model
    notes = [r["note"] for r in csv.DictReader(data.open())]
    expected = predict_proba(result.model, result.preprocessor.transform(notes))
    # Predicting goes 64 texts at a time; one pass over all 72 gives the same logits.
    ids = result.preprocessor.transform(notes * 3)
    result.model.eval()
    with torch.no_grad():
        chunked = result.model(ids)
    with torch.enable_grad():
        whole = result.model(ids).detach()
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)

    # A fresh process, without the model folder or AUTOMED_HF_MODEL: the artifact suffices.
    moved = tiny_bert.with_name(tiny_bert.name + "-gone")
    tiny_bert.rename(moved)
    try:
        out = tmp_path / "pred.csv"
        run = subprocess.run([sys.executable, "-m", "automed.cli", "predict", "--model",
                              result.artifact, str(data), "--output", str(out)],
                             capture_output=True, text=True, env=_env(), cwd=tmp_path,
                             timeout=300)
    finally:
        moved.rename(tiny_bert)
    assert run.returncode == 0, run.stderr
    with out.open() as f:
        got = [[float(r["p_cardiac"]), float(r["p_pulmonary"])] for r in csv.DictReader(f)]
    np.testing.assert_allclose(np.array(got), expected, atol=2e-6)


def test_default_text_search_does_not_include_hf():
    from automed.plugin_manager import get_plugin_manager

    pm = get_plugin_manager()
    assert "hf" not in pm.architectures_for("text")
    assert "hf" in pm.architectures_for("text", ["hf"])  # loaded when named
    assert "hf" not in pm.architectures_for("text")  # ... and searched only when named


def test_missing_model_is_one_line_and_a_nonzero_exit(tmp_path):
    data = _notes(tmp_path / "notes.csv")
    missing = tmp_path / "no-such-model"
    run = subprocess.run(
        [sys.executable, "-m", "automed.cli", "search", str(data), "--arch", "hf",
         "--trials", "1", "--folds", "2", "--storage", f"sqlite:///{tmp_path / 's.db'}"],
        capture_output=True, text=True, env=_env(AUTOMED_HF_MODEL=str(missing)), cwd=tmp_path,
        timeout=300)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"hf model folder {str(missing)!r} does not exist" in errors[0]
    assert "local folder" in errors[0] and "hf download" in errors[0]


def test_a_model_not_in_the_cache_or_without_weights_names_the_fix(tiny_bert, tmp_path):
    from automed.data.dataset import Dataset
    from automed.errors import ConfigError
    from automed.plugins.hf import HFEncoder

    data = Dataset(np.array(["heart pain"], dtype=object), np.array([0]), ["a"], "text", "x")
    hub = "automed-tests/no-such-model"
    with pytest.raises(ConfigError, match=f"hf model '{hub}': no tokenizer in the Hugging Face "
                       f"cache.*offline only; download it once with `hf download {hub}`"):
        HFEncoder(model=hub).preprocessor("text").spec(data)
    bare = tmp_path / "no-weights"
    bare.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (bare / name).write_bytes((tiny_bert / name).read_bytes())
    with pytest.raises(ConfigError, match="has no usable weights") as info:
        HFEncoder(model=str(bare)).preprocessor("text").spec(data)
    assert "\n" not in str(info.value)


def test_without_transformers_the_family_says_how_to_install(monkeypatch, tmp_path):
    from automed.data.dataset import Dataset
    from automed.errors import ConfigError
    from automed.plugins import hf

    data = Dataset(np.array(["heart pain"], dtype=object), np.array([0]), ["a"], "text", "x")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    with pytest.raises(ConfigError, match=r'pip install "automed\[hf\]"'):
        hf.HFEncoder(model=str(tmp_path)).preprocessor("text").spec(data)


def test_the_family_passes_the_conformance_suite_on_its_own_spec(tiny_bert):
    from automed.plugins.hf import HFEncoder
    from automed.testing import check_architecture, own_specs

    arch = HFEncoder(model=str(tiny_bert))
    spec = own_specs(arch, "text")[0]
    assert spec.extra["hf_model"] == str(tiny_bert) and spec.n_classes == 3
    failures = check_architecture(arch, n_samples=2)
    assert not failures, "\n".join(map(str, failures))
    missing = check_architecture(HFEncoder(model=str(tiny_bert) + "-missing"))
    assert [(f.check, "does not exist" in f.message) for f in missing] == [
        ("preprocessor", True)]



def test_a_study_keeps_its_model_on_resume(tiny_bert, tmp_path, monkeypatch):
    import shutil

    from automed.errors import ConfigError
    from automed.searching.runner import search

    data = _notes(tmp_path / "notes.csv")
    other = tmp_path / "other-bert"
    shutil.copytree(tiny_bert, other)
    kwargs = dict(architectures=["hf"], folds=2, trials=1, max_epochs=1, study="notes",
                  storage=f"sqlite:///{tmp_path / 'study.db'}", device="cpu", refit=False)
    monkeypatch.setenv("AUTOMED_HF_MODEL", str(tiny_bert))
    search(data, **kwargs)
    monkeypatch.setenv("AUTOMED_HF_MODEL", str(other))
    with pytest.raises(ConfigError, match=f"searched hf with preprocessing hf:{tiny_bert}, "
                       f"this run with hf:{other}"):
        search(data, **{**kwargs, "trials": 2})
    monkeypatch.setenv("AUTOMED_HF_MODEL", str(tiny_bert))
    assert search(data, **{**kwargs, "trials": 2}).resumed  # the same model: it resumes
