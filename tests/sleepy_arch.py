"""A tiny signal model that can be told to hang in one ``build`` (loaded as a plugin file).

With ``AUTOMED_TEST_SLEEP_AT=N`` the N-th ``build`` in a process prints a marker line to stderr
and sleeps, so a fault test knows the process is inside a candidate (or the refit) and can
interrupt or kill it there. With 2 folds and no pruning, builds 1-2 are candidate #0, 3-4
candidate #1, and build ``2 * trials + 1`` is the refit.
"""

from __future__ import annotations

import math
import os
import sys
import time

from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl

MARKER = "automed-test: sleeping in build"
_builds = 0


class Sleepy(Architecture):
    name = "sleepy"
    modalities = frozenset({"signal"})

    def search_space(self, trial, spec):
        return {"hidden": trial.suggest_categorical("hidden", [4, 8, 16])}

    def training_space(self, trial, spec):
        return {"epochs": 1, "batch_size": 16, "lr": trial.suggest_float("lr", 1e-3, 1e-2),
                "optimizer": "adamw", "weight_decay": 0.0, "augment": False}

    def build(self, params, spec):
        global _builds
        _builds += 1
        if str(_builds) == os.environ.get("AUTOMED_TEST_SLEEP_AT"):
            print(f"{MARKER} {_builds}", file=sys.stderr, flush=True)
            time.sleep(300)
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(spec.input_shape),
                                                     params["hidden"]),
                             nn.ReLU(), nn.Linear(params["hidden"], spec.n_classes))


@hookimpl
def register_architectures(register):
    register(Sleepy())
