"""The plugin guide cannot drift from the code: hooks, contract methods and spec fields."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from automed import hookspecs
from automed.architecture import Architecture
from automed.plugin_manager import PluginManager
from automed.spec import Spec

GUIDE = Path(__file__).parents[1] / "docs" / "plugins.md"


def _hook_sections() -> dict[str, str]:
    text = GUIDE.read_text()
    reference = text.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\w+)\((.*)\)$", reference, flags=re.M)
    return {name: f"({args})\n{body}" for name, args, body in
            zip(parts[1::3], parts[2::3], parts[3::3])}


def test_every_hook_is_documented_and_every_documented_hook_exists():
    assert sorted(_hook_sections()) == PluginManager.hook_names()


@pytest.mark.parametrize("hook", PluginManager.hook_names())
def test_documented_signature_matches_the_spec(hook):
    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    section = _hook_sections()[hook]
    assert section.startswith(f"({', '.join(params)})")
    for param in params:
        assert f"`{param}`" in section


def test_architecture_contract_is_documented():
    text = GUIDE.read_text()
    public = [n for n, _ in inspect.getmembers(Architecture) if not n.startswith("_")]
    for name in public:
        assert f"`{name}" in text, f"Architecture.{name} is not in docs/plugins.md"


def test_spec_fields_are_documented():
    text = GUIDE.read_text()
    fields = [f.name for f in dataclasses.fields(Spec)] + ["channels", "length"]
    for name in fields:
        assert f"`{name}`" in text, f"Spec.{name} is not in docs/plugins.md"
