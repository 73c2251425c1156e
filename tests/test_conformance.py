"""Every registered architecture passes the conformance suite for each modality it claims."""

from __future__ import annotations

import pytest

from automed.plugin_manager import PluginManager
from automed.testing import check_architecture

_ARCHS = PluginManager(load_entry_points=False).architectures()
_CASES = [(name, modality) for name, arch in sorted(_ARCHS.items())
          for modality in sorted(arch.modalities)]


def test_all_five_modalities_are_served():
    served = {m for _, m in _CASES}
    assert served == {"image", "signal", "text", "biosequence", "tabular"}
    assert {"rnn", "lstm", "attention", "biosequence", "mlp", "cnn"} <= set(_ARCHS)


@pytest.mark.parametrize(("name", "modality"), _CASES, ids=[f"{n}-{m}" for n, m in _CASES])
def test_builtin_conforms(name, modality):
    failures = check_architecture(_ARCHS[name], modality, n_samples=2)
    assert not failures, "\n".join(map(str, failures))
