"""Where a command writes: checked before any work, so a bad ``-o`` costs nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from automed.errors import ConfigError

# bytes: a data file this large is said to be read (search, predict) before it is
BIG_FILE = 20_000_000


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(".")


def _writable(folder: Path, flag: str, path: Path) -> None:
    """Refuse a folder nothing can be created in (read-only, no permission, /proc), by trying."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{flag} {path}: cannot write in {folder} ({reason}); choose a "
                          "folder you can write to") from None


# The files a model folder holds (results.artifact's names, repeated to keep this module light)
MODEL_FILES = ("model.safetensors", "automed_model.json", "automed_study.json", "MODEL_CARD.md")


def output_file(path: str | Path, flag: str = "-o", *,
                protect: tuple[str | Path | None, ...] = (),
                inside: tuple[str | Path | None, ...] = ()) -> Path:
    """A file to write: its folder must exist, and it must not be a folder itself.

    ``protect`` lists files the command reads (its data, the study database): writing over
    one of them would destroy it, so such an output is refused. ``inside`` lists folders the
    command reads (a model folder): no output overwrites a file in one (QA: `predict -o
    MODEL/automed_model.json` wrote its CSV over the model's config); a new file is fine.
    """
    path = Path(path).expanduser()
    for other in protect:
        if other is not None and Path(other).expanduser().resolve() == path.resolve():
            raise ConfigError(f"{flag} {path} is the file this command reads; writing there "
                              "would destroy it, so choose another output file")
    for folder in inside:
        root = None if folder is None else Path(folder).expanduser().resolve()
        if root is None or root not in path.resolve().parents:
            continue
        # a new file of its own beside the model is fine; one the model has, or one named
        # or placed like its parts (weights, config, members, carried plugins), is not
        if path.exists() or path.name in MODEL_FILES or path.resolve().parent != root:
            raise ConfigError(f"{flag} {path} is a file of the model folder {folder}, which "
                              "this command reads; choose another output file")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name inside it")
    parent = path.parent
    if not parent.exists():
        where = _existing_ancestor(path)
        if not where.is_dir():
            raise ConfigError(f"{flag} {path}: {where} is a file, not a folder; choose a path "
                              "in a folder")
        raise ConfigError(f"{flag} {path}: folder {parent} does not exist; create it first or "
                          "choose another path")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder; choose a path in "
                          "a folder")
    _writable(parent, flag, path)
    return path


def output_dir(path: str | Path, flag: str = "-o") -> Path:
    """A folder to write into (created with its parents): no part of it may be a file."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder")
    where = _existing_ancestor(path)
    if not path.exists() and not where.is_dir():
        raise ConfigError(f"{flag} {path}: {where} is a file, not a folder; choose another "
                          "folder")
    _writable(path if path.exists() else where, flag, path)
    return path


def sqlite_file(storage: str | None) -> Path | None:
    """The database file behind a SQLite ``--storage`` (None for a server or memory)."""
    from automed.storage.store import resolve_url
    from automed.storage.store import sqlite_file as file_of

    return file_of(resolve_url(storage))
