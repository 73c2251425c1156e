"""The CLI starts fast: reading commands never import torch or scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import pytest

from automed.storage import Store
from tests.store_rows import add_search

HEAVY = ("torch", "sklearn")


def _imported(args: list[str], cwd) -> set[str]:
    """Top-level packages a CLI run imported (from -X importtime), and its exit code."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "automed.cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_import_automed_cli_imports_no_torch_or_sklearn():
    code = ("import sys, automed, automed.cli; "
            "print(sorted(set(sys.modules) & {'torch', 'sklearn'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("args", [["--help"], ["leaderboard"], ["studies"], ["show", "s"]])
def test_reading_commands_import_no_torch_or_sklearn(args, tmp_path):
    db = tmp_path / "a.db"
    store = Store(f"sqlite:///{db}")
    add_search(store, "s", candidates=[("cnn", "complete", 0.5 + i / 1000, {"accuracy": 0.5},
                                        None) for i in range(100)])
    imported = _imported(args, tmp_path)  # default storage: automed.db in cwd -> use env
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.fixture(autouse=True)
def _storage_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMED_STORAGE", f"sqlite:///{tmp_path / 'a.db'}")


def test_python_dash_m_automed_is_the_command_line():
    # QA (packaging): `python -m automed` said "No module named automed.__main__", and
    # `python -m automed.cli --version` named itself "python -m automed.cli"
    for module in ("automed", "automed.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("automed, version ")
