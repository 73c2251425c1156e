"""The plugin core: built-ins register through the public hook, broken plugins are isolated."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from automed import Architecture, hookimpl
from automed.errors import ConfigError, PluginError
from automed.plugin_manager import DEFAULT_PLUGINS, PluginManager


def test_builtins_register_through_the_same_hook():
    pm = PluginManager(load_entry_points=False)
    assert "cnn" in pm.architectures()
    assert {"npz", "image-folder", "signal-table"} <= set(pm.loaders())
    for module in DEFAULT_PLUGINS:
        info = pm.plugins[module.rsplit(".", 1)[-1]]
        assert info.builtin and not info.broken
        assert info.hooks and all(h.startswith("register_") for h in info.hooks)


class _EntryPoint:
    def __init__(self, name, module):
        self.name, self.value, self.group = name, module, "automed"
        self.dist = types.SimpleNamespace(name=f"automed-{name}", version="1.2.3")

    def load(self):
        return importlib.import_module(self.value)


def _fake_entry_points(monkeypatch, modules: dict[str, str]):
    eps = [_EntryPoint(n, m) for n, m in modules.items()]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [e for e in eps if group in (None, "automed")])


def _module(name: str, **attrs) -> str:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return name


class _Tiny(Architecture):
    name = "tiny"
    modalities = frozenset({"signal"})

    def search_space(self, trial, spec):
        return {}

    def build(self, params, spec):
        import torch

        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(spec.n_classes))


def test_broken_entry_point_is_reported_and_others_still_load(monkeypatch, capsys):
    @hookimpl
    def register_architectures(register):
        register(_Tiny())

    good = _module("automed_test_good", register_architectures=register_architectures)
    _fake_entry_points(monkeypatch, {"good": good, "bad": "automed_test_does_not_exist"})
    pm = PluginManager()
    assert "tiny" in pm.architectures() and "cnn" in pm.architectures()
    bad = pm.plugins["bad"]
    assert bad.broken and "ModuleNotFoundError" in bad.error and bad.version == "1.2.3"
    assert "plugin 'bad' skipped" in capsys.readouterr().err
    assert pm.plugins["good"].architectures == ["tiny"]


def test_strict_mode_makes_a_broken_plugin_fatal(monkeypatch):
    _fake_entry_points(monkeypatch, {"bad": "automed_test_does_not_exist"})
    monkeypatch.setenv("AUTOMED_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="plugin 'bad'.*failed to load"):
        PluginManager()


def test_duplicate_architecture_name_is_refused_not_overwritten(monkeypatch, capsys):
    from automed.plugins.cnn import CNN

    @hookimpl
    def register_architectures(register):
        register(CNN())

    _fake_entry_points(monkeypatch, {"copycat": _module("automed_test_copy",
                                                        register_architectures=register_architectures)})
    pm = PluginManager()
    archs = pm.architectures()
    assert type(archs["cnn"]).__module__ == "automed.plugins.cnn"
    assert pm.plugins["copycat"].broken and "a built-in architecture's name" in \
        pm.plugins["copycat"].error


def test_architecture_selection_errors_name_the_choices():
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(ConfigError, match="unknown architecture nope; available: .*cnn"):
        pm.architectures_for("image", ["nope"])
    signal = pm.architectures_for("signal")
    assert "cnn" in signal and all(a.accepts("signal") for a in signal.values())
