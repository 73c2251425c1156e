"""The training half of the plugin contract, in one place.

Every training key a family's ``training_space`` or ``default_params`` may set is listed here
with its type, its allowed values and its default. The training loop validates against it,
``automed plugins check`` validates ``default_params`` and sampled configurations against it,
and ``docs/plugins.md`` is tested against it, so the three cannot drift apart.

A family's ``default_params`` may hold any value the training loop accepts, not only values
inside its search space: values the study's distributions cannot hold (``"adam"`` when the
space offers ``adamw``/``sgd``, ``weight_decay 0.0`` on a log scale, ``batch_size 16`` among
32/64/128) travel with the queued trial as *fixed* parameters (a user attribute) instead of
Optuna parameters, and are applied when the candidate is drawn and when it is refit.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from automed.errors import PluginError

FIXED_ATTR = "automed_fixed"  # trial user attribute: {local name: value} outside the space
# trial user attribute: {local name: value} the family's spaces returned without asking the
# study (constants such as a fixed batch size), so the refit trains what the candidate did
CONSTANT_ATTR = "automed_constants"


class ContractError(PluginError):
    """A parameter set breaks the training contract (wrong type or value of a training key)."""


@dataclass(frozen=True)
class TrainingKey:
    """One training setting: its type, its allowed values and its default."""

    name: str
    type: str  # "str", "float", "int" or "bool": the Python type the value must have
    default: Any
    doc: str
    choices: tuple | None = None
    low: float | None = None  # bounds of a number; inclusive unless the *_open flag is set
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def allowed(self) -> str:
        """The allowed values, as the docs and error messages write them."""
        if self.choices is not None:
            return "one of " + ", ".join(_show(c) for c in self.choices)
        if self.type == "bool":
            return "True or False"
        kind = "an integer" if self.type == "int" else "a number"
        lo = "" if self.low is None else f"{_show(self.low)} {'<' if self.low_open else '<='} "
        hi = "" if self.high is None else f" {'<' if self.high_open else '<='} {_show(self.high)}"
        return f"{kind}, {lo}{self.name}{hi}" if lo or hi else kind

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed for this key, or None when it is."""
        ok = _type_ok(self.type, value)
        if ok and self.choices is not None:
            ok = value in self.choices
        if ok and self.type in ("int", "float"):
            v = float(value)
            ok = math.isfinite(v)
            if ok and self.low is not None:
                ok = v > self.low if self.low_open else v >= self.low
            if ok and self.high is not None:
                ok = v < self.high if self.high_open else v <= self.high
        if ok:
            return None
        return (f"training key {self.name!r} is {value!r} ({type(value).__name__}); "
                f"allowed: {self.allowed}")


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, bool):
        return False  # True is an int to Python, never a batch size to automed
    if kind == "int":
        return isinstance(value, numbers.Integral)
    if kind == "float":
        return isinstance(value, numbers.Real)
    return isinstance(value, str)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value) if isinstance(value, (bool, float)) else str(value)


# The training keys, in the order the docs list them. The values here are the training loop's
# (automed.searching.training); the default *search* ranges are in default_training_space.
TRAINING_CONTRACT: dict[str, TrainingKey] = {k.name: k for k in (
    TrainingKey("optimizer", "str", "adamw",
                "adamw: AdamW (decoupled weight decay); adam: Adam (weight decay added to the "
                "gradient); sgd: SGD with Nesterov momentum 0.9",
                choices=("adamw", "adam", "sgd")),
    TrainingKey("lr", "float", 3e-3, "peak learning rate of the one-cycle schedule",
                low=0.0, high=1.0, low_open=True, high_open=True),
    TrainingKey("weight_decay", "float", 1e-4, "weight decay (0 turns it off)", low=0.0),
    TrainingKey("batch_size", "int", 64,
                "samples per step; any positive integer, capped at the training-set size",
                low=1),
    TrainingKey("epochs", "int", 15, "passes over the training data (capped by --max-epochs)",
                low=1),
    TrainingKey("loss", "str", "cross_entropy",
                'cross_entropy: softmax cross-entropy; squared_hinge: one-vs-rest squared hinge '
                "on the logits (LinearSVC's loss; probabilities are the softmax of the margins)",
                choices=("cross_entropy", "squared_hinge")),
    TrainingKey("label_smoothing", "float", 0.0, "label smoothing of the cross-entropy loss",
                low=0.0, high=1.0, high_open=True),
    TrainingKey("class_weight", "str", "balanced",
                'loss weights: "balanced" weighs each class by n / (k * count), "none" does not',
                choices=("none", "balanced")),
    TrainingKey("augment", "bool", False,
                "label-preserving jitter (small affine warps for images, shift and scale for "
                "signals); ignored for other modalities"),
    TrainingKey("sampler", "str", "shuffle",
                'batch order: "shuffle" is a permutation per epoch, "balanced" draws every '
                "class equally often (with replacement)",
                choices=("shuffle", "balanced")),
)}
TRAINING_KEYS = tuple(TRAINING_CONTRACT)
TRAINING_DEFAULTS: dict[str, Any] = {k.name: k.default for k in TRAINING_CONTRACT.values()}


def training_problems(params: dict[str, Any]) -> list[str]:
    """One line per training key in ``params`` whose value the training loop does not accept."""
    return [p for k, spec in TRAINING_CONTRACT.items() if k in params
            for p in [spec.problem(params[k])] if p]


def validate_training_params(params: dict[str, Any], where: str = "") -> None:
    """Raise :class:`ContractError` naming the first bad training key and its allowed values."""
    problems = training_problems(params)
    if problems:
        prefix = f"{where}: " if where else ""
        raise ContractError(prefix + problems[0] + " (see docs/plugins.md, training keys)")


# -- default parameter sets and the study's distributions ---------------------------------
class _Probe:
    """A stand-in trial that records each suggested distribution and answers the defaults."""

    number = 0

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.space: dict[str, Any] = {}

    def _answer(self, name: str, dist: Any, fallback: Any) -> Any:
        self.space[name] = dist
        return self.values.get(name, fallback)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        from optuna.distributions import IntDistribution

        return self._answer(name, IntDistribution(low, high, log=log, step=step), low)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        from optuna.distributions import FloatDistribution

        return self._answer(name, FloatDistribution(low, high, log=log, step=step), low)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        from optuna.distributions import CategoricalDistribution

        return self._answer(name, CategoricalDistribution(list(choices)), list(choices)[0])


def _contains(dist: Any, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _plain(value: Any) -> Any:
    """A JSON value for a user attribute (numpy scalars and tuples become plain values)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item")
                                 else list(v) if isinstance(v, (tuple, set)) else str(v)))


def split_defaults(arch: Any, spec: Any, defaults: dict[str, Any]
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(inside, fixed)``: default values the family's distributions hold, and the others.

    A value is *inside* when the family's ``search_space``/``training_space`` suggests that
    name and its distribution contains the value. The family's own values that are not
    (outside a range or a choice list, or a key the space never suggests) are *fixed*: they
    train as given. Training keys the family leaves out take :data:`TRAINING_DEFAULTS` where
    its space can hold them (rather than a random draw: a random "balanced" sampler wrecked
    23-class text accuracy), and are otherwise left to the space (a family that narrows
    ``batch_size`` to 16/32, or returns a constant, keeps it). When the space cannot be
    probed (it raises), every value counts as inside: the candidate then fails with the
    space's own error.
    """
    full = {**TRAINING_DEFAULTS, **defaults}
    probe = _Probe(full)
    try:
        arch.search_space(probe, spec)
        arch.training_space(probe, spec)
    except Exception:  # noqa: BLE001 - the candidate reports the family's own error
        return full, {}
    inside = {k: v for k, v in full.items() if k in probe.space and _contains(probe.space[k], v)}
    fixed = {k: _plain(v) for k, v in defaults.items() if k not in inside}
    return inside, fixed


def fixed_attrs(fixed: dict[str, Any]) -> dict[str, Any]:
    """The user attributes that carry ``fixed`` parameters on a queued trial."""
    return {FIXED_ATTR: fixed} if fixed else {}


def fixed_params(trial: Any) -> dict[str, Any]:
    """The parameters a trial holds outside Optuna's ``trial.params``, by local name: fixed
    (outside-the-space) values a queued trial carries, and constants its spaces returned."""
    return {**(trial.user_attrs.get(CONSTANT_ATTR) or {}),
            **(trial.user_attrs.get(FIXED_ATTR) or {})}


def constant_attrs(params: dict[str, Any], asked: set[str],
                   fixed: dict[str, Any]) -> dict[str, Any]:
    """The user attribute that records the drawn ``params`` the study was never asked for
    (``asked``: the local names it was asked for), fixed ones excepted."""
    constants = {k: _plain(v) for k, v in params.items() if k not in asked and k not in fixed}
    return {CONSTANT_ATTR: constants} if constants else {}


def carried_attrs(trial: Any) -> dict[str, Any]:
    """The user attributes a re-queued copy of ``trial`` must keep (its fixed parameters)."""
    return fixed_attrs(trial.user_attrs.get(FIXED_ATTR) or {})


class _FixedTrial:
    """A trial that answers fixed parameters itself and asks the study for the rest."""

    def __init__(self, trial: Any, fixed: dict[str, Any]) -> None:
        self._trial, self._fixed = trial, fixed

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        return self._trial.suggest_int(name, *args, **kwargs)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        return self._trial.suggest_float(name, *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        return self._trial.suggest_categorical(name, choices)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._trial, attr)


def draw_params(arch: Any, trial: Any, spec: Any, fixed: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """A family's full parameter set: its ``search_space`` and ``training_space`` drawn from
    ``trial`` (a family-local trial), with ``fixed`` values answered without asking the study.
    """
    fixed = dict(fixed or {})
    local = _FixedTrial(trial, fixed) if fixed else trial
    params = dict(arch.search_space(local, spec))
    try:
        params.update(arch.training_space(local, spec))
    except ValueError as exc:  # Optuna: one name drawn twice, from two different spaces
        clash = sorted(set(params) & set(TRAINING_KEYS))
        if not clash:
            raise
        raise ContractError(
            f"search_space draws {', '.join(map(repr, clash))}, training key(s) that "
            f"training_space draws too ({exc}); draw them in training_space (override it to "
            "narrow their range), not in search_space") from None
    params.update(fixed)
    return params


def trial_params(trial: Any, name: str) -> dict[str, Any]:
    """A finished trial's parameters for family ``name``: its Optuna values and fixed ones."""
    prefix = f"{name}."
    params = {k[len(prefix):]: v for k, v in trial.params.items() if k.startswith(prefix)}
    params.update(fixed_params(trial))
    return params
