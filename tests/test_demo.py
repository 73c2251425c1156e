"""Generated demo data: reproducible, the right shapes and balance, and loadable."""

from __future__ import annotations

import numpy as np
import pytest

from automed.data.loaders import load_data
from automed.demo import make_demo
from automed.errors import ConfigError
from automed.plugin_manager import reset_plugin_manager


@pytest.fixture(autouse=True)
def fresh_plugins():
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


@pytest.mark.parametrize("kind", ["image", "signal"])
def test_same_seed_same_bytes(tmp_path, kind):
    a = make_demo(kind, tmp_path / "a.npz", n=120, seed=3)
    b = make_demo(kind, tmp_path / "b.npz", n=120, seed=3)
    c = make_demo(kind, tmp_path / "c.npz", n=120, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert not np.array_equal(_arrays(a)["train_images"], _arrays(c)["train_images"])


def test_image_shapes_splits_and_balance(tmp_path):
    arrays = _arrays(make_demo("image", tmp_path / "img.npz"))
    assert set(arrays) == {f"{s}_{k}" for s in ("train", "val", "test")
                           for k in ("images", "labels")}
    assert arrays["train_images"].shape == (420, 1, 28, 28)
    assert arrays["val_images"].shape == (60, 1, 28, 28)
    assert arrays["test_images"].shape == (120, 1, 28, 28)
    assert arrays["train_images"].dtype == np.uint8
    assert arrays["test_labels"].shape == (120, 1)
    y = np.concatenate([arrays[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    assert set(y.tolist()) == {0, 1} and y.sum() == 210  # 35% of 600
    assert 0.25 < arrays["test_labels"].mean() < 0.45
    x = arrays["train_images"][:, 0].astype(np.float64)
    assert 20 < x.std() < 80  # a real image, not flat or saturated
    # Opacities are bright blobs inside the lungs: the lung fields of class 1 are brighter.
    lungs = np.s_[:, 8:20, 5:23]
    yt = arrays["train_labels"].ravel()
    assert x[yt == 1][lungs].mean() > x[yt == 0][lungs].mean() + 3


def test_signal_shapes_and_st_elevation(tmp_path):
    arrays = _arrays(make_demo("signal", tmp_path / "sig.npz", n=300))
    x, y = arrays["train_images"], arrays["train_labels"].ravel()
    assert x.shape == (210, 1, 128) and x.dtype == np.float32
    assert arrays["test_images"].shape == (60, 1, 128)
    assert 0.25 < y.mean() < 0.45
    # The R peak is the tallest point, and the ST segment sits higher in class 1.
    assert np.all(np.abs(x[:, 0].argmax(axis=1) - 50) <= 6)
    st = x[:, 0, 60:72].mean(axis=1)
    assert st[y == 1].mean() > st[y == 0].mean() + 0.03


@pytest.mark.parametrize("kind,shape", [("image", (1, 28, 28)), ("signal", (1, 128))])
def test_loads_through_load_data(tmp_path, kind, shape):
    data = load_data(make_demo(kind, tmp_path / f"{kind}.npz", n=100))
    assert data.train.modality == kind and data.train.classes == ["0", "1"]
    assert len(data.train) == 80 and len(data.test) == 20  # train + val merged
    assert data.train.x.shape[1:] == shape


def test_default_path_and_bad_kind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = make_demo("signal", n=40)
    assert path == tmp_path.joinpath("automed_demo_signal.npz").relative_to(tmp_path)
    assert (tmp_path / "automed_demo_signal.npz").is_file()
    with pytest.raises(ConfigError, match="unknown demo kind 'audio'"):
        make_demo("audio")
