"""The portfolio of known-good starts: data in the package, queued round-robin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def _portfolio_script():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "portfolio.py"
    spec = importlib.util.spec_from_file_location("portfolio_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_portfolio_order_by_score_and_by_gain_per_second():
    """Hand-computed on a PneumoniaMNIST-like pool: entry 0 is best on average but costs 9x
    entry 1, which is level with it on one dataset."""
    greedy = _portfolio_script().greedy_portfolio
    scores = {"breast": [0.862, 0.845, 0.835, 0.800],
              "pneumonia": [0.965, 0.968, 0.924, 0.900]}
    seconds = {"breast": [90.0, 20.0, 20.0, 20.0], "pneumonia": [525.0, 57.0, 60.0, 55.0]}
    # normalised: breast [1, .73, .56, 0], pneumonia [.96, 1, .35, 0]
    assert greedy(scores, 3) == [0, 1, 2]  # score alone: the best sum (1.96) first
    # per second: entry 0 costs (90/20 + 525/58.5) / 2 = 6.74 (gain 1.96: 0.29 a unit),
    # entry 1 costs (1 + 0.97) / 2 = 0.99 (gain 1.73: 1.75 a unit) -> 1, then 0 (the only
    # gain left, on breast), then 2 and 3 gain nothing: the better score, 2
    assert greedy(scores, 3, seconds) == [1, 0, 2]
    # an unmeasured entry costs the most measured one
    seconds["pneumonia"][1] = None
    assert greedy(scores, 2, seconds)[0] == 2


def test_starts_that_differ_only_in_fixed_values_are_two_candidates():
    """Two portfolio starts whose difference lies outside the space (a fixed value) both run;
    the same parameters and the same fixed values are still one candidate."""
    import optuna

    from automed.contract import FIXED_ATTR
    from automed.searching.objective import duplicate_of

    study = optuna.create_study()
    dist = {"filters": optuna.distributions.CategoricalDistribution([64, 128])}
    study.add_trial(optuna.trial.create_trial(
        params={"filters": 128}, distributions=dist, value=0.9,
        user_attrs={FIXED_ATTR: {"bins": 6}}))

    def ask(fixed):
        study.enqueue_trial({"filters": 128})  # the same params as #0, drawn by no sampler
        trial = study.ask()
        trial.set_user_attr(FIXED_ATTR, fixed)
        trial.suggest_categorical("filters", [64, 128])
        return trial

    assert duplicate_of(ask({"bins": 15})) is None
    assert duplicate_of(ask({"bins": 6})) == 0


@pytest.mark.parametrize("content", [None, "not json", '{"version": 1}'])
def test_an_unusable_portfolio_file_is_refused_before_the_search_writes(tmp_path, monkeypatch,
                                                                        content):
    # QA: a missing or broken $AUTOMED_PORTFOLIO searched with no portfolio at all, unsaid
    # (trial #0 scored 0.48 against the packaged start's 0.63).
    from automed.demo import make_demo
    from automed.errors import ConfigError
    from automed.searching.runner import search

    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("AUTOMED_PORTFOLIO", str(path))
    portfolio._load.cache_clear()
    data = make_demo("signal", tmp_path / "d.npz", n=40)
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match=rf"^\$AUTOMED_PORTFOLIO={path}: (not a readable "
                                          r"portfolio file|has no \"portfolios\" object).*; "
                                          r"fix it, or unset AUTOMED_PORTFOLIO"):
        search(data, trials=1, folds=2, max_epochs=1, storage=f"sqlite:///{db}")
    assert not db.exists()
    portfolio._load.cache_clear()
