"""Shared fixtures: tiny data, an isolated database, one torch thread, clean plugin state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_plugins import FakeEntryPoints

from automed.demo import make_demo
from automed.plugin_manager import reset_plugin_manager

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
AUTOMED_VARS = ("AUTOMED_STORAGE", "AUTOMED_STRICT_PLUGINS", "AUTOMED_LOAD_PLUGINS",
                "AUTOMED_PLUGINS_PATH", "AUTOMED_RESULTS_DB")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    # Tests never read the user's database or plugin settings, and one thread avoids
    # oversubscribing small CI machines.
    for var in AUTOMED_VARS:
        monkeypatch.delenv(var, raising=False)
    torch.set_num_threads(1)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def install_plugin(monkeypatch, tmp_path):
    """``install_plugin(code, ep_name, ...)``: see :class:`FakeEntryPoints`."""
    fake = FakeEntryPoints(monkeypatch, tmp_path)
    yield fake.install
    fake.forget()


@pytest.fixture
def storage_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture(scope="session")
def demo_image(tmp_path_factory) -> Path:
    return make_demo("image", tmp_path_factory.mktemp("demo") / "demo_image.npz", n=90)


@pytest.fixture(scope="session")
def demo_signal(tmp_path_factory) -> Path:
    return make_demo("signal", tmp_path_factory.mktemp("demo") / "demo_signal.npz", n=90)


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the shared datasets live in ../shared/data beside the repo")
    return path
