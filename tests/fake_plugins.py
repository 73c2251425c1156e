"""Plugins for tests: a healthy toy architecture and fake installed distributions."""

from __future__ import annotations

import pytest

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

    def training_space(self, trial, spec):
        return {{"epochs": 1, "batch_size": 32}}

    def default_params(self, spec):
        return {{"scale": 1.0}}

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


class FakeEntryPoints:
    """Fake installed distributions with ``automed`` entry points, as pluggy's tests do.

    ``install(code, ep_name, dist=..., version=...)`` writes ``code`` as a module in ``folder``
    and makes ``importlib.metadata.entry_points(group="automed")`` return its entry point.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder) -> None:
        import importlib.metadata

        self.folder, self.entry_points, self.modules = folder, [], []
        monkeypatch.syspath_prepend(str(folder))
        real = importlib.metadata.entry_points

        def fake(**kwargs):
            return list(self.entry_points) if kwargs.get("group") == "automed" else real(**kwargs)

        monkeypatch.setattr(importlib.metadata, "entry_points", fake)

    def install(self, code: str, ep_name: str, dist: str | None = None,
                version: str = "1.0") -> str:
        import importlib.metadata
        from types import SimpleNamespace

        module = f"fake_{ep_name}_{len(self.modules)}_{self.folder.name}".replace("-", "_")
        (self.folder / f"{module}.py").write_text(code)
        ep = importlib.metadata.EntryPoint(ep_name, module, "automed")
        self.entry_points.append(SimpleNamespace(
            name=ep_name, value=module, group="automed",
            dist=FakeDistribution(dist or ep_name, version), load=ep.load))
        self.modules.append(module)
        return module

    def forget(self) -> None:
        import sys

        for module in self.modules:
            sys.modules.pop(module, None)
