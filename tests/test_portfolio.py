"""The portfolio of known-good starts: data in the package, queued round-robin."""

from __future__ import annotations

import json

from automed.plugin_manager import get_plugin_manager
from automed.searching import portfolio
from automed.searching.runner import _family_defaults
from automed.spec import Spec


def _spec(modality="signal"):
    return Spec(modality=modality, input_shape=(1, 96), n_classes=2, extra={"n_train": 100})


def test_packaged_portfolio_is_valid_data():
    doc = json.loads(portfolio.PACKAGED.read_text())
    assert doc["version"] == 1
    for families in doc["portfolios"].values():
        for family, entries in families.items():
            assert entries and all(isinstance(e["params"], dict) for e in entries), family


def test_portfolio_is_queued_round_robin_and_capped(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1, "portfolios": {"signal": {
        "cnn": [{"params": {"width": 64}}, {"params": {}}, {"params": {"width": 16}}],
        "mlp": [{"params": {}}, {"params": {"layers": 3, "not_a_param": 1}}]}}}))
    monkeypatch.setenv("AUTOMED_PORTFOLIO", str(path))
    portfolio._load.cache_clear()
    archs = get_plugin_manager().architectures_for("signal", ["cnn", "mlp"])
    queued = _family_defaults(archs, _spec())
    assert [name for name, _, _ in queued] == ["cnn", "mlp", "cnn", "mlp", "cnn"]
    # (family, study parameters, fixed parameters): a value outside the space is fixed
    cnn = [{**c, **f} for n, c, f in queued if n == "cnn"]
    assert [c["width"] for c in cnn] == [64, 32, 16]  # overrides on the family default
    mlp = [{**c, **f} for n, c, f in queued if n == "mlp"]
    assert mlp[1]["layers"] == 3 and "not_a_param" not in mlp[1]
    # --trials 4: at most half the budget, and at least one start per family
    assert len(_family_defaults(archs, _spec(), trials=4)) == 2
    assert len(_family_defaults(archs, _spec(), trials=1)) == 2
    portfolio._load.cache_clear()
