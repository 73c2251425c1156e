"""Each CLI command, through the real entry point (exit codes and one-line errors included)."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest


def automed(*args: str, cwd=None, env_storage: str | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("AUTOMED_STORAGE", None)
    if env_storage:
        env["AUTOMED_STORAGE"] = env_storage
    return subprocess.run([sys.executable, "-m", "automed.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One real search from the CLI, shared by the read-only command tests."""
    work = tmp_path_factory.mktemp("cli")
    data = automed("demo", "-o", str(work / "demo.npz"), "-n", "80", cwd=work)
    assert data.returncode == 0, data.stderr
    run = automed("search", "demo.npz", "--trials", "3", "--folds", "2", "--max-epochs", "2",
                  cwd=work)
    return work, run


def test_search_prints_progress_leaderboard_and_test_score(searched):
    work, run = searched
    assert run.returncode == 0, run.stderr
    assert "searching study 'demo.npz-accuracy-cv2' in sqlite:///automed.db" in run.stderr
    assert run.stderr.count("cnn") >= 3  # a progress line per candidate
    assert "leaderboard of 'demo.npz-accuracy-cv2'" in run.stdout
    assert "accuracy (mean ± std)" in run.stdout
    assert "test (16 samples): accuracy" in run.stdout
    assert (work / "automed.db").exists()  # the SQLite default, in the working directory


def test_leaderboard_reads_the_default_database(searched):
    work, _ = searched
    out = automed("leaderboard", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "study 'demo.npz-accuracy-cv2'" in out.stdout and "\nanswer " in out.stdout
    rows = json.loads(automed("leaderboard", "--json", "--all", cwd=work).stdout)
    candidates = [r for r in rows if r["state"] != "ensemble"]
    assert len(candidates) == 3
    assert {r["state"] for r in candidates} <= {"complete", "pruned", "collapsed", "failed"}
    # a greedy ensemble, when it beat the best single candidate, is one more row: trial -1
    assert [r["trial"] for r in rows if r["state"] == "ensemble"] in ([], [-1])
    top = json.loads(automed("leaderboard", "--json", "--top", "1", cwd=work).stdout)
    assert len(top) == 1 and top[0]["rank"] == 1


def test_optuna_cli_lists_the_study(searched):
    work, _ = searched
    storage = f"sqlite:///{work / 'automed.db'}"
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [
        "demo.npz-accuracy-cv2"]


def test_plugins_lists_builtins(tmp_path):
    out = automed("plugins", "--all", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "architecture cnn: image, signal" in out.stdout
    assert "loader npz" in out.stdout
    data = json.loads(automed("plugins", "--all", "--json", cwd=tmp_path).stdout)
    cnn = next(p for p in data if p["name"] == "cnn")
    assert cnn["builtin"] and cnn["hooks"] == ["register_architectures"]
    assert [(a["name"], a["modalities"]) for a in cnn["architectures"]] == [
        ("cnn", ["image", "signal"])]
    # QA: the optional built-in hf (imported only when a search names it) was not listed
    assert "hf (built-in, optional): automed.plugins.hf" in out.stdout
    hf = next(p for p in data if p["name"] == "hf")
    assert hf["optional"] and hf["builtin"] and "--arch hf" in hf["note"]
    assert "hf (built-in" not in automed("plugins", cwd=tmp_path).stdout  # third-party only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "nope.npz"], "nope.npz: no such file or folder"),
        (["search", "{demo}", "--metric", "recal"], "unknown metric 'recal'"),
        (["search", "{demo}", "--arch", "resnet"],
         "unknown architecture resnet; available: attention, biosequence, cnn"),
        (["search", "{demo}", "--folds", "50"], "fewer than the 50 folds"),
        (["search", "{demo}", "--storage", "postgresql://u:pw@127.0.0.1:1/x"],
         "cannot open the study database postgresql://u:***@127.0.0.1:1/x"),
        (["search", "{text}"], "unknown data format '.xyz'"),
        (["leaderboard", "--study", "missing"], "no study 'missing'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, demo_image, args, message):
    (tmp_path / "notes.xyz").write_text("hello")
    args = [a.format(demo=demo_image, text=tmp_path / "notes.xyz") for a in args]
    if args[0] == "leaderboard":
        automed("search", str(demo_image), "--trials", "1", "--folds", "2", "--max-epochs", "1",
                cwd=tmp_path)
    out = automed(*args, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "pw" not in out.stderr


def test_help_reads_well(tmp_path):
    out = automed("search", "--help", cwd=tmp_path)
    assert out.returncode == 0
    for option in ("--metric", "--folds", "--trials", "--timeout", "--storage", "--test"):
        assert option in out.stdout


def test_the_timing_line_says_where_the_time_past_the_limit_went():
    from automed.cli import format_timing

    answer = format_timing({"timeout": 300, "search_s": 290, "answer_s": 20, "total_s": 310})
    assert answer.endswith("(--timeout 300 s; 10 s over it, spent on the answer)")
    # round 10: the PneumoniaMNIST start trained 948 s of a 900 s search
    search = format_timing({"timeout": 900, "search_s": 950, "answer_s": 4, "total_s": 954})
    assert "54 s over it, spent on the search: a candidate stops at the end of its epoch, " \
           "the first one not at all" in search
    assert format_timing({"timeout": 300, "search_s": 200, "total_s": 210}).endswith(
        "(within --timeout 300 s)")


def test_the_answer_line_of_an_ensemble_says_each_member_is_a_bag(capsys):
    # QA: "answering with the ensemble of #1, #2, #3: the 2 models of its cross-validation"
    from automed.cli import _Progress

    show = _Progress(quiet=False)
    show({"event": "answer", "trial": 1, "members": [1, 2, 3], "folds": 2, "test": True})
    show({"event": "answer", "trial": 4, "members": [4], "folds": 2, "test": False})
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "answering with the ensemble of #1, #2, #3: each member the 2 models of its "
        "cross-validation, blended by the ensemble's weights (no refit); scoring it on the "
        "test set",
        "answering with #4: the 2 models of its cross-validation, averaged (no refit); no test "
        "set given"]


def test_a_candidate_line_of_one_fold_shows_no_spread(capsys):
    from automed.cli import _Progress

    show = _Progress(quiet=False)
    show({"event": "candidate", "trial": 1, "architecture": "cnn", "state": "pruned",
          "score_mean": 0.8875, "score_std": 0.0, "folds_done": 1, "folds": 3,
          "duration_s": 2.8, "error": "CV mean below the completed candidates' after fold 1"})
    assert "0.8875 ± -" in capsys.readouterr().err


@pytest.mark.parametrize("merge_stderr", [True, False])
def test_a_reader_that_leaves_early_does_not_fail_the_search(demo_signal, tmp_path,
                                                             merge_stderr):
    # QA: `automed search ... 2>&1 | head -4` marked the study failed (BrokenPipeError) at the
    # first progress line after head left; `| head -1` printed a traceback at the end.
    import os

    from automed.storage import Store

    url = f"sqlite:///{tmp_path / 'p.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "automed.cli", "search", str(demo_signal), "--trials", "3",
         "--folds", "2", "--max-epochs", "1", "--bootstrap", "0", "--storage", url,
         "--study", "p", "--arch", "mlp", "--no-prune"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        env=dict(os.environ, OMP_NUM_THREADS="1"))
    reader = proc.stdout if merge_stderr else proc.stderr
    assert reader.readline()  # the first line, then the reader leaves
    reader.close()
    if not merge_stderr:
        proc.stdout.close()
    assert proc.wait(timeout=240) in (0, 1)  # 1: click's exit when stdout's reader left
    info = Store(url).search("p")
    assert info["status"] == "complete", info["status"]
    assert len(Store(url).candidates("p")) == 3


def test_predicting_a_big_file_is_said_before_it_is_read(searched, monkeypatch, capsys):
    # QA (scale): 200,000 rows were predicted for 41 s without a word
    from clirun import run_cli

    from automed import cli as cli_module

    work, _ = searched
    monkeypatch.chdir(work)
    monkeypatch.setattr(cli_module, "BIG_FILE", 0)
    code, _, err = run_cli(monkeypatch, capsys, "predict", "demo.npz", "-o", "p.csv")
    assert code in (0, None), err
    assert err.startswith("reading demo.npz (0 MB) and predicting ...\n")
