"""automed: which deep-learning model is best for my labeled medical data?

Python API (the CLI is a thin layer over it)::

    import automed
    result = automed.search("breastmnist_28.npz", metric="f1", folds=3, trials=10)
    print(result.best, result.test_scores)
"""

from automed.architecture import Architecture
from automed.data.dataset import Dataset, LoadedData
from automed.errors import AutomedError
from automed.hookspecs import hookimpl
from automed.data.loaders import load_data
from automed.spec import Spec

__version__ = "0.1.0"


def search(*args, **kwargs):
    """Run a search; see :func:`automed.searching.searcher.search` (imported lazily: torch is heavy)."""
    from automed.searching.searcher import search as _search

    return _search(*args, **kwargs)


__all__ = ["Architecture", "AutomedError", "Dataset", "LoadedData", "Spec", "hookimpl",
           "load_data", "search", "__version__"]
