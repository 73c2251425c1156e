"""A conformance suite any architecture plugin can run: ``automed plugins check`` and pytest.

    from automed.testing import check_architecture
    failures = check_architecture(MyArch(), modality="signal")
    assert not failures, failures

Each check builds the architecture from parameters its own ``search_space`` samples (and from
its ``default_params``), then verifies the contract: every training key has a value the
training loop accepts (:mod:`automed.contract`), output shape, gradients, no NaN,
determinism under a seed, that the smallest setting stays small, and that one step of the
search's own training loop runs on each modality the architecture claims. A family with a
text preprocessor of its own (:meth:`Architecture.preprocessor`) is checked on the spec that
preprocessor gives for a few example texts, without the size limit (a pretrained model's size
is not the family's choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import torch

from automed.architecture import Architecture
from automed.contract import draw_params, fixed_params, split_defaults, training_problems
from automed.spec import MODALITIES, Spec

SMALL_PARAMS_LIMIT = 5_000_000  # the smallest sampled setting must fit small medical datasets

EXAMPLE_SPECS: dict[str, list[Spec]] = {
    "image": [Spec("image", (1, 28, 28), 2), Spec("image", (3, 32, 32), 5)],
    "signal": [Spec("signal", (1, 96), 2), Spec("signal", (3, 250), 4)],
    "text": [Spec("text", (64,), 3, vocab_size=500)],
    "biosequence": [Spec("biosequence", (60,), 3, vocab_size=6, alphabet="dna"),
                    Spec("biosequence", (50,), 2, vocab_size=26, alphabet="protein")],
    "tabular": [Spec("tabular", (12,), 2), Spec("tabular", (5,), 4)],
}


EXAMPLE_TEXTS = ("patient presents with fever and cough", "chest pain on exertion",
                 "no acute findings", "chronic kidney disease stage three",
                 "left lung shows an infiltrate", "mild heart failure with normal rhythm")


def own_specs(arch: Architecture, modality: str) -> list[Spec] | None:
    """For a family with a text preprocessor of its own (say a pretrained tokenizer): the spec
    it gives on a few example texts, as the search would; None for every other family."""
    own = arch.preprocessor(modality)
    if own is None or modality != "text":
        return None
    import numpy as np

    from automed.data.dataset import Dataset

    y = np.arange(len(EXAMPLE_TEXTS)) % 3
    data = Dataset(np.array(EXAMPLE_TEXTS, dtype=object), y, ["a", "b", "c"], "text",
                   "example texts")
    return [own.spec(data)]


@dataclass
class Failure:
    architecture: str
    modality: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.architecture} [{self.modality}] {self.check}: {self.message}"


def example_batch(spec: Spec, batch: int = 4, seed: int = 0) -> torch.Tensor:
    """A random input batch shaped as ``spec`` says (token ids for token modalities)."""
    g = torch.Generator().manual_seed(seed)
    if spec.vocab_size is not None:
        x = torch.randint(1, spec.vocab_size, (batch, *spec.input_shape), generator=g)
        x[:, -3:] = 0  # some padding, as real batches have
        return x
    return torch.randn((batch, *spec.input_shape), generator=g)


def labelled_params(arch: Architecture, spec: Spec, n: int = 3, seed: int = 0
                    ) -> list[tuple[str, dict]]:
    """``(label, params)`` for the search's first candidate and ``n`` draws from the space.

    The default set is what the search's first candidate for ``arch`` runs: ``default_params``
    queued and drawn as the search does it.
    Draws come from a :class:`optuna.samplers.RandomSampler` in an in-memory study, through
    the same family-local trial the search hands to ``search_space``/``training_space``.
    """
    from automed.architecture import PrefixedTrial
    from automed.searching.study import enqueue_defaults

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    defaults = arch.default_params(spec)
    if defaults:
        if not isinstance(defaults, dict):
            raise TypeError(f"default_params returned {type(defaults).__name__}, not a dict")
        # Queued and drawn exactly as the search does it (values outside the space ride along
        # as fixed parameters), so what is checked is what the first candidate runs.
        enqueue_defaults(study, [(arch.name, *split_defaults(arch, spec, defaults))])
        trial = study.ask()
        out.append(("default_params", draw_params(arch, PrefixedTrial(trial, arch.name), spec,
                                                  fixed_params(trial))))
    for i in range(n):
        trial = study.ask()
        out.append((f"sampled set {i + 1}", draw_params(arch, PrefixedTrial(trial, arch.name),
                                                        spec)))
    return out


def sample_params(arch: Architecture, spec: Spec, n: int = 3, seed: int = 0) -> list[dict]:
    """Parameter sets drawn from the architecture's own search space (plus its defaults)."""
    return [params for _, params in labelled_params(arch, spec, n, seed)]


def _train_one_step(arch: Architecture, spec: Spec, params: dict[str, Any]) -> None:
    """Build and train one optimisation step through the search's own training loop."""
    from automed.searching.training import fit_model, predict_proba

    n = 8
    x = example_batch(spec, batch=n, seed=1)
    y = torch.arange(n) % spec.n_classes
    torch.manual_seed(0)
    model = arch.build(dict(params), spec)
    fit_model(model, x, y, {**params, "epochs": 1}, spec, seed=0)
    predict_proba(model, x, n_classes=spec.n_classes)


def _check_one(arch: Architecture, spec: Spec, params: dict[str, Any]) -> list[str]:
    problems = []
    torch.manual_seed(0)
    model = arch.build(dict(params), spec)  # a copy, as the search gives
    if not isinstance(model, torch.nn.Module):
        return [f"build returned {type(model).__name__}, not a torch.nn.Module"]
    x = example_batch(spec)
    # Determinism first, before a train-mode pass moves BatchNorm statistics.
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    if not isinstance(a, torch.Tensor):
        return [f"forward returned a {type(a).__name__}, not a logits tensor of shape "
                f"{(x.shape[0], spec.n_classes)}; return the logits alone"]
    if not a.is_floating_point():
        return [f"forward returned {a.dtype} logits; return floating-point logits (no argmax, "
                "round or .long())"]
    # NaN == NaN for these two: a model giving NaN is reported as such below, not as random
    if not torch.allclose(a, b, atol=1e-5, equal_nan=True):
        problems.append("eval-mode output differs between two identical calls")
    torch.manual_seed(0)
    again = arch.build(dict(params), spec).eval()
    with torch.no_grad():
        if not torch.allclose(again(x), a, atol=1e-5, equal_nan=True):
            problems.append("two builds under the same seed give different models")
    model.train()
    out = model(x)
    if tuple(out.shape) != (x.shape[0], spec.n_classes):
        return [f"output shape {tuple(out.shape)} != {(x.shape[0], spec.n_classes)} "
                f"with params {params}"]
    if tuple(a.shape) != (x.shape[0], spec.n_classes):  # QA: checked in train mode only
        return [f"eval-mode output shape {tuple(a.shape)} != {(x.shape[0], spec.n_classes)} "
                f"with params {params}"]
    if not torch.isfinite(out).all():
        problems.append(f"non-finite output with params {params}")
    loss = torch.nn.functional.cross_entropy(out, torch.arange(x.shape[0]) % spec.n_classes)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if not grads or all(g is None or float(g.abs().sum()) == 0 for g in grads):
        problems.append("no gradient reaches the parameters")
    elif any(g is not None and not torch.isfinite(g).all() for g in grads):
        problems.append("non-finite gradients")
    return problems


def check_architecture(arch: Architecture, modality: str | None = None, *,
                       specs: list[Spec] | None = None, n_samples: int = 3) -> list[Failure]:
    """Run every check for each modality ``arch`` claims (or just ``modality``)."""
    failures: list[Failure] = []
    if not arch.name or not arch.name.replace("_", "").replace("-", "").isalnum():
        failures.append(Failure(arch.name or "?", "-", "name",
                                "name must be a non-empty word (letters, digits, - or _)"))
    from automed.plugin_manager import _misspelt_methods

    misspelt = _misspelt_methods(arch, Architecture)
    if misspelt:  # QA: `plugins check` said ok of a misspelt training_space
        failures.append(Failure(arch.name, "-", "methods", f"defines {misspelt}; automed "
                                "never calls a method of that name"))
    modalities = [modality] if modality else sorted(arch.modalities)
    if not modalities:
        failures.append(Failure(arch.name, "-", "modalities", "declares no modalities"))
    for mod in sorted(set(modalities) - set(MODALITIES)):
        failures.append(Failure(arch.name, mod, "modalities",
                                f"unknown modality; use one of {', '.join(MODALITIES)}"))
    for mod in modalities:
        own = None
        if specs is None:
            try:
                own = own_specs(arch, mod)
            # a missing pretrained model; SystemExit: a plugin's sys.exit (QA: the check
            # ended with exit code 3, silently)
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                failures.append(Failure(arch.name, mod, "preprocessor",
                                        f"{type(exc).__name__}: {exc}"))
                continue
        mod_specs = specs or own or EXAMPLE_SPECS.get(mod, [])
        for spec in mod_specs:
            try:
                labelled = labelled_params(arch, spec, n=n_samples)
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                failures.append(Failure(arch.name, mod, "search_space", repr(exc)))
                continue
            sizes = []
            for label, params in labelled:
                if label == "default_params":
                    for key, value in arch.default_params(spec).items():
                        if key not in params or params[key] != value:
                            failures.append(Failure(
                                arch.name, mod, "default_params",
                                f"{key}={value!r} would run as {params.get(key, '(absent)')!r}"))
                for problem in training_problems(params):
                    failures.append(Failure(arch.name, mod, "training contract",
                                            f"{label}: {problem}"))
                try:
                    for problem in _check_one(arch, spec, params):
                        failures.append(Failure(arch.name, mod, "contract", problem))
                    model = arch.build(dict(params), spec)
                    sizes.append(sum(p.numel() for p in model.parameters()))
                except (Exception, SystemExit) as exc:  # noqa: BLE001
                    failures.append(Failure(arch.name, mod, "build/forward",
                                            f"{type(exc).__name__}: {exc} (params {params})"))
                    continue
                if spec is mod_specs[0] and not training_problems(params):
                    try:  # one step through the real training loop, on the first spec
                        _train_one_step(arch, spec, params)
                    except (Exception, SystemExit) as exc:  # noqa: BLE001
                        failures.append(Failure(arch.name, mod, "train",
                                                f"{label}: {type(exc).__name__}: {exc}"))
            # A pretrained model's size is the model's, not a choice the family's space makes.
            if sizes and min(sizes) > SMALL_PARAMS_LIMIT and own is None:
                failures.append(Failure(arch.name, mod, "size",
                                        f"smallest sampled model has {min(sizes):,} parameters "
                                        f"(limit {SMALL_PARAMS_LIMIT:,})"))
    # A fault of the family itself fails every example input alike: say it once (QA: the same
    # line came once per example spec).
    return list({(f.modality, f.check, f.message): f for f in failures}.values())


def check_plugin(target: str, *, n_samples: int = 3,
                 data: str | None = None) -> dict[str, list[Failure]]:
    """Check every architecture and loader ``target`` names: a plugin, an architecture, a file
    or module. A loader is checked for its declarations, and with ``data`` (a file or folder
    it reads) by reading it as a search would.

    Returns the failures per architecture (``"loader NAME"`` for a loader; an empty list means
    it passed); raises :class:`automed.errors.PluginError` when ``target`` cannot be loaded or
    registers neither.
    """
    from automed.plugin_manager import get_plugin_manager

    archs, loaders = get_plugin_manager().components_of(target)
    if data is not None and not loaders:
        from automed.errors import ConfigError

        raise ConfigError(f"--data is read by a plugin's loaders; {target} registers none "
                          "(drop --data)")
    out = {name: check_architecture(arch, n_samples=n_samples)
           for name, arch in sorted(archs.items())}
    for name, loader in sorted(loaders.items()):
        out[f"loader {name}"] = check_loader(loader, data)
    return out


LOADER_OPTIONS = frozenset({"label_col", "group_col", "text_col", "sequence_col", "id_col"})


def check_loader(loader: Any, data: str | None = None) -> list[Failure]:
    """A loader's declarations (suffixes, modalities, options: what ``find_loader`` and
    ``load_data`` rely on), and with ``data`` a read of that file through ``load_data``:
    the search's own checks of what it returns (LoadedData, two classes, finite values)."""
    name = str(getattr(loader, "name", "?"))
    failures: list[Failure] = []

    def fail(check: str, message: str) -> None:
        failures.append(Failure(name, "-", check, message))

    suffixes = getattr(loader, "suffixes", ())
    if not isinstance(suffixes, (tuple, list, frozenset, set)) or not all(
            isinstance(x, str) and x.startswith(".") and x == x.lower() for x in suffixes):
        fail("suffixes", f"{suffixes!r} is not a tuple of lower-case endings like '.npy'")
    if not suffixes and not getattr(loader, "directories", False):
        fail("suffixes", "claims no suffix and no folders: only --format could choose it")
    unknown = sorted(set(getattr(loader, "modalities", ()) or ()) - set(MODALITIES))
    if unknown:
        fail("modalities", f"unknown {', '.join(map(repr, unknown))}; use "
                           f"{', '.join(MODALITIES)}")
    extra = sorted(set(getattr(loader, "options", ()) or ()) - LOADER_OPTIONS)
    if extra:
        fail("options", f"unknown {', '.join(extra)}; a loader honours some of "
                        f"{', '.join(sorted(LOADER_OPTIONS))}")
    for method in ("sniff", "load"):
        if not callable(getattr(loader, method, None)):
            fail(method, f"has no {method}() method; subclass automed.data.loaders.base.Loader")
    if data is not None and not failures:
        from pathlib import Path

        from automed.data.loaders import load_data
        from automed.errors import AutomedError

        try:
            load_data(data, format=name)
        except AutomedError as exc:
            fail("load", str(exc))
        else:
            if not loader.sniff(Path(data)):
                fail("sniff", f"reads {data} with --format {name} but does not claim it "
                              "(sniff() is False): a search without --format picks another")
    return failures
