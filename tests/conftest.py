"""Shared fixtures: one torch thread (the CPUs are shared), a clean plugin state per test."""

from __future__ import annotations

import pytest
import torch
from fake_plugins import FakeEntryPoints

from automed.plugin_manager import reset_plugin_manager

AUTOMED_PLUGIN_VARS = ("AUTOMED_STRICT_PLUGINS", "AUTOMED_LOAD_PLUGINS", "AUTOMED_PLUGINS_PATH")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _clean_plugins(monkeypatch):
    for var in AUTOMED_PLUGIN_VARS:
        monkeypatch.delenv(var, raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def install_plugin(monkeypatch, tmp_path):
    """``install_plugin(code, ep_name, ...)``: see :class:`FakeEntryPoints`."""
    fake = FakeEntryPoints(monkeypatch, tmp_path)
    yield fake.install
    fake.forget()
