"""Discovery: every entry point loads in isolation; broken ones are listed, never fatal."""

from __future__ import annotations

import pytest
from fake_plugins import TOY_PLUGIN

from automed.errors import ConfigError, PluginError
from automed.plugin_manager import PluginManager

MISSPELT_HOOK = '''
from automed import hookimpl

@hookimpl
def register_architecture(register):
    pass
'''


def test_installed_plugin_is_listed_with_version_hooks_and_modalities(install_plugin):
    install_plugin(TOY_PLUGIN.format(arch="toy"), "toy-plugin", dist="automed-toy", version="2.1")
    pm = PluginManager()
    assert "toy" in pm.architectures() and "cnn" in pm.architectures()
    [info] = pm.describe()
    assert info["name"] == "toy-plugin" and info["version"] == "2.1"
    assert info["hooks"] == ["register_architectures"] and not info["error"]
    assert info["architectures"][0]["name"] == "toy"
    assert info["architectures"][0]["modalities"] == ["signal"]
    assert {p["name"] for p in pm.describe(include_builtin=True)} >= {"toy-plugin", "cnn", "npz"}


def test_plugin_that_fails_to_import_is_broken_and_the_rest_works(install_plugin, capsys):
    install_plugin("import no_such_dependency_xyz\n", "bad", version="0.3")
    install_plugin(TOY_PLUGIN.format(arch="toy"), "good")
    pm = PluginManager()
    assert {"cnn", "toy"} <= set(pm.architectures())
    bad = pm.plugins["bad"]
    assert bad.broken and bad.version == "0.3"
    assert bad.error.startswith("ModuleNotFoundError") and "no_such_dependency_xyz" in bad.error
    assert "plugin 'bad' skipped" in capsys.readouterr().err


def test_misspelt_hook_is_broken_with_a_suggestion(install_plugin):
    install_plugin(MISSPELT_HOOK, "typo")
    pm = PluginManager()
    error = pm.plugins["typo"].error
    assert "unknown hook register_architecture (did you mean register_architectures?)" in error
    assert not pm.pm.has_plugin("typo")


def test_strict_mode_makes_a_broken_plugin_fatal(install_plugin, monkeypatch):
    install_plugin("raise RuntimeError('boom')\n", "bad")
    monkeypatch.setenv("AUTOMED_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="plugin 'bad' .* failed to load: RuntimeError: boom"):
        PluginManager()


@pytest.mark.parametrize(("allow", "expected"), [
    ("one", {"one"}), ("automed-two", {"two"}), ("one, two", {"one", "two"}), ("", set()),
])
def test_allow_list_by_entry_point_or_distribution(install_plugin, monkeypatch, allow,
                                                   expected):
    install_plugin(TOY_PLUGIN.format(arch="a1"), "one", dist="automed-one")
    install_plugin(TOY_PLUGIN.format(arch="a2"), "two", dist="automed-two")
    install_plugin("raise RuntimeError('never imported')\n", "three")
    monkeypatch.setenv("AUTOMED_LOAD_PLUGINS", allow)
    pm = PluginManager()
    assert {p["name"] for p in pm.describe()} == expected


def test_duplicate_architecture_names_break_the_second_plugin(install_plugin):
    install_plugin(TOY_PLUGIN.format(arch="cnn"), "copycat")
    pm = PluginManager()
    assert pm.architectures()["cnn"].__module__ == "automed.plugins.cnn"
    assert ("architecture 'cnn' is a built-in architecture's name; rename the one plugin "
            "'copycat' registers") in pm.plugins["copycat"].error


def test_a_hook_that_raises_half_way_contributes_nothing(install_plugin):
    code = TOY_PLUGIN.format(arch="first") + '''
@hookimpl
def register_loaders(register):
    pass

def register_architectures(register):
    register(Toy())
    raise ValueError("second one failed")
register_architectures = hookimpl(register_architectures)
'''
    install_plugin(code, "half")
    pm = PluginManager()
    assert "first" not in pm.architectures()
    assert pm.plugins["half"].error == "ValueError: second one failed"
    assert not pm.pm.has_plugin("half")  # its other hooks are gone too


def test_registering_a_non_architecture_is_reported(install_plugin):
    install_plugin("from automed import hookimpl\n\n@hookimpl\ndef register_architectures("
                   "register):\n    register(object())\n", "odd")
    pm = PluginManager()
    pm.architectures()
    assert "not an automed.architecture.Architecture" in pm.plugins["odd"].error


def test_add_source_file_and_module(tmp_path, monkeypatch):
    path = tmp_path / "my_arch.py"
    path.write_text(TOY_PLUGIN.format(arch="local"))
    (tmp_path / "my_module_plugin.py").write_text(TOY_PLUGIN.format(arch="frommodule"))
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = PluginManager()
    assert pm.add_source(str(path)) == "my_arch"
    assert pm.add_source(str(path)) == "my_arch"  # twice is once
    assert pm.add_source("my_module_plugin") == "my_module_plugin"
    assert {"local", "frommodule"} <= set(pm.architectures())
    assert pm.plugins["my_arch"].module == str(path)


def test_two_files_with_one_name_are_both_reported(tmp_path):
    for folder, arch in (("a", "arch_a"), ("b", "arch_b")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text(TOY_PLUGIN.format(arch=arch))
    pm = PluginManager()
    pm.add_source(str(tmp_path / "a" / "model.py"))
    with pytest.raises(PluginError, match="plugin name 'model' is already taken"):
        pm.add_source(str(tmp_path / "b" / "model.py"), required=True)
    assert "arch_a" in pm.architectures() and "arch_b" not in pm.architectures()


def test_plugins_path_variable(tmp_path, monkeypatch):
    path = tmp_path / "env_arch.py"
    path.write_text(TOY_PLUGIN.format(arch="fromenv"))
    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", f"{path}:{tmp_path / 'missing.py'}")
    pm = PluginManager()
    assert "fromenv" in pm.architectures()
    assert "does not exist" in pm.plugins["missing"].error  # listed, not fatal


def test_explicit_sources_fail_loudly(tmp_path):
    pm = PluginManager()
    with pytest.raises(ConfigError, match="plugin file .*nope.py does not exist"):
        pm.add_source(str(tmp_path / "nope.py"), required=True)
    bad = tmp_path / "bad.py"
    bad.write_text("1 / 0\n")
    with pytest.raises(PluginError, match="bad.py failed to import: ZeroDivisionError"):
        pm.add_source(str(bad), required=True)


def test_architectures_of_resolves_names_files_and_errors(tmp_path, install_plugin):
    install_plugin(TOY_PLUGIN.format(arch="toy"), "toy-plugin")
    path = tmp_path / "file_arch.py"
    path.write_text(TOY_PLUGIN.format(arch="filed"))
    pm = PluginManager()
    assert list(pm.architectures_of("toy-plugin")) == ["toy"]
    assert list(pm.architectures_of("cnn")) == ["cnn"]
    assert list(pm.architectures_of(str(path))) == ["filed"]
    with pytest.raises(PluginError, match="no plugin, architecture, file or module named"):
        pm.architectures_of("nothing_like_this")
    with pytest.raises(PluginError, match="registers no architectures"):
        pm.architectures_of("npz")


# One rule for every way a plugin breaks: named on the command line (--plugin), it is refused
# in one line before any work; from AUTOMED_PLUGINS_PATH (or installed), it is listed as broken
# and skipped with a warning.
RAISING_HOOK = '''
from automed import hookimpl

@hookimpl
def register_architectures(register):
    raise RuntimeError("boom in register")
'''
BREAKS = {
    "import": ("import nonexistent_mod_xyz\n", "ModuleNotFoundError"),
    "raising-hook": (RAISING_HOOK, "RuntimeError: boom in register"),
    "duplicate-name": (TOY_PLUGIN.format(arch="cnn"),
                       "architecture 'cnn' is a built-in architecture's name"),
    "misspelt-hook": (MISSPELT_HOOK, "unknown hook register_architecture"),
}


@pytest.mark.parametrize("kind", list(BREAKS))
def test_a_broken_plugin_named_with_plugin_is_refused(tmp_path, capsys, kind):
    code, error = BREAKS[kind]
    path = tmp_path / "broken_plugin.py"
    path.write_text(code)
    pm = PluginManager()
    with pytest.raises(PluginError, match=f"plugin {path} failed to .*{error}") as exc:
        pm.add_source(str(path), required=True)
    assert "\n" not in str(exc.value) and str(exc.value).endswith("drop it from --plugin")
    assert "warning" not in capsys.readouterr().err  # one line: the refusal
    assert "cnn" in pm.architectures()  # the rest still works


@pytest.mark.parametrize("kind", list(BREAKS))
def test_the_same_plugin_from_the_environment_is_listed_and_skipped(tmp_path, capsys,
                                                                      monkeypatch, kind):
    code, error = BREAKS[kind]
    path = tmp_path / "broken_plugin.py"
    path.write_text(code)
    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", str(path))
    pm = PluginManager()
    assert "cnn" in pm.architectures() and "mlp" in pm.architectures()
    assert pm.plugins["broken_plugin"].broken
    assert "plugin 'broken_plugin' skipped" in capsys.readouterr().err
    # ... and naming it with --plugin as well still refuses it
    with pytest.raises(PluginError, match=error):
        pm.add_source(str(path), required=True)


BAD_LOADER = '''
from pathlib import Path
from automed import hookimpl
from automed.data.loaders.base import Loader


class Bad(Loader):
    name = "badload"
    suffixes = (".bad",)

    def load(self, path, **options):
        {body}


@hookimpl
def register_loaders(register):
    register(Bad())
'''


@pytest.mark.parametrize("body, said", [
    ("raise KeyError('x')", "failed on .*d.bad: KeyError: 'x'; fix the loader"),
    ("return {'x': 1}", "returned dict for .*d.bad, not LoadedData"),
])
def test_a_faulty_loader_plugin_is_named_in_one_line(tmp_path, monkeypatch, capsys, body, said):
    """QA: a loader plugin whose load() raised, or returned a dict, ended the search in a
    traceback (exit 1) naming no plugin."""
    from clirun import run_cli

    plugin = tmp_path / "badloader.py"
    plugin.write_text(BAD_LOADER.format(body=body))
    (tmp_path / "d.bad").write_text("anything\n")
    code, out, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "d.bad"),
                             "--plugin", str(plugin), "--workers", "0", "--storage",
                             f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"loader 'badload' ({plugin})" in errors[0], err
    import re

    assert re.search(said, errors[0]), errors[0]


@pytest.mark.parametrize("name, modalities, said", [
    ("Bad Mod", '{"signal"}', "architecture name 'Bad Mod' is no word"),
    ("badmod", '{"signals"}', "declares unknown modality 'signals'; use image"),
])
def test_an_architecture_with_a_bad_name_or_modality_breaks_its_plugin(install_plugin, name,
                                                                       modalities, said):
    """QA: name "Bad Mod" and modalities {"signals"} loaded silently; --arch then said the
    family did not accept signal data, hiding the typo (only `plugins check` told)."""
    code = TOY_PLUGIN.format(arch=name).replace('frozenset({"signal"})',
                                                f"frozenset({modalities})")
    assert f"frozenset({modalities})" in code
    install_plugin(code, "typo")
    pm = PluginManager()
    assert name not in pm.architectures()
    assert said in pm.plugins["typo"].error


def test_a_model_of_an_installed_plugin_names_its_distribution_where_that_is_missing(
        install_plugin, demo_signal, tmp_path, monkeypatch):
    # QA: an exported model whose architecture came from an installed plugin said only "give
    # the plugin that provides it with --plugin FILE.py" where that plugin was not installed.
    from automed.plugin_manager import reset_plugin_manager
    from automed.results.artifact import LoadedModel, MissingArchitecture
    from automed.results.model_card import export_model
    from automed.searching.runner import search
    from automed.storage import Store

    install_plugin(TOY_PLUGIN.format(arch="toy"), "toy-plugin", dist="automed-toy", version="2.1")
    reset_plugin_manager()
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    search(demo_signal, architectures=["toy"], trials=1, folds=2, storage=url, study="toy",
           bootstrap=0, artifacts=str(tmp_path / "models"))
    out = export_model(Store(url), "toy", tmp_path / "exported")
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "plugin `toy-plugin` of the distribution `automed-toy` 2.1" in card
    # QA: installed but left out by AUTOMED_LOAD_PLUGINS was told to pip install it
    monkeypatch.setenv("AUTOMED_LOAD_PLUGINS", "")
    reset_plugin_manager()
    with pytest.raises(MissingArchitecture, match=r"of the installed distribution automed-toy, "
                       r"which AUTOMED_LOAD_PLUGINS='' leaves out: add toy-plugin to it"):
        LoadedModel(out)
    # ... and a resume of its study says so too (QA: "unknown architecture toy; available")
    from automed.errors import ConfigError

    resume = dict(architectures=["toy"], trials=2, folds=2, storage=url, study="toy",
                  bootstrap=0)
    with pytest.raises(ConfigError, match=r"unknown architecture toy; study 'toy' searched "
                       r"it: .*AUTOMED_LOAD_PLUGINS='' leaves out: add toy-plugin to it"):
        search(demo_signal, **resume)
    install_plugin.__self__.entry_points.clear()  # another machine: not installed there
    reset_plugin_manager()
    with pytest.raises(MissingArchitecture, match=r"plugin 'toy-plugin' of the distribution "
                       r"automed-toy 2\.1: install it \(pip install automed-toy==2\.1\)"):
        LoadedModel(out)
    with pytest.raises(ConfigError, match=r"unknown architecture toy; study 'toy' searched "
                       r"it: .*install it \(pip install automed-toy==2\.1\)"):
        search(demo_signal, **resume)
    # a resume that names no --arch says it too (review: "give the same --arch")
    with pytest.raises(ConfigError, match=r"study 'toy' searched the architectures toy, this "
                       r"run .*; toy: it came from .*\(pip install automed-toy==2\.1\)"):
        search(demo_signal, **{**resume, "architectures": None})
    # QA: another version of the package, with other code, changed every prediction unsaid
    monkeypatch.delenv("AUTOMED_LOAD_PLUGINS")
    install_plugin(TOY_PLUGIN.format(arch="toy").replace("linear toy", "linear toy 2.2"),
                   "toy-plugin", dist="automed-toy", version="2.2")
    reset_plugin_manager()
    from automed.errors import PluginWarning

    with pytest.warns(PluginWarning, match=r"architecture 'toy' comes from automed-toy 2\.2 "
                      r"here, the model was searched with 2\.1: its predictions may differ .*"
                      r"pip install automed-toy==2\.1"):
        LoadedModel(out)


_FAMILY = TOY_PLUGIN.format(arch="fam")


@pytest.mark.parametrize(("code", "said"), [
    # QA: each of these loaded as a plugin that registered nothing, or with advice that missed
    (_FAMILY.replace("@hookimpl\n", ""), "registers no architectures or loaders (hooks: "
     "none); mark its register_architectures or register_loaders function with @hookimpl"),
    (_FAMILY.replace("register(Toy())", "return [Toy()]"),
     "register_architectures returned list; call register(architecture) for each"),
    (_FAMILY.replace("register(Toy())", "register(Toy)"),
     "registered the class Toy, not an instance; call register(Toy())"),
    (_FAMILY.replace('name = "fam"', 'name = "mlp"'),
     "architecture 'mlp' is a built-in architecture's name; rename the one plugin"),
    (_FAMILY.replace("register_architectures(register)", "register_architectures(reg)"),
     "Argument(s) {'reg'} are declared in the hookimpl but can not be found in the hookspec"),
])
def test_a_plugin_file_that_would_be_searched_without_its_family_is_refused(tmp_path, code,
                                                                             said):
    path = tmp_path / "famplugin.py"
    path.write_text(code)
    with pytest.raises(PluginError) as refused:
        PluginManager().add_source(str(path), required=True)
    assert said in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_misspelt_method_is_said_and_a_helper_beside_the_real_one_is_not(tmp_path, capsys):
    # QA: a misspelt training_space silently trained the default epochs and `plugins check`
    # said ok; review: a refusal broke plugins with helpers such as preprocess or builds
    from automed.testing import check_architecture

    path = tmp_path / "famplugin.py"
    path.write_text(_FAMILY.replace("def training_space", "def trainig_space").replace(
        "def default_params", "def default_param"))
    pm = PluginManager()
    pm.add_source(str(path), required=True)
    said = capsys.readouterr().err
    assert ("warning: architecture 'fam' defines default_param (did you mean default_params?), "
            "trainig_space (did you mean training_space?); automed never calls") in said
    [failure] = [f for f in check_architecture(pm.architectures()["fam"]) if f.check == "methods"]
    assert "trainig_space (did you mean training_space?)" in failure.message
    helper = tmp_path / "helpers.py"
    helper.write_text(_FAMILY.replace('name = "fam"', 'name = "fam2"').replace(
        "    def build(self, params, spec):",
        "    def preprocess(self, x):\n        return x\n\n"
        "    def builds(self):\n        return 1\n\n    def build(self, params, spec):"))
    pm.add_source(str(helper), required=True)
    assert "fam2" in pm.architectures() and "'fam2'" not in capsys.readouterr().err


def test_the_plugins_every_search_has_are_never_taken_for_another_searchs(tmp_path,
                                                                          monkeypatch):
    # review: --arch hf (an optional built-in) was refused as "not given to this search", and
    # an $AUTOMED_PLUGINS_PATH plugin named once with --plugin left every later search
    path = tmp_path / "famplugin.py"
    path.write_text(_FAMILY)
    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", str(path))
    pm = PluginManager()
    assert "fam" in pm.architectures_for("signal", None, set())
    pm.add_source(str(path), required=True)  # named again, as --plugin does
    assert "fam" in pm.architectures_for("signal", None, set())
    assert list(pm.architectures_for("text", ["hf"], set())) == ["hf"]
