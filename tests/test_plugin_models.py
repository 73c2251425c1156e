"""Models whose architecture came from ``search --plugin``, and raw samples in the Python API.

One tiny search with the plugin file ``tiny_arch.py`` on single-channel signals serves every
test: ``predict_proba`` takes (N, L) signals as ``automed predict`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from automed.errors import DataError
from automed.plugin_manager import get_plugin_manager
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
