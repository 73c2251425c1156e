"""Workers sharing one machine divide its cores instead of each taking all of them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from automed.searching.devices import CoreShare


@pytest.fixture
def sleepers():
    procs = []

    def start(n: int) -> list[int]:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return [p.pid for p in procs[-n:]]

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_cores_are_divided_among_live_workers(tmp_path, sleepers):
    before = torch.get_num_threads()
    try:
        for pid in sleepers(3):  # three other workers on this machine
            (tmp_path / str(pid)).touch()
        with CoreShare(cores=8, directory=tmp_path) as share:
            assert share.live() == 4
            assert share.threads() == 2
            assert torch.get_num_threads() == 2
        assert not (tmp_path / str(__import__("os").getpid())).exists()  # unregistered on exit
    finally:
        torch.set_num_threads(before)


def test_a_dead_worker_stops_counting(tmp_path, sleepers):
    before = torch.get_num_threads()
    try:
        pid = sleepers(1)[0]
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (tmp_path / str(pid)).touch()
        (tmp_path / str(dead.pid)).touch()
        with CoreShare(cores=4, directory=tmp_path) as share:
            assert share.threads() == 2  # itself and the sleeper, not the dead one
            assert not (tmp_path / str(dead.pid)).exists()
    finally:
        torch.set_num_threads(before)


def test_more_workers_than_cores_get_one_thread_each_and_fixed_wins(tmp_path, sleepers):
    before = torch.get_num_threads()
    try:
        for pid in sleepers(4):
            (tmp_path / str(pid)).touch()
        with CoreShare(cores=2, directory=tmp_path) as share:
            assert share.threads() == 1
        with CoreShare(3, cores=2, directory=tmp_path) as share:
            assert share.threads() == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_worker_refuses_zero_threads(tmp_path):
    res = subprocess.run([sys.executable, "-m", "automed.cli", "worker", "--study", "s",
                          "--threads", "0", "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == ["error: --threads 0 must be at least 1"]
    assert not (tmp_path / "x.db").exists()  # refused before anything is written
