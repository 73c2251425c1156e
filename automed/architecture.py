"""The architecture contract every plugin, built-in or third-party, implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from automed.spec import Spec

if TYPE_CHECKING:  # torch is heavy: the contract itself does not need it to be imported
    from torch import nn

    from automed.data.preprocess import Preprocessor

ARCHITECTURE_PARAM = "architecture"  # the study parameter that names a candidate's family


def prefixed(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """A family's own parameters as study parameters: ``{"width": 8}`` -> ``{"cnn.width": 8}``.

    With the family itself under :data:`ARCHITECTURE_PARAM`; what Optuna stores and enqueues.
    """
    return {ARCHITECTURE_PARAM: family, **{f"{family}.{k}": v for k, v in params.items()}}


def unprefixed(study_params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The inverse of :func:`prefixed`: ``(family, its own parameters)``."""
    family = study_params[ARCHITECTURE_PARAM]
    cut = len(family) + 1
    return family, {k[cut:]: v for k, v in study_params.items() if k.startswith(f"{family}.")}


class PrefixedTrial:
    """What a plugin sees of an Optuna trial: ``suggest_*`` with its names made family-local.

    ``cnn`` asking for ``"width"`` gets the study parameter ``"cnn.width"``, so two families
    can both have a ``width`` without their distributions clashing.
    """

    def __init__(self, trial: Any, prefix: str) -> None:
        self._trial, self._prefix = trial, prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}.{name}"

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._trial.suggest_int(self._name(name), *args, **kwargs)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self._trial.suggest_float(self._name(name), *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._trial.suggest_categorical(self._name(name), choices)

    @property
    def number(self) -> int:
        return self._trial.number


class Architecture(ABC):
    """A searchable family of models.

    Subclasses set ``name`` (unique; lowercase by convention) and ``modalities`` (the data
    kinds they accept) and implement two methods:

    - ``search_space(trial, spec) -> dict``: draw this family's parameters with the usual
      ``trial.suggest_*`` calls and return them. Parameter names are local to the family: the
      search prefixes them with ``name`` so that families never collide in the Optuna study.
      Training settings (learning rate, epochs, ...) are drawn by ``training_space``, which a
      family may override to narrow the defaults.
    - ``build(params, spec) -> torch.nn.Module``: a fresh, untrained model taking a batch shaped
      ``(batch, *spec.input_shape)`` and returning logits ``(batch, spec.n_classes)``.

    ``default_params(spec)`` may return a known-good starting point; the search tries it first.
    ``preprocessor(modality)`` may return a preprocessing of the family's own (say a pretrained
    model's tokenizer on the raw strings) instead of the modality's shared one.
    A plugin never touches storage or the Optuna study beyond ``trial.suggest_*``.
    """

    name: str = ""
    modalities: frozenset[str] = frozenset()
    description: str = ""
    # Train and predict under bf16 autocast on CPUs that compute bf16 natively (AMX,
    # AVX512-BF16), as every family does on a GPU. Off by default: it halved the epoch time of
    # convolutions and LSTMs on such a CPU but doubled a transformer's (BENCHMARKS.md, "bf16 on
    # the CPU"), so a family opts in where it measured faster.
    cpu_bf16: bool = False

    @abstractmethod
    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        """Draw this family's architecture parameters from ``trial``."""

    @abstractmethod
    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        """Build an untrained model for ``spec`` from ``params``."""

    def rebuild(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        """Build the model of a saved artifact, whose trained weights are loaded over it.

        The default is ``build``. A family that starts from downloaded weights overrides it to
        build the bare structure, so loading a saved model needs no download.
        """
        return self.build(dict(params), spec)

    def preprocessor(self, modality: str) -> Preprocessor | None:
        """This family's own preprocessing of ``modality`` data, or None (the default): the
        modality's shared preprocessor, which every other family gets too.

        An own preprocessor (a :class:`automed.data.preprocess.Preprocessor`) is fitted per
        fold like the shared one (the fitted tensors are cached per fold and ``key`` and reused
        by every trial that shares them),
        and saved with the model (``state``/``from_state``). Its ``spec(dataset)`` is the spec
        this family sees in ``search_space``, ``build`` and training.
        """
        return None

    def training_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        """Draw training settings; the default suits small medical datasets."""
        from automed.searching.training import default_training_space

        return default_training_space(trial, spec)

    def default_params(self, spec: Spec) -> dict[str, Any] | None:
        """A known-good full parameter set (architecture and training), or None."""
        return None

    def priority(self, spec: Spec) -> int:
        """Order of the first (default) candidates: lower runs first (default 50).

        A family that is known to be strong and cheap for ``spec`` should answer lower, so a
        short ``--timeout`` still reaches it.
        """
        return 50

    def accepts(self, modality: str) -> bool:
        return modality in self.modalities

    def __repr__(self) -> str:
        return f"<Architecture {self.name} {sorted(self.modalities)}>"
