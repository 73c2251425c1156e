"""Models whose architecture came from ``search --plugin``, and raw samples in the Python API.

One tiny search with the plugin file ``tiny_arch.py`` on single-channel signals serves every
test: predict and export name the study's --plugin when it is missing and work with it, and
``predict_proba`` takes (N, L) signals as ``automed predict`` does.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from clirun import run_cli

from automed.errors import DataError, PluginError
from automed.plugin_manager import get_plugin_manager, reset_plugin_manager
from automed.results.artifact import LoadedModel
from automed.searching.runner import search

TINY = str(Path(__file__).with_name("tiny_arch.py"))
N, L = 24, 16


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin_models")
    rng = np.random.default_rng(0)
    y = np.arange(N) % 2
    x = rng.normal(size=(N, 1, L)).astype(np.float32) + y[:, None, None]
    np.savez(root / "sig.npz", x=x, y=y)
    np.savez(root / "sig_x.npz", x=x[:, 0, :])  # (N, L): what a table of rows gives
    storage = f"sqlite:///{root / 'studies.db'}"
    result = search(root / "sig.npz", study="tiny", storage=storage, plugins=[TINY],
                    architectures=["tinymlp"], trials=1, folds=2, max_epochs=1, bootstrap=0,
                    ensemble=False, seed=0)
    return root, storage, result, x


def _cli(monkeypatch, capsys, *argv: str) -> tuple[int | None, str, str]:
    reset_plugin_manager()  # a fresh process: only installed plugins
    return run_cli(monkeypatch, capsys, *argv)


def test_predict_and_export_name_the_study_plugin_when_it_is_missing(study, monkeypatch,
                                                                    capsys, tmp_path):
    root, storage, _, _ = study
    for argv in (["predict", str(root / "sig.npz")], ["export", "-o", str(tmp_path / "m")]):
        code, out, err = _cli(monkeypatch, capsys, *argv, "--study", "tiny",
                              "--storage", storage)
        assert code not in (0, None) and out == ""
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, err
        assert "'tinymlp'" in lines[0] and f"--plugin {shlex.quote(TINY)}" in lines[0]
        assert "AUTOMED_PLUGINS_PATH" in lines[0]


def test_predict_and_export_load_a_plugin_given_with_plugin(study, monkeypatch, capsys,
                                                           tmp_path):
    root, storage, result, x = study
    code, out, err = _cli(monkeypatch, capsys, "predict", str(root / "sig.npz"), "--study",
                          "tiny", "--storage", storage, "--plugin", TINY)
    assert code in (0, None), err
    assert len(out.splitlines()) == N + 1
    exported = tmp_path / "exported"
    code, _, err = _cli(monkeypatch, capsys, "export", "-o", str(exported), "--study", "tiny",
                        "--storage", storage, "--plugin", TINY)
    assert code in (0, None), err
    # An exported folder, say on another machine: it carries the plugin file (a copy, never
    # imported unasked), the error names it, the card says so, and with it the model loads.
    carried = exported / "plugins" / "tiny_arch.py"
    assert carried.read_bytes() == Path(TINY).read_bytes()
    assert "`plugins/tiny_arch.py`" in (exported / "MODEL_CARD.md").read_text()
    code, out, err = _cli(monkeypatch, capsys, "predict", str(root / "sig.npz"),
                          "--model", str(exported))
    assert code not in (0, None) and "tinymlp" in err
    assert f"the export carries its search's plugin file(s): give --plugin {carried}" in err
    code, out, err = _cli(monkeypatch, capsys, "predict", str(root / "sig.npz"),
                          "--model", str(exported), "--plugin", str(carried))
    assert code in (0, None), err
    assert len(out.splitlines()) == N + 1
    # A second export into the same folder replaces the first, plugins included.
    code, _, err = _cli(monkeypatch, capsys, "export", "-o", str(exported), "--study", "tiny",
                        "--storage", storage, "--plugin", TINY)
    assert code in (0, None), err
    assert sorted(p.name for p in (exported / "plugins").iterdir()) == ["tiny_arch.py"]


def test_a_broken_plugin_given_to_predict_is_refused_in_one_line(study, monkeypatch, capsys,
                                                                 tmp_path):
    root, storage, _, _ = study
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    code, out, err = _cli(monkeypatch, capsys, "predict", str(root / "sig.npz"), "--study",
                          "tiny", "--storage", storage, "--plugin", str(bad))
    assert code not in (0, None) and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "bad.py failed to import: ModuleNotFoundError" in err and "--plugin" in err, err


def test_predict_proba_takes_signals_without_a_channel_axis(study):
    # (N, L) rows are single-channel signals, as `automed predict` reads them from a file.
    _, _, result, x = study
    get_plugin_manager().add_source(TINY, required=True)  # as the search had it
    expected = result.predict_proba(x)
    assert np.allclose(result.predict_proba(x[:, 0, :]), expected)
    model = LoadedModel(result.artifact)
    assert np.allclose(model.predict_proba(x[:, 0, :]), expected)
    with pytest.raises(DataError, match=r"shape \(8,\) but the model expects \(1, 16\)"):
        model.predict_proba(x[:, 0, :8])
    # QA: a list of series was told "the samples encode to shape", one series "shape ()"
    assert np.allclose(model.predict_proba(x[:, 0, :].tolist()), expected)
    with pytest.raises(DataError, match=r"shape \(16,\), that of one sample: give a batch, "
                       r"e\.g\. x\[None\] of shape \(1, 16\)"):
        model.predict_proba(x[0, 0])
    with pytest.raises(DataError, match="a list of signals of differing sizes or non-numbers"):
        model.predict_proba([[1.0, 2.0], [1.0]])


def test_a_model_of_a_missing_plugin_names_the_fix_in_python(study):
    _, _, result, _ = study
    reset_plugin_manager()
    with pytest.raises(PluginError, match="AUTOMED_PLUGINS_PATH"):
        LoadedModel(result.artifact)


def _searched_with_a_copy(study, tmp_path) -> tuple:
    """Study "mine", searched (one candidate) with a copy of TINY: ``(data folder, the copy,
    storage, the search's keywords)``."""
    root = study[0]
    mine = tmp_path / "myarch.py"
    mine.write_bytes(Path(TINY).read_bytes())
    storage = f"sqlite:///{tmp_path / 'mine.db'}"
    common = dict(study="mine", storage=storage, plugins=[str(mine)], architectures=["tinymlp"],
                  folds=2, max_epochs=1, bootstrap=0, ensemble=False, seed=0)
    search(root / "sig.npz", trials=1, **common)
    return root, mine, storage, common


def test_export_copies_the_searched_plugin_file_not_an_edited_one(study, monkeypatch, capsys,
                                                                  tmp_path):
    # QA: export copied whatever lay at the searched path, an edited file included, and the
    # card called it the file the search was given; a moved file was dropped in silence.
    root, mine, storage, _ = _searched_with_a_copy(study, tmp_path)
    original = tmp_path / "kept" / "orig.py"
    original.parent.mkdir()
    original.write_bytes(mine.read_bytes())
    mine.write_text(mine.read_text() + "\n# edited after the search\n")
    # The searched file, given under another name: it is the one copied, under its own name.
    code, _, err = _cli(monkeypatch, capsys, "export", "-o", str(tmp_path / "a"), "--study",
                        "mine", "--storage", storage, "--plugin", str(original))
    assert code in (0, None), err
    assert (tmp_path / "a" / "plugins" / "myarch.py").read_bytes() == original.read_bytes()
    # Only the edited file: the model still loads with it, but it is not the searched code.
    code, _, err = _cli(monkeypatch, capsys, "export", "-o", str(tmp_path / "b"), "--study",
                        "mine", "--storage", storage, "--plugin", str(mine))
    assert code in (0, None), err
    assert not (tmp_path / "b" / "plugins").exists()
    assert "plugins/" not in (tmp_path / "b" / "MODEL_CARD.md").read_text()
    warning = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 2 and f"plugin file {mine} is not as the search had it" in warning[1]
    assert "architecture 'tinymlp' is built by other code here" in warning[0]


def test_an_edited_plugin_file_is_named_not_the_weights(study, monkeypatch, capsys, tmp_path):
    """QA: a --plugin file edited since the search (one more layer) made predict and export
    say the weights were not this model's and to run `automed export` again."""
    root, storage, _, _ = study
    edited = tmp_path / "tiny_arch.py"
    edited.write_text(Path(TINY).read_text().replace(
        "nn.ReLU(), nn.Linear(params[\"hidden\"], spec.n_classes))",
        "nn.ReLU(), nn.Linear(params[\"hidden\"], params[\"hidden\"]), nn.ReLU(),\n"
        "                             nn.Linear(params[\"hidden\"], spec.n_classes))"))
    assert edited.read_text() != Path(TINY).read_text()
    code, out, err = _cli(monkeypatch, capsys, "predict", str(root / "sig.npz"), "--study",
                          "tiny", "--storage", storage, "--plugin", str(edited))
    assert code not in (0, None) and out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "do not fit architecture 'tinymlp'" in lines[0], err
    assert "give the one the search used with --plugin" in lines[0]


def test_other_plugin_code_is_said_at_predict_and_refused_on_resume(study, monkeypatch, capsys,
                                                                    tmp_path):
    # QA: a --plugin file edited after the search changed every prediction without a word
    # (export had said it), and a resume trained with the edited code beside candidates of
    # the old and recorded the new file's hash as the study's
    from automed.errors import ConfigError

    root, mine, storage, common = _searched_with_a_copy(study, tmp_path)
    args = ("predict", str(root / "sig.npz"), "--study", "mine", "--storage", storage,
            "--plugin", str(mine))
    code, _, err = _cli(monkeypatch, capsys, *args)
    assert code in (0, None) and "warning" not in err, err
    mine.write_text(mine.read_text().replace("nn.ReLU()", "nn.Tanh()"))
    code, out, err = _cli(monkeypatch, capsys, *args)
    assert code in (0, None) and out
    said = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(said) == 1 and said[0].startswith(
        f"warning: architecture 'tinymlp' is built by other code here ({mine}: sha256 "), err
    assert "its predictions may differ from the search's scores; give the searched file" \
        in said[0]
    reset_plugin_manager()
    with pytest.raises(ConfigError, match=f"plugin file {mine} changed since study 'mine' was "
                       "searched .*restore the file, or give another --study name"):
        search(root / "sig.npz", trials=2, **common)


def test_a_resume_without_the_studys_plugin_names_it(study):
    # QA: "unknown architecture tinymlp; available: ..." named no plugin, unlike predict
    from automed.errors import ConfigError

    root, storage, _, _ = study
    reset_plugin_manager()
    common = dict(study="tiny", storage=storage, trials=2, folds=2, max_epochs=1, bootstrap=0,
                  ensemble=False, seed=0)
    with pytest.raises(ConfigError, match=f"unknown architecture tinymlp; study 'tiny' was "
                       f"searched with --plugin {TINY}: give it again"):
        search(root / "sig.npz", architectures=["tinymlp"], **common)
    with pytest.raises(ConfigError, match=f"study 'tiny' searched the architectures tinymlp, "
                       f"this run .*; it was searched with --plugin {TINY}: give it again"):
        search(root / "sig.npz", **common)


def test_plugin_code_that_no_longer_takes_the_params_is_named_not_the_model(study, monkeypatch,
                                                                            capsys, tmp_path):
    # QA: a plugin now reading params["w"] made predict call the model folder damaged and say
    # to export it again, which cannot help
    root, storage, _, _ = study
    renamed = tmp_path / "tiny_arch.py"
    renamed.write_text(Path(TINY).read_text().replace('params["hidden"]', 'params["w"]'))
    assert renamed.read_text() != Path(TINY).read_text()
    code, out, err = _cli(monkeypatch, capsys, "predict", str(root / "sig.npz"), "--study",
                          "tiny", "--storage", storage, "--plugin", str(renamed))
    assert code not in (0, None) and out == ""
    assert ("error: architecture 'tinymlp' as its plugin builds it now cannot take this "
            "model's params (KeyError: 'w'); if its plugin changed since the search, give the "
            "one the search used with --plugin") in err, err


def test_a_plugin_none_of_whose_families_takes_the_data_is_said(study, tmp_path):
    # QA: an image-only family given with --plugin for signals was left out without a word
    import warnings

    from automed.errors import DataWarning

    root = study[0]
    image_only = tmp_path / "image_only.py"
    image_only.write_text(Path(TINY).read_text().replace('"tinymlp"', '"imagemlp"').replace(
        'frozenset({"signal", "image"})', 'frozenset({"image"})'))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        search(root / "sig.npz", study="img", storage=f"sqlite:///{tmp_path / 'i.db'}",
               plugins=[str(image_only)], architectures=["mlp"], trials=1, folds=2,
               max_epochs=1, bootstrap=0, ensemble=False, seed=0)
    lines = [str(w.message) for w in said if issubclass(w.category, DataWarning)]
    assert f"plugin {image_only}: its architectures (imagemlp: image) do not take signal " \
        "data, so none of them is searched" in lines, lines


def test_predict_on_an_empty_folder_says_it_is_empty(study, monkeypatch, capsys, tmp_path):
    # QA: "no class sub-folders found; put the images of each class in a sub-folder", though
    # predict needs no class folders
    root, storage, _, _ = study
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, out, err = _cli(monkeypatch, capsys, "predict", str(tmp_path / "empty"), "--study",
                          "tiny", "--storage", storage, "--plugin", TINY)
    assert code == 2 and out == ""
    assert err.strip() == f"error: {tmp_path / 'empty'}: an empty folder; give a folder of " \
        "the images (or the files) to predict"


def test_a_plugin_given_to_one_search_in_a_process_is_not_searched_by_the_next(study,
                                                                               tmp_path):
    # QA (Python API): a plugin given to one search joined every later search in the process,
    # whose study then could not resume in a fresh one
    from automed.errors import ConfigError

    root = study[0]
    common = dict(storage=f"sqlite:///{tmp_path / 'n.db'}", trials=1, folds=2, max_epochs=1,
                  bootstrap=0, ensemble=False, seed=0)
    search(root / "sig.npz", study="with", plugins=[TINY], architectures=["tinymlp"], **common)
    events = []
    search(root / "sig.npz", study="without", progress=events.append, **common)
    [start] = [e for e in events if e["event"] == "start"]
    assert "tinymlp" not in start["architectures"] and "mlp" in start["architectures"]
    with pytest.raises(ConfigError, match="architecture tinymlp comes from plugin .*tiny_arch"
                       r"\.py, which this search was not given; give it with --plugin"):
        search(root / "sig.npz", study="named", architectures=["tinymlp"], **common)
