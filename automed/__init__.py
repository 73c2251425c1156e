"""automed: which deep-learning model is best for my labeled medical data?

Python API (the CLI is a thin layer over it)::

    import automed
    result = automed.search("breastmnist_28.npz", metric="f1", folds=3, trials=10)
    print(result.best, result.test_scores)

Names are imported on first use, so ``import automed`` (and the CLI) stay fast: torch and
scikit-learn load only when a search, a model or a loader needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from automed.errors import AutomedError
from automed.hookspecs import hookimpl
from automed.spec import Spec

__version__ = "0.1.0"

_LAZY = {
    "Architecture": "automed.architecture",
    "Dataset": "automed.data.dataset",
    "LoadedData": "automed.data.dataset",
    "load_data": "automed.data.loaders",
    "SearchPlan": "automed.searching.plan",
    "DataPlan": "automed.searching.plan",
    # the function itself (its signature and docstring show in a notebook), loaded on use
    "search": "automed.searching.runner",
    "SearchResult": "automed.searching.runner",
    "LoadedModel": "automed.results.artifact",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'automed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Architecture", "AutomedError", "DataPlan", "Dataset", "LoadedData", "LoadedModel",
           "SearchPlan", "SearchResult", "Spec", "hookimpl", "load_data", "search",
           "__version__"]
