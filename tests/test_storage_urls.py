"""--storage as users mistype it: every refusal is one line naming the problem and the fix, and
the commands that only read neither create nor change a database (QA pass on storage URLs)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run_cli
from store_rows import add_search

from automed.storage import Store, resolve_url

READERS = [["studies"], ["leaderboard"], ["show", "s1"], ["db", "current"],
           ["report", "s1", "-o", "r.html"], ["export", "-o", "exp"]]


def _one_error_line(code, err: str) -> str:
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _db_with_a_search(path: Path) -> str:
    url = f"sqlite:///{path}"
    store = Store(url)
    add_search(store, "s1", candidates=[("cnn", "complete", 0.8, {"accuracy": 0.8}, None)])
    store.engine.dispose()
    return url


def _without_root_powers(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``automed ARGV`` in a fresh process that file permissions apply to, even as root."""
    cmd = [sys.executable, "-m", "automed.cli", *argv]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv: permissions cannot be taken away")
        drop = "-dac_override,-dac_read_search"
        cmd = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("AUTOMED_STORAGE", None)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture
def read_only(tmp_path):
    """chmod a-w on the paths given, undone afterwards (so tmp_path can be cleaned up)."""
    done: list[tuple[Path, int]] = []

    def make(path: Path) -> Path:
        done.append((path, path.stat().st_mode))
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return path

    yield make
    for path, mode in reversed(done):
        path.chmod(mode)


# 1. ~ in a SQLite URL ---------------------------------------------------------------------------
def test_tilde_in_a_sqlite_url_is_the_home_folder(tmp_path, monkeypatch, capsys):
    # QA: the existence check expanded ~ but SQLite opened a folder literally named "~".
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    _db_with_a_search(home / "h.db")
    monkeypatch.chdir(cwd)
    code, out, err = run_cli(monkeypatch, capsys, "studies", "--storage", "sqlite:///~/h.db")
    assert code in (0, None), err
    assert "s1" in out
    assert list(cwd.iterdir()) == []
    assert resolve_url("sqlite:///~/h.db") == f"sqlite:///{home / 'h.db'}"


def test_tilde_in_a_sqlite_url_creates_no_tilde_folder(tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage", "sqlite:///~/none.db")
    assert f"no study database at {home / 'none.db'}" in _one_error_line(code, err)
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []


# 2. a database this user cannot write ---------------------------------------------------------
def test_a_database_in_a_read_only_folder_can_be_read(tmp_path, read_only):
    folder = tmp_path / "ro"
    folder.mkdir()
    url = _db_with_a_search(folder / "f.db")
    before = _digest(folder / "f.db")
    read_only(folder)
    studies = _without_root_powers(["studies", "--storage", url], tmp_path)
    assert studies.returncode == 0, studies.stderr
    assert "s1" in studies.stdout
    current = _without_root_powers(["db", "current", "--storage", url], tmp_path)
    assert current.returncode == 0, current.stderr
    assert "up to date" in current.stdout
    assert [p.name for p in folder.iterdir()] == ["f.db"]
    assert _digest(folder / "f.db") == before


def test_a_search_into_a_read_only_file_is_refused_in_one_line(tmp_path, demo_image,
                                                               read_only):
    url = _db_with_a_search(tmp_path / "f.db")
    before = _digest(tmp_path / "f.db")
    read_only(tmp_path / "f.db")
    run = _without_root_powers(["search", str(demo_image), "--trials", "1", "--folds", "2",
                                "--max-epochs", "1", "--bootstrap", "0", "--study", "s1",
                                "--storage", url], tmp_path)
    assert run.returncode not in (0, None)
    assert "[SQL:" not in run.stderr + run.stdout
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "read-only" in errors[0], run.stderr
    assert _digest(tmp_path / "f.db") == before


# 3. an empty file -----------------------------------------------------------------------------
@pytest.mark.parametrize("args", READERS, ids=[" ".join(a[:2]) for a in READERS])
def test_reading_leaves_an_empty_file_empty(args, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, *args, "--storage", str(empty))
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    if args[0] == "db":  # it only reports the revision: there is none
        assert code in (0, None) and "(empty)" in out, err
    else:
        assert "is an empty file" in _one_error_line(code, err)


# 4. in-memory and two-slash SQLite URLs -------------------------------------------------------
@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage", url)
    line = _one_error_line(code, err)
    assert "in-memory" in line and "automed search DATA" not in line


def test_a_search_into_memory_is_refused_in_one_line(tmp_path, demo_image, monkeypatch,
                                                     capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "search", str(demo_image), "--trials", "1",
                           "--folds", "2", "--max-epochs", "1", "--bootstrap", "0",
                           "--storage", "sqlite://")
    assert "in-memory" in _one_error_line(code, err)


def test_a_sqlite_url_with_two_slashes_names_the_three_slash_form(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage", "sqlite://rel2.db")
    assert "sqlite:///rel2.db" in _one_error_line(code, err)
    assert list(tmp_path.iterdir()) == []


# 5. schemes and drivers -----------------------------------------------------------------------
def test_postgres_scheme_suggests_postgresql(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage",
                           "postgres://u:SECRET@127.0.0.1/db")
    line = _one_error_line(code, err)
    assert "postgresql://u:***@127.0.0.1/db" in line and "SECRET" not in line


@pytest.mark.parametrize("url", ["sqlit:///x.db", "http://x"])
def test_an_unknown_scheme_lists_the_accepted_ones(url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage", url)
    line = _one_error_line(code, err)
    assert "unknown scheme" in line
    for form in ("sqlite:///", "postgresql://", "mysql+pymysql://", "grpc://"):
        assert form in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url, module, works", [
    ("postgresql+psycopg2://u@127.0.0.1/db", "psycopg2", "postgresql+psycopg://u@127.0.0.1/db"),
    ("mysql://u@127.0.0.1/db", "MySQLdb", "mysql+pymysql://u@127.0.0.1/db"),
])
def test_a_missing_driver_names_the_url_the_extra_serves(url, module, works, tmp_path,
                                                         monkeypatch, capsys):
    # The extras install psycopg 3 and PyMySQL: installing them does not serve these URLs.
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage", url)
    assert works in _one_error_line(code, err)


# 6. "the server is running" only for servers --------------------------------------------------
@pytest.mark.parametrize("kind", ["folder", "not-a-database"])
def test_sqlite_errors_name_the_file_not_a_server(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if kind == "folder":
        storage, said = ".", "is a folder"
    else:
        (tmp_path / "notes.db").write_text("not a database\n")
        storage, said = "notes.db", "not a SQLite database"
    for argv in (["studies"], ["db", "current"]):
        code, _, err = run_cli(monkeypatch, capsys, *argv, "--storage", storage)
        line = _one_error_line(code, err)
        assert said in line and "server" not in line


def test_a_search_in_a_read_only_folder_names_the_folder(tmp_path, demo_image, read_only):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    read_only(cwd)
    run = _without_root_powers(["search", str(demo_image), "--trials", "1", "--folds", "2",
                                "--max-epochs", "1", "--bootstrap", "0"], cwd)
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert run.returncode not in (0, None) and len(errors) == 1, run.stderr
    assert "not writable" in errors[0] and "server" not in errors[0]
    assert list(cwd.iterdir()) == []


def test_a_server_error_still_says_the_server_must_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("psycopg")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage",
                           "postgresql+psycopg://u@127.0.0.1:1/db?connect_timeout=5")
    assert "the server is running" in _one_error_line(code, err)


# 7. db upgrade of a database that is not there -------------------------------------------------
def test_db_upgrade_refuses_a_missing_database(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "db", "upgrade", "--storage",
                           "sqlite:///nonexist.db")
    assert "no study database at nonexist.db" in _one_error_line(code, err)
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_leaves_an_empty_file_empty(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "db", "upgrade", "--storage", str(empty))
    _one_error_line(code, err)
    assert empty.stat().st_size == 0


def test_a_hand_edited_record_that_is_no_json_is_one_line(tmp_path, capsys, monkeypatch):
    # QA (hostile inputs): a search's config edited to '{not json' made every reading command
    # end in a JSONDecodeError traceback.
    import sqlite3

    from store_rows import add_search

    from automed.storage import Store

    db = tmp_path / "d.db"
    add_search(Store(f"sqlite:///{db}"), "s", candidates=[("cnn", "complete", 0.8, {}, None)])
    con = sqlite3.connect(db)
    con.execute("UPDATE automed_searches SET config = '{not json'")
    con.commit()
    con.close()
    for command in (["studies"], ["leaderboard", "--study", "s"], ["show", "s"]):
        code, _, err = run_cli(monkeypatch, capsys, *command, "--storage", f"sqlite:///{db}")
        assert code not in (0, None), command
        assert err.startswith(f"error: the study database sqlite:///{db} holds a damaged "
                              "record (not JSON: "), err
        assert len(err.splitlines()) == 1


def test_a_damaged_sqlite_file_is_one_line_that_names_it(tmp_path, capsys, monkeypatch):
    # QA: damaged pages ended a search in Optuna's "An exception is raised during the commit
    # ... exceeding max length", the real cause in the middle of a traceback
    import sqlite3

    from automed import cli as cli_module

    def malformed(*args, **kwargs):
        try:
            raise sqlite3.DatabaseError("database disk image is malformed")
        except sqlite3.DatabaseError as exc:
            raise RuntimeError("An exception is raised during the commit.") from exc

    monkeypatch.setattr(cli_module, "_list_plugins", malformed)  # any command's failure
    db = tmp_path / "d.db"
    code, _, err = run_cli(monkeypatch, capsys, "plugins", "list")
    assert code == 2
    assert err.startswith("error: ") and "is damaged (database disk image is malformed); " \
        "restore it from a backup" in err and len(err.splitlines()) == 1
    # either database may be the damaged one: both are named (review)
    import sys

    monkeypatch.setattr(sys, "argv", ["automed", "leaderboard", "--storage",
                                      f"sqlite:///{tmp_path / 'a.db'}", "--results-db",
                                      f"sqlite:///{tmp_path / 'r.db'}"])
    said = cli_module._damaged_database(RuntimeError("database disk image is malformed"))
    assert said.startswith(f"{tmp_path / 'a.db'} or {tmp_path / 'r.db'} is damaged"), said
    monkeypatch.setattr(sys, "argv", ["automed", "leaderboard",
                                      f"--storage=sqlite:///{tmp_path / 'a.db'}"])
    said = cli_module._damaged_database(RuntimeError("database disk image is malformed"))
    assert said.startswith(f"{tmp_path / 'a.db'} is damaged"), said
    # a record whose text is no UTF-8 is named as damage, not quoted whole
    from store_rows import add_search

    from automed.storage import Store

    add_search(Store(f"sqlite:///{db}"), "s", candidates=[("cnn", "complete", 0.8, {}, None)])
    con = sqlite3.connect(db)
    con.execute("UPDATE automed_searches SET config = CAST(x'7b22ff22' AS TEXT)")
    con.commit()
    con.close()
    code, _, err = run_cli(monkeypatch, capsys, "studies", "--storage", f"sqlite:///{db}")
    assert code not in (0, None) and f"{db} is damaged (Could not decode to UTF-8" in err, err
    assert len(err.splitlines()) == 1


def test_a_database_locked_by_another_process_is_said_after_one_wait(tmp_path, monkeypatch):
    # QA: a search on a database another program held locked waited 8 x 60 s in silence
    # (each insert retried as a race), then said "database error ...: database is locked"
    import sqlite3
    import time

    from store_rows import add_search

    from automed.errors import StorageError
    from automed.storage import Store, fleet, store

    db = tmp_path / "l.db"
    add_search(Store(f"sqlite:///{db}"), "s")
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(fleet, "LOCK_WAITED_S", 0.3)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        s = Store(f"sqlite:///{db}")
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"is locked: another process holds its write "
                                               r"lock \(SQLite waits up to 0.5 s"):
            add_search(s, "t", dataset="ecg")
        assert time.monotonic() - started < 3  # one wait, not eight
    finally:
        holder.execute("ROLLBACK")
        holder.close()
