"""One tiny real search: its database stays an Optuna storage, and it reports end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from automed.cli import cli  # noqa: E402
from automed.demo import make_demo  # noqa: E402
from automed.searching.runner import search  # noqa: E402


def _optuna_cli(*args: str) -> subprocess.CompletedProcess:
    # The installed `optuna` command when it is on PATH, else the same entry point.
    exe = shutil.which("optuna")
    cmd = [exe] if exe else [sys.executable, "-c", "import sys; from optuna.cli import main; "
                                                   "sys.exit(main())"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_search_then_optuna_cli_show_and_report(tmp_path):
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    data = make_demo("image", tmp_path / "demo.npz", n=60)
    result = search(data, trials=2, folds=2, storage=url, study="e2e", device="cpu")
    assert result.test_scores is not None

    listed = _optuna_cli("studies", "--storage", url, "-f", "json")
    assert listed.returncode == 0, listed.stderr
    studies = {s["name"]: s for s in json.loads(listed.stdout)}
    assert studies["e2e"]["n_trials"] == 2 and studies["e2e"]["direction"] == ["MAXIMIZE"]

    shown = CliRunner().invoke(cli, ["show", "e2e", str(result.best["trial"]),
                                     "--storage", url])
    assert shown.exit_code == 0 and "per fold: " in shown.output and "on cpu" in shown.output

    out = tmp_path / "e2e.html"
    made = CliRunner().invoke(cli, ["report", "e2e", "-o", str(out), "--storage", url])
    assert made.exit_code == 0, made.output
    html = out.read_text()
    assert "Confusion matrix" in html and "ROC curve" in html and "Precision-recall" in html
