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


# -- training keys and token ids: docs/plugins.md against automed.contract -----------------
def _section(title: str) -> str:
    return GUIDE.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table_rows() -> dict[str, list[str]]:
    rows = [line for line in _section("Training keys").splitlines() if line.startswith("| `")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return {c[0].strip("`"): c[1:] for c in cells}


def _default_space() -> dict:
    from automed.contract import _Probe
    from automed.searching.training import default_training_space

    probe = _Probe({})
    default_training_space(probe, Spec("signal", (1, 8), 2))  # signals draw every key
    return probe.space


def test_every_training_key_is_documented_with_type_values_and_default():
    from automed.contract import TRAINING_CONTRACT, TRAINING_DEFAULTS, _show

    rows = _table_rows()
    assert list(rows) == list(TRAINING_CONTRACT) == list(TRAINING_DEFAULTS)
    for name, key in TRAINING_CONTRACT.items():
        typ, allowed, default, _space, meaning = rows[name]
        assert (typ, allowed, default, meaning) == (key.type, key.allowed, _show(key.default),
                                                    key.doc), name


def test_documented_default_search_space_is_the_code_and_lies_inside_the_contract():
    from optuna.distributions import CategoricalDistribution

    from automed.contract import TRAINING_CONTRACT, _show, training_problems

    space = _default_space()
    assert set(space) <= set(TRAINING_CONTRACT), "the default space draws an undocumented key"
    rows = _table_rows()
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values = list(dist.choices)
            text = ", ".join(_show(c) for c in values)
        else:
            values = [dist.low, dist.high]
            text = f"{_show(dist.low)} to {_show(dist.high)}" + (", log scale" if dist.log
                                                                 else "")
        assert rows[name][3] == text, name
        for value in values:
            assert training_problems({name: value}) == [], (name, value)


def test_token_ids_are_documented_as_the_encoder_assigns_them():
    import numpy as np

    from automed.data.alphabets import ALPHABETS
    from automed.data.dataset import Dataset
    from automed.data.tokens import BioSequencePreprocessor

    section = _section("Token ids")
    for name, symbols in ALPHABETS.items():
        line = next(ln for ln in section.splitlines() if ln.startswith(f"- `{name}` "))
        documented = dict(pair.split("=") for pair in line.split(": ", 1)[1].split(", "))
        data = Dataset(np.array([symbols], dtype=object), np.array([0]), ["a"], "biosequence",
                       "x", meta={"alphabet": name})
        pre = BioSequencePreprocessor()
        assert f"(`vocab_size` {pre.spec(data).vocab_size})" in line
        ids = pre.fit(data).transform([symbols]).tolist()[0]
        assert documented == {c: str(i) for c, i in zip(symbols, ids, strict=True)}
    assert "padded with 0" in section and "IUPAC" in section
