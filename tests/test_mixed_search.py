"""One search tries every family that accepts the modality; the leaderboard shows each family's
best and how far it trails the winner. Tiny generated data, so each search takes seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from automed.cli import cli
from automed.plugin_manager import get_plugin_manager, reset_plugin_manager
from automed.searching.runner import search
from automed.storage import Store

# The quick defaults below train 2 epochs, below the searched range; Optuna warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Fixed parameter:UserWarning")


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    """Fresh plugins whose known-good defaults train for 2 epochs: the search is what is
    tested here, not how well a family learns."""
    reset_plugin_manager()
    for arch in get_plugin_manager().architectures().values():
        original = arch.default_params

        def quick(spec, _original=original):
            params = _original(spec)
            return None if params is None else {**params, "epochs": 2}

        monkeypatch.setattr(arch, "default_params", quick)
    yield
    reset_plugin_manager()


def _text(path, n=40):
    rng = np.random.default_rng(0)
    words = {0: ["fever", "cough", "chest"], 1: ["rash", "itch", "skin"]}
    with open(path, "w") as f:
        for i in range(n):
            y = i % 2
            text = " ".join(rng.choice(words[y] + ["the", "patient"], 6))
            f.write(json.dumps({"text": text, "label": f"c{y}"}) + "\n")


def _fasta(path, n=40):
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for i in range(n):
            seq = "".join(rng.choice(list("ACGT"), 24))
            if i % 2:
                seq = seq[:10] + "GGTAAG" + seq[16:]
            f.write(f">s{i} {'donor' if i % 2 else 'none'}\n{seq}\n")


def _table(path, n=40):
    rng = np.random.default_rng(0)
    lines = ["age,sex,bp,outcome"]
    for i in range(n):
        y = i % 2
        bp = "" if i % 7 == 0 else f"{120 + 20 * y + rng.normal(0, 5):.0f}"
        lines.append(f"{50 + rng.integers(0, 20)},{'MF'[i % 2 ^ (i % 3 == 0)]},{bp},{y}")
    path.write_text("\n".join(lines) + "\n")


def _signal(path, n=40):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        y = i % 2
        s = np.sin(np.linspace(0, (2 + y) * np.pi, 32)) + rng.normal(0, 0.1, 32)
        rows.append(f"{y} " + " ".join(f"{v:.4f}" for v in s))
    path.write_text("\n".join(rows) + "\n")


MAKERS = {"text": (_text, "t.jsonl"), "biosequence": (_fasta, "s.fasta"),
          "tabular": (_table, "c.csv"), "signal": (_signal, "e.txt")}


@pytest.mark.parametrize("modality", sorted(MAKERS))
def test_mixed_family_search(tmp_path, modality):
    make, name = MAKERS[modality]
    make(tmp_path / name)
    families = sorted(get_plugin_manager().architectures_for(modality))
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    result = search(tmp_path / name, folds=2, trials=len(families), storage=storage,
                            refit=False, prune=False)
    rows = Store(storage).leaderboard(result.study, best_per_family=True)
    assert sorted(r["architecture"] for r in rows) == families  # every family was tried
    assert rows[0]["gap_to_best"] == 0.0 and all(r["gap_to_best"] >= 0 for r in rows)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))


def test_cli_leaderboard_per_family(tmp_path):
    _signal(tmp_path / "e.txt")
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    search(tmp_path / "e.txt", folds=2, trials=2, storage=storage, refit=False,
                   architectures=["mlp", "cnn"], prune=False)
    out = CliRunner().invoke(cli, ["leaderboard", "--per-family", "--storage", storage])
    assert out.exit_code == 0, out.output
    assert "behind best" in out.output
    lines = [ln for ln in out.output.splitlines() if ln.split()[:1] in (["1"], ["2"])]
    assert len(lines) == 2 and {ln.split()[2] for ln in lines} == {"mlp", "cnn"}
