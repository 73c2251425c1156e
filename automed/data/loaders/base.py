"""The loader contract: turn a path into a LoadedData, or say clearly why not."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from automed.data.dataset import LoadedData


class Loader(ABC):
    """Reads one data format.

    ``name`` identifies the loader (``--format NAME`` forces it); ``suffixes`` lists the file
    endings it claims (``".npz"``); a directory loader sets ``directories = True``.
    ``sniff(path)`` may look inside a file to decide between loaders claiming the same suffix.
    ``modalities`` names the modalities the loader produces (empty: any); a forced
    ``--modality`` only considers loaders that produce it.
    ``load(path, modality=..., **options)`` returns the data. ``options`` lists the loader
    options it honours (of ``label_col``, ``group_col``, ``text_col``, ``sequence_col``,
    ``id_col``); :func:`automed.data.loaders.load_data` refuses any other, so an option is
    never silently ignored. A group column is never a feature.
    """

    name: str = ""
    description: str = ""
    suffixes: tuple[str, ...] = ()
    directories: bool = False
    modalities: frozenset[str] = frozenset()
    options: frozenset[str] = frozenset()

    def sniff(self, path: Path) -> bool:
        if path.is_dir():
            return self.directories
        return path.suffix.lower() in self.suffixes

    def claims_label(self, path: Path, label_col: str) -> bool:
        """Whether ``path`` is this loader's kind of file because a column of it is named by
        ``--label-col`` (asked, in loader order, together with ``sniff``)."""
        return False

    def accepts_forced(self, path: Path) -> bool:
        """Whether to read ``path`` when the user forced one of ``modalities``."""
        return self.sniff(path)

    def explain(self, path: Path) -> str:
        """Why this loader claimed ``path``: the end of "read as <modality> because ..."."""
        if path.is_dir():
            return f"it is a folder the {self.name} loader reads"
        return f"the {self.name} loader claims {path.suffix or 'files without a suffix'} files"

    @abstractmethod
    def load(self, path: Path, **options: Any) -> LoadedData:
        """Read ``path`` into training data and, if present, a test split."""
