"""The plugin's own tests: automed's conformance suite plus what is special about a TCN."""

import torch
from automed_tcn import TCNArchitecture
from automed_tcn.tcn import receptive_field

from automed import Spec
from automed.testing import check_architecture


def test_conformance():
    failures = check_architecture(TCNArchitecture(), n_samples=2)
    assert not failures, "\n".join(map(str, failures))


def test_causal_output_ignores_the_future():
    spec = Spec("signal", (1, 64), 2)
    params = dict(TCNArchitecture().default_params(spec), readout="last", dropout=0.0)
    model = TCNArchitecture().build(params, spec).eval()
    x = torch.randn(2, 1, 64)
    changed = x.clone()
    changed[..., 40:] += 5.0  # the "last" readout sees step 63, so it must change...
    body = model.blocks
    with torch.no_grad():
        a, b = body(x), body(changed)
    assert torch.allclose(a[..., :40], b[..., :40], atol=1e-5)  # ...but never steps before 40
    assert not torch.allclose(a[..., 40:], b[..., 40:])


def test_default_depth_covers_the_signal():
    spec = Spec("signal", (1, 250), 2)
    params = TCNArchitecture().default_params(spec)
    assert receptive_field(params["levels"], params["kernel"]) >= 250
