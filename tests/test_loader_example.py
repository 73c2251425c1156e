"""examples/single_file/npy_folder_loader.py, the loader plugin docs/plugins.md walks through:
checked, searched and predicted with as the guide says, and it leaves image folders alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from clirun import run_cli

from automed.cli import cli
from automed.errors import DataError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "single_file" / "npy_folder_loader.py"
TINY = ("--trials", "1", "--folds", "2", "--max-epochs", "1", "--bootstrap", "0",
        "--arch", "rocket")


def _signals(root: Path, length: int = 64) -> Path:
    """root/{afib,normal}/recNNN.npy: 2 classes x 6 one-channel signals, easy to tell apart."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, length)
    for name, hz in (("normal", 3.0), ("afib", 9.0)):
        (root / name).mkdir(parents=True)
        for i in range(6):
            wave = np.sin(2 * np.pi * hz * t) + 0.3 * rng.normal(size=length)
            np.save(root / name / f"rec{i:03d}.npy", wave.astype(np.float32))
    return root


def _with_example():
    from automed.plugin_manager import get_plugin_manager

    get_plugin_manager().add_source(str(EXAMPLE), required=True)  # as --plugin does


def test_plugins_check_reads_the_folder(tmp_path):
    folder = _signals(tmp_path / "ecg")
    said = CliRunner().invoke(cli, ["plugins", "check", str(EXAMPLE), "--data", str(folder)])
    assert said.exit_code == 0, said.output
    assert said.output.strip() == f"ok    loader npy-folder (read {folder})"


def test_search_and_predict_read_every_file_with_its_path_as_id(tmp_path, monkeypatch, capsys):
    folder = _signals(tmp_path / "ecg")
    db = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = run_cli(monkeypatch, capsys, "search", str(folder), "--plugin", str(EXAMPLE),
                           *TINY, "--storage", db)
    assert code in (0, None), err
    assert ("12 signal samples of 1 x 64 (channels x length), 2 classes (afib: 6, normal: 6); "
            "read as signal by the npy-folder loader") in err
    code, out, err = run_cli(monkeypatch, capsys, "predict", str(folder), "--plugin",
                             str(EXAMPLE), "--storage", db)
    assert code in (0, None), err
    rows = [line.split(",") for line in out.splitlines()]
    assert rows[0][:4] == ["split", "index", "id", "label"]
    assert [r[2] for r in rows[1:]] == [f"{c}/rec{i:03d}.npy" for c in ("afib", "normal")
                                        for i in range(6)]
    assert [r[3] for r in rows[1:]] == ["afib"] * 6 + ["normal"] * 6


def test_shapes_and_modalities(tmp_path):
    from automed.data.loaders import load_data

    _with_example()
    folder = tmp_path / "leads"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(3):  # 12-lead records, (channels, length)
            np.save(folder / name / f"{i}.npy", np.full((12, 100), i + (name == "b"), "f4"))
    (folder / "a" / "._0.npy").write_bytes(b"\0\5\0")  # a macOS AppleDouble file: ignored
    data = load_data(folder, format="npy-folder").train
    assert (data.modality, data.x.shape, data.classes) == ("signal", (6, 12, 100), ["a", "b"])
    assert data.ids.tolist() == ["a/0.npy", "a/1.npy", "a/2.npy", "b/0.npy", "b/1.npy", "b/2.npy"]
    as_images = load_data(folder, format="npy-folder", modality="image").train
    assert (as_images.modality, as_images.x.shape) == ("image", (6, 1, 12, 100))


@pytest.mark.parametrize("damage, said", [
    (lambda f: np.save(f / "normal" / "rec000.npy", np.zeros(65, "f4")),
     "has shape (65,) but"),
    (lambda f: [p.unlink() for p in (f / "afib").glob("*.npy")],
     "afib: no .npy files; add some or remove the folder"),
    (lambda f: (f / "afib" / "rec000.npy").write_bytes(b"not numpy"),
     "rec000.npy: not a readable .npy array"),
    (lambda f: [shutil.rmtree(d) for d in list(f.iterdir())],
     "ecg: no class sub-folders; put each class's .npy files in a sub-folder"),
])
def test_bad_folders_are_one_line_data_errors(tmp_path, damage, said):
    from automed.data.loaders import load_data

    _with_example()
    folder = _signals(tmp_path / "ecg")
    damage(folder)
    with pytest.raises(DataError) as caught:
        load_data(folder, format="npy-folder")
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_image_folders_stay_the_built_in_loaders(tmp_path):
    from PIL import Image

    from automed.data.loaders import find_loader, load_data

    _with_example()
    images = tmp_path / "xray"
    for name in ("normal", "pneumonia"):
        (images / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / name / f"{i}.png")
    assert find_loader(images).name == "image-folder"
    assert load_data(images).train.meta["reason"].startswith(
        "read as image by the image-folder loader")
    from automed.plugin_manager import get_plugin_manager

    assert not get_plugin_manager().loaders()["npy-folder"].sniff(images)
    assert not get_plugin_manager().loaders()["npy-folder"].sniff(EXAMPLE)  # never a file


def test_a_npy_folder_is_claimed_without_format(tmp_path):
    # QA: the built-in image-folder loader was asked about every folder first, so a plugin's
    # folder loader needed --format
    from automed.data.loaders import find_loader

    _with_example()
    assert find_loader(_signals(tmp_path / "ecg")).name == "npy-folder"


def test_predict_without_the_loader_of_a_format_study_names_its_plugin(tmp_path, monkeypatch,
                                                                      capsys):
    # QA: "unknown format 'npy-folder'; available: ..." named no plugin
    from automed.plugin_manager import reset_plugin_manager

    folder = _signals(tmp_path / "ecg")
    db = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = run_cli(monkeypatch, capsys, "search", str(folder), "--plugin", str(EXAMPLE),
                           "--format", "npy-folder", *TINY, "--storage", db)
    assert code in (0, None), err
    reset_plugin_manager()
    code, _, err = run_cli(monkeypatch, capsys, "predict", str(folder), "--storage", db)
    assert code not in (0, None)
    assert err.startswith("error: the model reads its data with the 'npy-folder' loader, "
                          "which no loaded plugin provides; it came from plugin ") and \
        f"{EXAMPLE}: give it with --plugin" in err, err


def test_an_export_carries_the_loader_plugin_that_read_its_data(tmp_path, monkeypatch,
                                                                capsys):
    # QA: a model whose folder of .npy signals the example's loader read (without --format)
    # was exported without the plugin, and predicting from the export sent the folder to the
    # built-in image-folder loader: "6 file(s) automed does not read ... save an .npz"
    import subprocess
    import sys

    folder = _signals(tmp_path / "ecg")
    plugin = tmp_path / "npy_folder_loader.py"
    shutil.copy(EXAMPLE, plugin)
    db = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = run_cli(monkeypatch, capsys, "search", str(folder), "--plugin", str(plugin),
                           *TINY, "--storage", db)
    assert code in (0, None), err
    code, _, err = run_cli(monkeypatch, capsys, "export", "--storage", db, "-o",
                           str(tmp_path / "exp"))
    assert code in (0, None), err
    assert (tmp_path / "exp" / "plugins" / "npy_folder_loader.py").is_file()
    plugin.unlink()  # the searched file is gone: the export's copy is what is left

    def predict(*more):
        return subprocess.run([sys.executable, "-m", "automed", "predict", str(folder),
                               "--model", "exp", *more], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    refused = predict()
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "error: the model reads its data with the 'npy-folder' loader, which no loaded plugin "
        "provides; the export carries its search's plugin file(s): give --plugin "
        "exp/plugins/npy_folder_loader.py")
    done = predict("--plugin", "exp/plugins/npy_folder_loader.py")
    assert done.returncode == 0, done.stderr
    rows = [line.split(",") for line in done.stdout.splitlines()]
    assert [r[2] for r in rows[1:]] == [f"{c}/rec{i:03d}.npy" for c in ("afib", "normal")
                                        for i in range(6)]
    assert [r[3] for r in rows[1:]] == [r[4] for r in rows[1:]]  # separable: all right
