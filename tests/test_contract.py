"""The training contract as an outside plugin author meets it: defaults outside the search
space train as given, and values the training loop cannot use fail naming key and values."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch

from automed.contract import (
    FIXED_ATTR,
    TRAINING_CONTRACT,
    ContractError,
    split_defaults,
    training_problems,
    validate_training_params,
)
from automed.searching.runner import search
from automed.searching.training import _make_optimizer, fit_model
from automed.spec import Spec
from automed.storage import Store

# A family written from the guide alone: default training space, defaults outside it.
OUTSIDE_DEFAULTS = '''
from torch import nn
from automed import Architecture, hookimpl


class Outside(Architecture):
    name = "outside"
    modalities = frozenset({"signal"})

    def search_space(self, trial, spec):
        return {"hidden": trial.suggest_categorical("hidden", [8, 16])}

    def build(self, params, spec):
        return nn.Sequential(nn.Flatten(), nn.Linear(spec.channels * spec.length,
                                                     params["hidden"]),
                             nn.ReLU(), nn.Linear(params["hidden"], spec.n_classes))

    def default_params(self, spec):
        return {"hidden": 8, "width_note": 3, "optimizer": "adam", "weight_decay": 0.0,
                "batch_size": 24, "epochs": 2}


@hookimpl
def register_architectures(register):
    register(Outside())
'''


def test_defaults_outside_the_search_space_train_as_given(tmp_path, demo_signal, storage_url):
    plugin = tmp_path / "outside.py"
    plugin.write_text(OUTSIDE_DEFAULTS)
    result = search(demo_signal, trials=1, folds=2, storage=storage_url, plugins=[plugin],
                    architectures=["outside"], artifacts=tmp_path / "models", bootstrap=0)
    [row] = Store(storage_url).candidates(result.study)
    assert row["state"] == "complete", row.get("error")
    params = row["params"]
    assert (params["optimizer"], params["weight_decay"], params["batch_size"]) == (
        "adam", 0.0, 24)
    assert params["width_note"] == 3  # a key the space never suggests still reaches build
    assert result.test_scores is not None  # the refit used the same parameters...
    saved = json.loads((Path(result.artifact) / "automed_model.json").read_text())["params"]
    assert (saved["optimizer"], saved["weight_decay"], saved["batch_size"]) == ("adam", 0.0, 24)
    assert saved["width_note"] == 3  # ...and so does the saved model
    [trial] = optuna.load_study(study_name=result.study, storage=storage_url).trials
    # Out-of-space values never enter Optuna's distributions (they would break the sampler).
    assert "outside.optimizer" not in trial.params and "outside.batch_size" not in trial.params
    assert trial.params["outside.hidden"] == 8 and trial.params["outside.lr"] == 3e-3
    assert trial.user_attrs[FIXED_ATTR]["weight_decay"] == 0.0


def test_split_defaults_keeps_in_space_values_as_optuna_parameters():
    from automed.plugin_manager import get_plugin_manager

    arch = get_plugin_manager().architectures()["mlp"]
    spec = Spec("tabular", (5,), 2)
    inside, fixed = split_defaults(arch, spec, {"optimizer": "sgd", "batch_size": 24,
                                                "weight_decay": 0.0, "lr": 5e-3})
    assert inside["optimizer"] == "sgd" and inside["lr"] == 5e-3
    assert fixed["batch_size"] == 24 and fixed["weight_decay"] == 0.0


def test_adam_is_adam_not_adamw():
    model = torch.nn.Linear(2, 2)
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                      ("sgd", torch.optim.SGD)):
        opt = _make_optimizer(model, {"optimizer": name, "lr": 1e-3, "weight_decay": 0.0})
        assert type(opt) is cls


@pytest.mark.parametrize("key, value, allowed", [
    ("optimizer", "rmsprop", 'one of "adamw", "adam", "sgd"'),
    ("class_weight", None, 'one of "none", "balanced"'),
    ("sampler", "weighted", 'one of "shuffle", "balanced"'),
    ("batch_size", 0, "an integer, 1 <= batch_size"),
    ("batch_size", 16.0, "an integer, 1 <= batch_size"),
    ("weight_decay", -1e-4, "a number, 0.0 <= weight_decay"),
    ("lr", 1.5, "a number, 0.0 < lr < 1.0"),
    ("epochs", True, "an integer, 1 <= epochs"),
    ("augment", "yes", "True or False"),
])
def test_bad_training_values_name_the_key_and_the_allowed_values(key, value, allowed):
    with pytest.raises(ContractError) as err:
        validate_training_params({key: value})
    message = str(err.value)
    assert f"training key {key!r}" in message and allowed in message
    assert "\n" not in message


def test_every_default_satisfies_the_contract_and_edge_values_pass():
    assert training_problems({k.name: k.default for k in TRAINING_CONTRACT.values()}) == []
    assert training_problems({"optimizer": "adam", "weight_decay": 0, "batch_size": 1,
                              "label_smoothing": 0.0, "augment": True, "lr": 1e-5}) == []


def test_training_refuses_a_bad_value_before_fitting():
    spec = Spec("tabular", (3,), 2)
    x, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    with pytest.raises(ContractError, match="'optimizer'"):
        fit_model(torch.nn.Linear(3, 2), x, y, {"optimizer": "adagrad", "epochs": 1}, spec)
    fit_model(torch.nn.Linear(3, 2), x, y,
              {"optimizer": "adam", "weight_decay": 0.0, "batch_size": 3, "epochs": 1}, spec)


# -- automed plugins check ----------------------------------------------------------------
def _check(tmp_path, code: str, name: str = "candidate_plugin"):
    from click.testing import CliRunner

    from automed.cli import cli

    path = tmp_path / f"{name}.py"
    path.write_text(code)
    return CliRunner().invoke(cli, ["plugins", "check", str(path), "--samples", "2"])


def test_plugins_check_passes_defaults_outside_the_space(tmp_path):
    result = _check(tmp_path, OUTSIDE_DEFAULTS)
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["ok", "outside"]


def test_plugins_check_names_a_bad_default_key_and_its_allowed_values(tmp_path):
    bad = OUTSIDE_DEFAULTS.replace('"optimizer": "adam"', '"optimizer": "rmsprop"').replace(
        '"batch_size": 24', '"batch_size": 24, "class_weight": None')
    result = _check(tmp_path, bad)
    assert result.exit_code != 0
    out = result.output
    assert ("signal training contract: default_params: training key 'optimizer' is 'rmsprop'"
            in out and 'allowed: one of "adamw", "adam", "sgd"' in out)
    assert "training key 'class_weight' is None" in out and '"none", "balanced"' in out


def test_plugins_check_validates_sampled_sets_and_trains_a_step(tmp_path):
    # A training space that draws a value the loop cannot use, and a model that only fails
    # when trained (a 1-sample batch through BatchNorm).
    code = OUTSIDE_DEFAULTS.replace(
        '    def build(self, params, spec):',
        '    def training_space(self, trial, spec):\n'
        '        return {"optimizer": trial.suggest_categorical("optimizer", ["adamw", "lamb"])}\n'
        '\n    def build(self, params, spec):')
    result = _check(tmp_path, code)
    assert "sampled set" in result.output and "'lamb'" in result.output
    code = OUTSIDE_DEFAULTS.replace("nn.ReLU()", "nn.BatchNorm1d(params['hidden']), nn.ReLU()"
                                    ).replace('"batch_size": 24', '"batch_size": 1')
    from automed.plugin_manager import reset_plugin_manager

    reset_plugin_manager()
    result = _check(tmp_path, code, "batchnorm_plugin")
    assert result.exit_code != 0
    assert "signal train: default_params: ValueError" in result.output


def test_left_out_training_keys_follow_a_narrowed_space_not_the_library_default():
    class Narrow:
        def search_space(self, trial, spec):
            return {}

        def training_space(self, trial, spec):
            return {"batch_size": trial.suggest_categorical("batch_size", [8, 16]),
                    "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True), "epochs": 3}

    inside, fixed = split_defaults(Narrow(), Spec("tabular", (5,), 2), {"optimizer": "adam"})
    assert inside == {"lr": 3e-3}  # the library default, inside the family's range
    # batch_size 64 is outside [8, 16] and epochs is the family's constant: both left to the
    # family; only the family's own out-of-space value is fixed.
    assert fixed == {"optimizer": "adam"}


class _Pair(torch.nn.Module):
    """A forward as some papers' code has it: (logits, auxiliary output)."""

    def __init__(self, n_classes: int, nan: bool = False) -> None:
        super().__init__()
        self.linear, self.nan = torch.nn.Linear(16, n_classes), nan

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        return logits * float("nan") if self.nan else (logits, x)


def test_a_forward_returning_a_tuple_fails_its_candidate_with_the_contract():
    """QA: (logits, aux) failed as "AttributeError: 'tuple' object has no attribute 'shape'"
    in a search and as allclose's TypeError in `plugins check`."""
    from automed.errors import CandidateError

    spec = Spec("signal", (1, 16), 2)
    x, y = torch.randn(8, 1, 16), torch.arange(8) % 2
    with pytest.raises(CandidateError, match="returned a tuple, not a logits tensor"):
        fit_model(_Pair(2), x, y, {"epochs": 1}, spec)


@pytest.mark.parametrize("nan, said", [(False, "forward returned a tuple"),
                                       (True, "non-finite output")])
def test_plugins_check_names_a_tuple_and_no_false_nondeterminism_for_nan(nan, said):
    from automed.architecture import Architecture
    from automed.testing import check_architecture

    class Arch(Architecture):
        name = "pair"
        modalities = frozenset({"signal"})

        def search_space(self, trial, spec):
            return {}

        def build(self, params, spec):
            return _Pair(spec.n_classes, nan=nan)

    spec = Spec("signal", (1, 16), 2)
    messages = [f.message for f in check_architecture(Arch(), specs=[spec], n_samples=1)]
    assert any(said in m for m in messages), messages
    assert not any("differs between two identical calls" in m or "two builds" in m
                   for m in messages), messages


class _PooledPair(torch.nn.Module):
    """Any input length: its logits twice (a fault of the family, not of one input)."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(channels, n_classes)

    def forward(self, x):
        logits = self.head(x.mean(dim=-1))
        return logits, logits


def test_plugins_check_says_a_fault_of_the_family_once_not_once_per_example_input():
    from automed.architecture import Architecture
    from automed.testing import EXAMPLE_SPECS, check_architecture

    class Arch(Architecture):
        name = "pooledpair"
        modalities = frozenset({"signal"})

        def search_space(self, trial, spec):
            return {}

        def build(self, params, spec):
            return _PooledPair(spec.channels, spec.n_classes)

    assert len(EXAMPLE_SPECS["signal"]) > 1
    messages = [f.message for f in check_architecture(Arch(), n_samples=2)]
    assert len(messages) == len(set(messages)), messages  # each parameter set gave it again
    assert ("forward returned a tuple, not a logits tensor of shape (4, 2); return the logits "
            "alone") in messages


def test_the_join_hint_of_a_plugin_study_runs_as_printed(tmp_path, demo_signal, monkeypatch,
                                                         capsys):
    """QA: `search --plugin FILE --workers 0` printed a worker command without --plugin,
    which the worker then refused; the printed command now joins as is."""
    import os
    import shlex
    import subprocess
    import sys

    from clirun import run_cli

    plugin = tmp_path / "outside.py"
    plugin.write_text(OUTSIDE_DEFAULTS)
    url = f"sqlite:///{tmp_path / 'join.db'}"
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "search", str(demo_signal), "--plugin",
                             "outside.py", "--arch", "outside", "--trials", "1", "--folds",
                             "2", "--max-epochs", "1", "--workers", "0", "--study", "j",
                             "--storage", url)
    assert code in (0, None), err
    hint = out.split("join it with: ", 1)[1].strip()
    assert f"--plugin {plugin}" in hint
    argv = shlex.split(hint)
    assert argv[:2] == ["automed", "worker"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "automed.cli", *argv[1:]], cwd=tmp_path.parent,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [c["state"] for c in Store(url).candidates("j")] == ["complete"]


CHATTY = OUTSIDE_DEFAULTS.replace('name = "outside"', 'name = "chatty"').replace(
    "    def build(self, params, spec):\n",
    "    def build(self, params, spec):\n        print('building chatty', params['hidden'])\n")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_printing_plugin_leaves_json_and_csv_on_stdout_alone(tmp_path, demo_signal, workers):
    """QA: a plugin's print() in build came before search --json's JSON (json.load failed)
    and before predict's CSV header on stdout; its lines go to stderr now (a leader's local
    workers' too)."""
    import csv
    import io
    import os
    import subprocess
    import sys

    plugin = tmp_path / "chatty.py"
    plugin.write_text(CHATTY)
    url = f"sqlite:///{tmp_path / 'chatty.db'}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cli = [sys.executable, "-m", "automed.cli"]
    done = subprocess.run([*cli, "search", str(demo_signal), "--plugin", str(plugin), "--arch",
                           "chatty", "--trials", "2", "--folds", "2", "--max-epochs", "1",
                           "--bootstrap", "0", "--workers", workers, "--study", "c",
                           "--storage", url, "--json"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["study"] == "c"
    assert "building chatty" in done.stderr
    shown = subprocess.run([*cli, "predict", str(demo_signal), "--study", "c", "--storage", url,
                            "--plugin", str(plugin)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0, shown.stderr
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert rows and set(rows[0]) >= {"split", "index", "predicted"}
    assert "building chatty" in shown.stderr


def test_a_default_params_that_raises_is_said_and_the_family_still_competes(
        tmp_path, demo_signal, monkeypatch, capsys):
    """QA: default_params raising was swallowed: the family's start vanished with no word."""
    from clirun import run_cli

    plugin = tmp_path / "nodefaults.py"
    plugin.write_text(OUTSIDE_DEFAULTS.replace('name = "outside"', 'name = "nodefaults"')
                      .replace('return {"hidden": 8,', 'return {"hidden": spec.extra["hint"],'))
    code, out, err = run_cli(monkeypatch, capsys, "search", str(demo_signal), "--plugin",
                             str(plugin), "--arch", "nodefaults", "--trials", "1", "--folds",
                             "2", "--max-epochs", "1", "--bootstrap", "0", "--storage",
                             f"sqlite:///{tmp_path / 'nd.db'}")
    assert code in (0, None), err
    warned = [ln for ln in err.splitlines() if ln.startswith("WARNING:")]
    assert len(warned) == 1 and "nodefaults: default_params raised KeyError: 'hint'" in \
        warned[0], err
    assert "nodefaults" in out  # its candidate, drawn from the space, is on the leaderboard
    # a sys.exit there loses the start too, not the search (as a candidate's does)
    exits = tmp_path / "exits.py"
    exits.write_text(OUTSIDE_DEFAULTS.replace('name = "outside"', 'name = "exits"')
                     .replace('return {"hidden": 8,', 'raise SystemExit(3)\n        return {'
                              '"hidden": 8,'))
    code, out, err = run_cli(monkeypatch, capsys, "search", str(demo_signal), "--plugin",
                             str(exits), "--arch", "exits", "--trials", "1", "--folds",
                             "2", "--max-epochs", "1", "--bootstrap", "0", "--storage",
                             f"sqlite:///{tmp_path / 'nd2.db'}")
    assert code in (0, None), err
    assert "exits: default_params raised SystemExit: 3" in err and "exits" in out


def test_a_search_space_drawing_a_training_key_is_named():
    """QA: search_space suggesting "optimizer" (or "lr" in another range) failed with Optuna's
    "CategoricalDistribution does not support dynamic value space"."""
    from automed.architecture import Architecture, PrefixedTrial
    from automed.contract import draw_params

    class Clash(Architecture):
        name = "clash"
        modalities = frozenset({"signal"})

        def search_space(self, trial, spec):
            return {"optimizer": trial.suggest_categorical("optimizer", ["adam"])}

        def build(self, params, spec):
            raise AssertionError("not reached")

    study = optuna.create_study()
    with pytest.raises(ContractError, match=r"search_space draws 'optimizer', training key"):
        draw_params(Clash(), PrefixedTrial(study.ask(), "clash"), Spec("signal", (1, 16), 2))


class _Misbehaving(torch.nn.Module):
    def __init__(self, n_classes: int, kind: str) -> None:
        super().__init__()
        self.kind, self.head = kind, torch.nn.Linear(16, n_classes + 1)

    def forward(self, x):
        out = self.head(x.flatten(1))
        if self.kind == "exits":
            raise SystemExit(3)
        return out if not self.training else out[:, :-1]


@pytest.mark.parametrize("kind, said", [
    # QA: `plugins check` ended with exit code 3 and no word
    ("exits", "SystemExit: 3"),
    # QA: the output's shape was checked in train mode only ("ok")
    ("eval_shape", "eval-mode output shape (4, 3) != (4, 2)"),
])
def test_plugins_check_names_a_sys_exit_and_a_wrong_eval_mode_shape(kind, said):
    from automed.architecture import Architecture
    from automed.testing import check_architecture

    class Arch(Architecture):
        name = kind
        modalities = frozenset({"signal"})

        def search_space(self, trial, spec):
            return {}

        def build(self, params, spec):
            return _Misbehaving(spec.n_classes, kind)

    spec = Spec("signal", (1, 16), 2)
    messages = [f.message for f in check_architecture(Arch(), specs=[spec], n_samples=1)]
    assert any(said in m for m in messages), messages
