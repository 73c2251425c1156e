"""Shared test settings: one CPU thread, because the test machines are shared."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    torch.set_num_threads(1)
    yield
