"""Shared fixtures: one torch thread (the CPUs are shared), a clean plugin state per test."""

from __future__ import annotations

import pytest
import torch

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


# A healthy architecture for plugin tests: a linear model over the flattened signal.
TOY_PLUGIN = '''
from torch import nn
from automed import Architecture, hookimpl

class Toy(Architecture):
    name = "{arch}"
    modalities = frozenset({{"signal"}})
    description = "linear toy"

    def search_space(self, trial, spec):
        return {{"scale": trial.suggest_float("scale", 0.5, 2.0)}}

    def default_params(self, spec):
        return {{"scale": 1.0, "epochs": 1, "batch_size": 32}}

    def build(self, params, spec):
        return nn.Sequential(nn.Flatten(), nn.Linear(spec.channels * spec.length, spec.n_classes))

@hookimpl
def register_architectures(register):
    register(Toy())
'''


class FakeDistribution:
    """Just what automed reads of an installed distribution."""

    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version


@pytest.fixture
def install_plugin(monkeypatch, tmp_path):
    """Fake an installed distribution with an ``automed`` entry point, as pluggy's tests do.

    ``install_plugin(code, ep_name=..., dist=..., version=...)`` writes ``code`` as a module
    and makes ``importlib.metadata.entry_points(group="automed")`` return its entry point.
    """
    import importlib.metadata
    import sys
    from types import SimpleNamespace

    entry_points: list = []
    modules: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == "automed":
            return list(entry_points)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)

    def install(code: str, ep_name: str, dist: str | None = None,
                version: str = "1.0") -> str:
        module = f"fake_{ep_name}_{len(modules)}_{tmp_path.name}".replace("-", "_")
        (tmp_path / f"{module}.py").write_text(code)
        ep = importlib.metadata.EntryPoint(ep_name, module, "automed")
        entry_points.append(SimpleNamespace(name=ep_name, value=module, group="automed",
                                            dist=FakeDistribution(dist or ep_name, version),
                                            load=ep.load))
        modules.append(module)
        return module

    yield install
    for module in modules:
        sys.modules.pop(module, None)
