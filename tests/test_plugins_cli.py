"""`automed plugins [list]` and `automed plugins check`: what a plugin author sees."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fake_plugins import TOY_PLUGIN

from automed.cli import cli
from automed.errors import PluginError

WRONG_SHAPE = TOY_PLUGIN.format(arch="lopsided").replace("spec.n_classes))",
                                                         "spec.n_classes + 1))")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "list"]])
def test_bare_plugins_and_list_are_the_same(install_plugin, args):
    install_plugin(TOY_PLUGIN.format(arch="toy"), "toy-plugin", version="1.2")
    install_plugin("import missing_thing\n", "broken", version="0.1")
    out = invoke(*args).output
    assert "toy-plugin 1.2: " in out and "architecture toy: signal" in out
    assert "broken 0.1: " in out and "BROKEN: ModuleNotFoundError" in out
    assert "(built-in)" not in out
    assert "cnn (built-in)" in invoke(*args, "--all").output


def test_list_json(install_plugin):
    install_plugin(TOY_PLUGIN.format(arch="toy"), "toy-plugin")
    [entry] = json.loads(invoke("plugins", "list", "--json").stdout)
    assert entry["architectures"] == [{"name": "toy", "modalities": ["signal"],
                                       "description": "linear toy"}]
    names = {e["name"] for e in json.loads(invoke("plugins", "--all", "--json").stdout)}
    assert {"cnn", "npz", "toy-plugin"} <= names


def test_list_json_keeps_what_a_plugin_prints_off_stdout(install_plugin):
    # QA: a plugin printing while it loads made `plugins list --json` unparseable
    install_plugin('print("IMPORT NOISE")\n' + TOY_PLUGIN.format(arch="toy"), "noisy")
    result = invoke("plugins", "list", "--json")
    assert [e["name"] for e in json.loads(result.stdout)] == ["noisy"]
    assert "IMPORT NOISE" in result.stderr


def test_check_passes_on_a_healthy_file(tmp_path):
    path = tmp_path / "healthy.py"
    path.write_text(TOY_PLUGIN.format(arch="toy"))
    result = invoke("plugins", "check", str(path), "--samples", "1")
    assert result.exit_code == 0 and result.output.split() == ["ok", "toy"]


def test_check_reports_each_failure_and_exits_non_zero(tmp_path):
    path = tmp_path / "lopsided.py"
    path.write_text(WRONG_SHAPE)
    result = invoke("plugins", "check", str(path), "--samples", "1")
    assert isinstance(result.exception, PluginError)  # main() prints it and exits 2
    assert "conformance check(s) failed" in str(result.exception)
    assert result.output.startswith("FAIL  lopsided")
    assert "signal contract: output shape (4, 3) != (4, 2)" in result.output


def test_check_of_an_unknown_name_says_what_exists():
    result = invoke("plugins", "check", "nonexistent_plugin_name")
    assert isinstance(result.exception, PluginError)
    assert ("architectures: attention, biosequence, cnn, fasttext, lstm, mlp, rnn, rocket, textcnn"
            in str(result.exception))


def test_check_the_single_file_example():
    from pathlib import Path

    example = Path(__file__).parents[1] / "examples" / "single_file" / "spectral_mlp.py"
    result = invoke("plugins", "check", str(example), "--samples", "1")
    assert result.exit_code == 0, result.output


def test_search_refuses_a_plugin_given_with_plugin_whose_hook_raises(tmp_path, demo_signal):
    # As one that fails to import: one line, exit 2, before anything is written.
    import os
    import subprocess
    import sys

    path = tmp_path / "raising.py"
    path.write_text("from automed import hookimpl\n\n@hookimpl\n"
                    "def register_architectures(register):\n    raise RuntimeError('boom')\n")
    db = tmp_path / "p.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMED_")}
    done = subprocess.run([sys.executable, "-m", "automed.cli", "search", str(demo_signal),
                           "--plugin", str(path), "--storage", f"sqlite:///{db}", "-q",
                           "--trials", "1", "--folds", "2", "--max-epochs", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: plugin {path} failed to load: RuntimeError: boom; fix it or drop it from "
        "--plugin"]
    assert not db.exists()


SIGNAL_LOADER = '''
import numpy as np
from automed import hookimpl
from automed.data.dataset import Dataset, LoadedData
from automed.data.loaders.base import Loader

class Rows(Loader):
    name = "rows"
    description = "label,value,value,... per line"
    suffixes = {suffixes}
    modalities = frozenset({{"signal"}})

    def load(self, path, modality=None, **options):
        rows = np.loadtxt(path, delimiter=",")
        x = rows[:, None, 1:].astype(np.float32)
        return LoadedData(Dataset(x, rows[:, 0].astype(int), ["a", "b"], "signal",
                                  str(path)), None)

@hookimpl
def register_loaders(register):
    register(Rows())
'''


def test_check_of_a_loader_plugin_reads_the_file_given_with_data(tmp_path):
    # QA: `plugins check` refused a plugin that registers only a loader ("registers no
    # architectures"): a loader's author had nothing to check it with.
    import numpy as np

    path = tmp_path / "rows_loader.py"
    path.write_text(SIGNAL_LOADER.format(suffixes='(".rows",)'))
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    np.savetxt(tmp_path / "good.rows", np.c_[y, rng.normal(size=(40, 12))], delimiter=",")
    (tmp_path / "bad.rows").write_text("1,2,x\n", encoding="utf-8")
    said = invoke("plugins", "check", str(path))
    assert said.exit_code == 0, said.output
    assert said.output.strip() == "ok    loader rows (give --data FILE to read a file with it)"
    read = invoke("plugins", "check", str(path), "--data", str(tmp_path / "good.rows"))
    assert read.exit_code == 0 and "ok    loader rows (read " in read.output, read.output
    bad = invoke("plugins", "check", str(path), "--data", str(tmp_path / "bad.rows"))
    assert isinstance(bad.exception, PluginError), bad.output
    assert bad.output.startswith("FAIL  loader rows")
    assert "- load: loader 'rows'" in bad.output and "ValueError" in bad.output
    other = tmp_path / "good.csv"  # read with --format rows, but never claimed by a search
    other.write_bytes((tmp_path / "good.rows").read_bytes())
    unclaimed = invoke("plugins", "check", str(path), "--data", str(other))
    assert "sniff: reads" in unclaimed.output and "does not claim it" in unclaimed.output
    from automed.plugin_manager import reset_plugin_manager

    reset_plugin_manager()  # as a new command would start
    edited = tmp_path / "rows_loader_edited.py"
    edited.write_text(SIGNAL_LOADER.format(suffixes='("rows",)'))
    wrong = invoke("plugins", "check", str(edited))
    assert "- suffixes: ('rows',) is not a tuple of lower-case endings" in wrong.output
    refused = invoke("plugins", "check", "cnn", "--data", str(tmp_path / "good.rows"))
    assert "registers none (drop --data)" in str(refused.exception)


def test_a_loader_plugins_unchannelled_signals_are_searched_as_the_built_ins_give_them(
        tmp_path, monkeypatch, capsys):
    # QA (docs): a loader returning (N, L) signals passed `plugins check --data`, and the
    # search then crashed with a traceback in the signal preprocessor (expected 2 values).
    import numpy as np
    from clirun import run_cli

    path = tmp_path / "flat_loader.py"
    path.write_text(SIGNAL_LOADER.format(suffixes='(".rows",)').replace(
        "rows[:, None, 1:]", "rows[:, 1:]"))
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    np.savetxt(tmp_path / "d.rows", np.c_[y, rng.normal(size=(40, 12)) + y[:, None]],
               delimiter=",")
    code, _, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "d.rows"), "--plugin",
                           str(path), "--trials", "1", "--folds", "2", "--max-epochs", "1",
                           "--bootstrap", "0", "--arch", "mlp", "--storage",
                           f"sqlite:///{tmp_path / 's.db'}")
    assert code in (0, None), err
    assert "40 signal samples of 1 x 12 (channels x length)" in err
    # predict without the loader's --plugin names it (QA: "unknown data format '.rows'")
    from automed.plugin_manager import reset_plugin_manager

    reset_plugin_manager()  # as a new command starts: the plugin is not loaded
    code, _, err = run_cli(monkeypatch, capsys, "predict", str(tmp_path / "d.rows"),
                           "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert code not in (0, None)
    assert "the model reads its data with the 'rows' loader, which no loaded plugin " \
           f"provides; it came from plugin {path}: give it with --plugin" in err, err
    code, out, err = run_cli(monkeypatch, capsys, "predict", str(tmp_path / "d.rows"),
                             "--plugin", str(path), "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert code in (0, None) and out.count("\n") == 41, err
