"""The model artifact: weights without pickle, plus what rebuilds and feeds the model.

A folder holding ``model.safetensors`` (the state dict) and ``automed_model.json`` (format
version, architecture name and params, spec, classes, fitted preprocessing state, the loader
options the data was read with, and the search's scores and manifest). Loading rebuilds the
architecture through the plugin manager by name, so the plugin must be installed, and never
unpickles anything.

A search saves its answer to a folder of its own database and study (:func:`default_dir`),
stamped with ``automed_study.json`` (:func:`study_stamp`); ``automed predict --study`` and
``automed export`` refuse a folder whose stamp is not the study's (:func:`check_owner`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy.engine import make_url

from automed.data.preprocess import Preprocessor, preprocessor_class
from automed.errors import AutomedError, ConfigError, DataError, PluginError
from automed.spec import Spec

FORMAT = "automed-model/1"
WEIGHTS = "model.safetensors"
CONFIG = "automed_model.json"
# An export's copies of the plugin files its study was searched with (never imported unasked).
PLUGINS = "plugins"
# The folder beside a study's answer where its candidates keep their fold models
# (searching.foldbag.candidates_dir).
CANDIDATES_SUFFIX = ".candidates"


def storage_key(storage_url: str) -> str:
    """The database a storage URL names, safe to write down: a SQLite file as its absolute
    path (``sqlite:///db.sqlite`` from two folders are two databases), any other URL with its
    password masked."""
    try:
        url = make_url(storage_url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: mask it as text
        from automed.storage.store import mask_password

        return mask_password(storage_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return f"sqlite:///{Path(url.database).expanduser().resolve()}"
    return url.render_as_string(hide_password=True)


def artifact_folder_name(study: str, storage_url: str | None = None) -> str:
    """A folder name of its own for every study of every database, always one path component.

    Readable part plus a hash of the exact name and of the database (:func:`storage_key`):
    ``"p q"`` and ``"p_q"`` get different folders, and so do two databases' studies of one
    name (one search never overwrites the other's model); ``..`` or ``.`` can never point
    outside the artifacts directory.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", study).strip("_")[:60] or "study"
    key = study if storage_url is None else f"{storage_key(storage_url)}\n{study}"
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=4).hexdigest()
    return f"{slug}-{digest}"


def default_dir(storage_url: str, study: str, root: str | Path | None = None) -> Path:
    """``root/<study>-<hash>``; without ``root``, under ``automed_models/`` beside a SQLite
    file (else in the working directory). The hash covers the database, so a study of the
    same name in another database gets another folder."""
    safe = artifact_folder_name(study, storage_url)
    if root is not None:
        folder = Path(root).expanduser().resolve() / safe
    else:
        url = make_url(storage_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            folder = Path(url.database).expanduser().resolve().parent / "automed_models" / safe
        else:
            folder = Path.cwd() / "automed_models" / safe
    # Before a search trains anything: a folder it may not write into is refused now.
    check_model_folder(folder)
    _check_writable(folder)
    return folder


def _check_writable(folder: Path) -> None:
    """Refuse a model folder whose files cannot be written (QA: a read-only automed_models/
    beside the database failed the search with a PermissionError traceback when the first
    candidate kept its fold models, and left the study "failed")."""
    import tempfile

    from automed.results.outputs import _existing_ancestor

    places = [p for p in (folder, folder.parent) if p.exists()]  # its candidates' beside it
    for place in places:
        try:
            with tempfile.TemporaryFile(dir=place):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot write the study's models in {place} "
                              f"({exc.strerror or type(exc).__name__}); make it writable, or "
                              "give --artifacts a folder you can write to") from None
    if places:
        return
    where = _existing_ancestor(folder.parent)
    if not os.access(where, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create the study's model folder {folder.parent} ({where} "
                          "is not writable); give --artifacts a folder you can write to")


# -- whose model a folder holds -------------------------------------------------------------
# The answer's folder and its candidates' folder carry a stamp naming the study they belong
# to: its database, name, dataset and ``uid``, a random id the study gets when it is created
# (kept in its config), so a study deleted and created again under the same name in the same
# database is another study. Only ``study`` and ``uid`` are compared: workers may reach one
# database by several URLs.
STAMP = "automed_study.json"
STAMP_FORMAT = "automed-study/1"


def study_stamp(storage_url: str, study: str, uid: str | None,
                dataset: str | None = None) -> dict[str, Any]:
    return {"format": STAMP_FORMAT, "storage": storage_key(storage_url), "study": study,
            "uid": uid, "dataset": dataset}


def same_study(stamp: dict | None, other: dict | None) -> bool:
    """Whether two stamps name one study (its name and uid; a stamp without a uid names
    none)."""
    return (isinstance(stamp, dict) and isinstance(other, dict) and bool(stamp.get("uid"))
            and stamp.get("uid") == other.get("uid") and stamp.get("study") == other.get("study"))


def read_stamp(folder: str | Path) -> dict | None:
    """The stamp of ``folder``, or None when it has none (or an unreadable one)."""
    try:
        stamp = json.loads((Path(folder) / STAMP).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return stamp if isinstance(stamp, dict) else None


def write_stamp(folder: str | Path, stamp: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")


def check_owner(folder: str | Path, search: dict, redacted: str = "the database") -> None:
    """Refuse a saved answer that is not ``search``'s (a study record, see ``Store.search``):
    its folder's stamp names another study (or none, for a study that stamps its folders),
    or, for a study from before stamps, its config names other data."""
    folder = Path(folder)
    study, cfg = search["study"], search.get("config") or {}
    fix = f"run `automed search ... --study {shlex.quote(study)}` again to save its answer"
    uid = cfg.get("uid")
    if uid:
        stamp = read_stamp(folder)
        if same_study(stamp, {"study": study, "uid": uid}):
            return
        whose = ("has no stamp of the study it belongs to (an answer being written, or one "
                 "an interrupted run left)" if stamp is None else
                 f"holds the model of another study ({stamp.get('study')!r} in "
                 f"{stamp.get('storage')}, uid {stamp.get('uid')})")
        raise DataError(f"{folder} {whose}, not of study {study!r} in {redacted}; {fix}")
    try:  # a study from before stamps: its data must at least be the study's
        saved = (_read_config(folder / CONFIG).get("data") or {}).get("fingerprint")
    except DataError:
        return  # the loader says what is wrong with it
    if saved and search.get("dataset_fingerprint") and saved != search["dataset_fingerprint"]:
        raise DataError(f"{folder} holds a model trained on other data (fingerprint "
                        f"{str(saved)[:12]}) than study {study!r} in {redacted} "
                        f"({search['dataset_fingerprint'][:12]}); {fix}")


def saved_answer(store, info: dict) -> Path:
    """The folder of a study's saved answer (``info``: ``Store.search``'s record), checked to
    be the study's own. A project moved or copied with its database (the folder recorded is
    gone, ``automed_models/`` beside the database holds one of the same name) is found there
    (QA: predict said the folder "has no stamp", export that the model was missing)."""
    study = info["study"]
    recorded = (info.get("config") or {}).get("artifact")
    if not recorded:
        from automed.results.describe import effective_status, next_step

        status = effective_status(info)
        if status == "complete":
            why = ("it was searched without saving one (automed.search(..., save_model=False) "
                   "or refit=False); search again without them to save its answer")
        elif status.startswith("failed") or status.startswith("stopped") or status in (
                "interrupted", "created", "searched"):
            why = f"it stopped before its answer ({status.split(' (')[0]}); " + next_step(
                info, status)
        else:
            why = "let the search finish (it saves its answer)"
        raise AutomedError(f"study {study!r} has no saved model: {why}")
    folder = Path(recorded)
    if not folder.is_dir():
        url = make_url(store.url)
        beside = (Path(url.database).expanduser().resolve().parent / "automed_models" /
                  folder.name if url.get_backend_name() == "sqlite" and url.database
                  not in (None, "", ":memory:") else None)
        if beside is None or not beside.is_dir():
            raise DataError(f"{folder}: the saved answer of study {study!r} is missing (moved "
                            "or deleted); keep its folder in automed_models/ beside the "
                            f"database, or run `automed search ... --study "
                            f"{shlex.quote(study)}` again to save it")
        folder = beside
    check_owner(folder, info, store.redacted)  # never another study's model of the same name
    return folder


# -- folders a search writes and deletes models in -----------------------------------------
# Their names are predictable (artifact_folder_name), so what lies there is checked before
# anything is deleted (QA: a symbolic link planted at the answer's folder had the search
# write its model into the link's target and delete model.safetensors, automed_model.json
# and fold-*/ there): the answer's folder, its lock and its candidates' folder are never
# followed through a link, and a model is cleared only from a folder that is automed's.
def lock_path(folder: str | Path) -> Path:
    """The lock two leaders of one study take to swap in its answer (beside the folder: it
    is never exported)."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def refuse_link(path: str | Path, what: str = "a model folder") -> None:
    """Refuse ``path`` when it is a symbolic link: automed writes and deletes models only in
    folders of its own, never in whatever a link points at."""
    path = Path(path)
    if path.is_symlink():
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        raise DataError(f"{path} is a symbolic link{target}, and automed never writes or "
                        f"deletes {what} through a link; remove the link (the folder it points "
                        "at is left as it is), or give --artifacts a folder of your own")


def is_automed_stamp(stamp: Any) -> bool:
    """Whether ``stamp`` (see :func:`read_stamp`) is a stamp automed wrote."""
    return isinstance(stamp, dict) and stamp.get("format") == STAMP_FORMAT


def is_automed_model(folder: str | Path) -> bool:
    """Whether ``folder`` holds a model config automed wrote (a plain file, not a link)."""
    path = Path(folder) / CONFIG
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return _read_config(path).get("format") == FORMAT
    except (OSError, DataError):
        return False


def _model_entries(folder: Path) -> list[Path]:
    """What :func:`clear_model_folder` deletes from ``folder``."""
    found = [folder / name for name in (WEIGHTS, CONFIG)
             if (folder / name).is_symlink() or (folder / name).exists()]
    for pattern in ("member-*", "fold-*"):
        found += sorted(e for e in folder.glob(pattern) if e.is_symlink() or e.is_dir())
    return found


def check_model_folder(folder: str | Path) -> None:
    """Refuse ``folder`` as a study's answer folder when writing a model there could touch
    what is not automed's: it, its lock or its candidates' folder is a symbolic link, it is
    a file, or it holds model files (weights, config, ``fold-*`` or ``member-*``) with
    neither automed's stamp (:data:`STAMP`) nor a model config automed wrote (an answer from
    before stamps, or one whose stamp a search removed while it rewrote it). A folder holding
    a study's stamp is automed's: its model is replaced as before."""
    folder = Path(folder)
    refuse_link(folder)
    refuse_link(lock_path(folder), "a model folder's lock")
    refuse_link(folder.with_name(folder.name + CANDIDATES_SUFFIX), "fold models")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder, so automed cannot save a model "
                        "there; move it away, or give --artifacts another folder")
    entries = _model_entries(folder)
    if entries and not (is_automed_stamp(read_stamp(folder)) or is_automed_model(folder)):
        names = ", ".join(e.name for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise DataError(f"{folder} holds files automed did not write ({names}; no {STAMP} "
                        f"stamp, no {CONFIG} of automed's), and saving a model there would "
                        "delete them; move them away (or delete the folder), or give "
                        "--artifacts another folder")


def clear_model_folder(folder: Path) -> None:
    """Remove the model an earlier run saved in ``folder`` (a single model, an ensemble's
    ``member-*`` or a fold bag's ``fold-*`` sub-folders), keeping anything else there.
    A folder that is not automed's is refused (:func:`check_model_folder`), and a link in
    it is removed, never followed."""
    import shutil

    folder = Path(folder)
    check_model_folder(folder)
    for name in (WEIGHTS, CONFIG):
        (folder / name).unlink(missing_ok=True)
    for pattern in ("member-*", "fold-*"):
        for old in folder.glob(pattern):
            if old.is_symlink():
                old.unlink()
            elif old.is_dir():
                shutil.rmtree(old)


@contextmanager
def replacing_model(folder: Path) -> Iterator[Path]:
    """Write a model into a staging folder inside ``folder`` (yielded), then swap it in for
    whatever model ``folder`` held: the old one is cleared (:func:`clear_model_folder`) and
    the staged entries renamed into place, under an exclusive lock (``.NAME.lock`` beside it).

    Two leaders of one study (the same command started twice) both answer into one folder;
    written in place, their clears and writes interleaved into one model's config beside the
    other's weights or members. Swapped this way the folder holds one whole model, the last
    swapped, and a reader misses it only for the few renames of the swap. A write that fails
    leaves the folder's model as it was."""
    import shutil
    import uuid

    folder = Path(folder)
    check_model_folder(folder)  # before the model is written: not through a link, ours
    folder.mkdir(parents=True, exist_ok=True)
    stage = folder / f".model-{uuid.uuid4().hex[:8]}.tmp"
    stage.mkdir()
    try:
        yield stage
        with _locked(lock_path(folder)):  # beside it: not exported
            clear_model_folder(folder)  # checked again, under the lock
            for entry in sorted(stage.iterdir(), key=lambda e: e.name == CONFIG):
                os.replace(entry, folder / entry.name)  # the config last: a complete model
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; none where it is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: two leaders on one host are not guarded there
        yield
        return
    try:  # never through a link: opening one would create or touch the file it names
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if Path(path).is_symlink():
            refuse_link(path, "a model folder's lock")
        raise DataError(f"{path}: cannot take the lock of the model folder beside it "
                        f"({exc.strerror or exc}); check that folder's permissions") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def save_artifact(folder: Path, model: torch.nn.Module, preprocessor: Preprocessor,
                  info: dict) -> Path:
    """Write weights and config to ``folder``; ``info`` holds architecture, params, spec, ..."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    # save_model (not save_file) de-duplicates tied weights, which safetensors refuses.
    save_model(model.cpu(), str(folder / WEIGHTS))
    config = {"format": FORMAT, **info,
              "preprocessor": {"modality": preprocessor.modality,
                               "state": preprocessor.state()}}
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    return folder


def _plugin_to_give(provider: dict | None, plugins: list[str] | None, exported: bool) -> str:
    """How to make a saved model's plugin available again: install its distribution, or give
    the plugin file(s) an export carries or the search was given."""
    given = " ".join(f"--plugin {shlex.quote(p)}" for p in plugins or [])
    dist = (provider or {}).get("distribution")
    if dist and _left_out(provider):
        # installed, but AUTOMED_LOAD_PLUGINS leaves it out (QA: told to pip install it)
        return (f"it came from plugin {provider.get('plugin')!r} of the installed "
                f"distribution {dist}, which AUTOMED_LOAD_PLUGINS="
                f"{os.environ.get('AUTOMED_LOAD_PLUGINS')!r} leaves out: add "
                f"{provider.get('plugin')} to it")
    if dist:  # an installed plugin: the saved model says which distribution
        version = (provider or {}).get("version")
        pin = f"{dist}=={version}" if version else dist
        return (f"it came from plugin {provider.get('plugin')!r} of the distribution "
                f"{dist}{' ' + version if version else ''}: install it (pip install "
                f"{shlex.quote(pin)})")
    return (f"the export carries its search's plugin file(s): give {given}"
            if exported and given else
            f"it was searched with {given}; give that again" if given else
            f"it came from plugin {provider['source']}: give it with --plugin"
            if provider and provider.get("source") else
            "give the plugin that provides it with --plugin FILE.py (or MODULE)")


def _left_out(provider: dict) -> bool:
    """Whether ``provider``'s entry point is installed but not in AUTOMED_LOAD_PLUGINS."""
    from automed.plugin_manager import get_plugin_manager

    return provider.get("plugin") in get_plugin_manager().left_out


class MissingArchitecture(PluginError):
    """A saved model whose architecture no loaded plugin provides: one that came from a
    plugin file or module (``search --plugin``) must be given again where the model loads."""

    def __init__(self, architecture: str, installed: list[str],
                 plugins: list[str] | None = None, *, exported: bool = False,
                 provider: dict | None = None) -> None:
        self.architecture, self.installed = architecture, installed
        where = _plugin_to_give(provider, plugins, exported)
        super().__init__(f"the model needs architecture {architecture!r}, which no installed "
                         f"plugin provides (installed: {', '.join(installed)}); {where}, or "
                         "set AUTOMED_PLUGINS_PATH to it")


class MissingLoader(PluginError):
    """A saved model whose data a plugin's loader read, which is not loaded where it
    predicts: new data would go to another loader (or none)."""

    def __init__(self, config: dict) -> None:
        read_by = config.get("loader_plugin") or {}
        carried = config.get("carried_plugins") or []
        where = _plugin_to_give(read_by, carried, bool(carried))
        super().__init__(f"the model reads its data with the {read_by.get('loader')!r} loader, "
                         f"which no loaded plugin provides; {where}")


_SAID_OTHER_CODE: set = set()


def _said_other_code(name: str, searched: dict | None, here: dict | None) -> None:
    """Warn, once per process, when the plugin code that builds architecture ``name`` here is
    not the code the model was searched with (QA: an edited plugin file, or a plugin package
    upgraded since, changed every prediction without a word; export had said it)."""
    import warnings

    from automed.errors import PluginWarning

    old, new = (searched or {}).get("sha256"), (here or {}).get("sha256")
    if not old or not new or old == new or (name, old, new) in _SAID_OTHER_CODE:
        return
    _SAID_OTHER_CODE.add((name, old, new))
    dist, was, now = here.get("distribution"), searched.get("version"), here.get("version")
    if dist and was and now and was != now:
        fix = f"pip install {shlex.quote(f'{dist}=={was}')} for the searched code"
        what = f"comes from {dist} {now} here, the model was searched with {was}"
    else:
        fix = ("give the searched file with --plugin (an export carries it under plugins/)"
               if not dist else f"reinstall {dist} {was or ''} as it was searched".rstrip())
        what = (f"is built by other code here ({here.get('source')}: sha256 {new[:12]}..., "
                f"searched with {old[:12]}...)")
    warnings.warn(f"architecture {name!r} {what}: its predictions may differ from the "
                  f"search's scores; {fix}", PluginWarning, stacklevel=3)


PREDICT_CHUNK = 4096  # raw samples encoded and predicted at a time (LoadedModel.proba)


class LoadedModel:
    """A rebuilt model with its preprocessing: ``predict_proba(x)`` on raw samples."""

    def _provider(self) -> dict | None:
        """The plugin that provided this model's architecture, as its config (or, for a fold
        model of a bag, its bag's or its ensemble's) recorded it."""
        for folder in (self.folder, self.folder.parent, self.root):
            try:
                provider = (self.config if folder == self.folder else
                            _read_config(folder / CONFIG)).get("plugin")
            except (OSError, DataError, AttributeError):
                continue
            if isinstance(provider, dict):
                return provider
        return None

    def __init__(self, folder: str | Path, *, root: str | Path | None = None) -> None:
        from automed.plugin_manager import get_plugin_manager

        self.folder = Path(folder)
        self.root = Path(root) if root is not None else self.folder  # a member's: the top
        path = self.folder / CONFIG
        if not path.is_file():
            raise DataError(f"{self.folder}: no {CONFIG}; not an automed model folder")
        self.config: dict[str, Any] = _read_config(path)
        if self.config.get("format") != FORMAT:
            raise DataError(f"{path}: format {self.config.get('format')!r}, expected {FORMAT}")
        damaged = f"{path} is damaged"
        try:
            self.spec = Spec.from_dict(self.config["spec"])
            self.classes: list[str] = [str(c) for c in self.config["classes"]]
            ensemble = self.config.get("ensemble")
            members = [(m["folder"], float(m["weight"])) for m in ensemble["members"]] \
                if ensemble else []
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise DataError(f"{damaged} ({type(exc).__name__}: {exc}); export the model "
                            "again with `automed export`") from None
        if members:
            # QA: weights "nan" or 1e308 predicted nan probabilities (and a confident class)
            total = sum(w for _, w in members)
            bad = next((w for _, w in members if not math.isfinite(w) or w < 0), None)
            if bad is not None or not (math.isfinite(total) and total > 0):
                why = (f"member weight {bad!r} is not a finite number of at least 0"
                       if bad is not None else
                       f"its member weights sum to {total!r}, not a positive finite total")
                raise DataError(f"{damaged}: {why}; export the model again with "
                                "`automed export`")
            members = [(folder, w / total) for folder, w in members]  # a mean of probabilities
        self.members: list[tuple[float, LoadedModel]] = []
        self.cpu_bf16 = False
        if members:
            # An ensemble: each member is a complete artifact in its own sub-folder.
            for folder, weight in members:
                sub = (self.folder / folder).resolve()
                if sub.parent != self.folder.resolve():
                    raise DataError(f"{path}: member folder {folder!r} is not inside "
                                    "the model folder; the artifact was edited")
                self.members.append((weight, LoadedModel(sub, root=self.root)))
            # Their probabilities are written under the top's class names: one list for all.
            other = next((m for _, m in self.members if m.classes != self.classes), None)
            if other is not None:
                raise DataError(f"{damaged}: its classes {self.classes} are not its member "
                                f"{other.folder.name}'s {other.classes}; export the model again")
            self.model = self.preprocessor = None
            return
        try:
            name = self.config["architecture"]
            params = dict(self.config["params"])
            pre = self.config["preprocessor"]
            modality = pre["modality"]
            bag = self.config.get("bag", 1)
            if not isinstance(bag, int) or isinstance(bag, bool) or bag < 1:
                raise ValueError(f"bag {bag!r} is not a number of seeds")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{damaged} ({type(exc).__name__}: {exc}); export the model "
                            "again with `automed export`") from None
        if len(self.classes) != self.spec.n_classes or len(set(self.classes)) != len(
                self.classes):
            raise DataError(f"{damaged}: {len(self.classes)} class names for a model with "
                            f"{self.spec.n_classes} outputs; export the model again")
        from automed.searching.training import SeedBag

        pm = get_plugin_manager()
        pm.load_optional([name])
        archs = pm.architectures()
        if name not in archs:  # an exported model names the plugin files it carries
            carried = sorted(str(f) for f in (self.root / PLUGINS).glob("*.py"))
            raise MissingArchitecture(name, sorted(archs), carried or None, exported=True,
                                      provider=self._provider())
        _said_other_code(name, self._provider(), pm.provider(name))
        # The family's own preprocessing (a pretrained tokenizer, ...) or the modality's.
        own = archs[name].preprocessor(modality)
        try:
            pre_cls = type(own) if own is not None else preprocessor_class(modality)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{damaged} ({type(exc).__name__}: {exc}); export the model "
                            "again with `automed export`") from None
        try:
            self.cpu_bf16 = bool(archs[name].cpu_bf16)
            # weights are loaded over them: their initial draws must not move the caller's
            # torch generator (QA: loading a model changed torch's random state)
            with torch.random.fork_rng(devices=[]):
                models = [archs[name].rebuild(params, self.spec) for _ in range(bag)]
            # A seed bag (see --bag): the members' mean probabilities.
            self.model = models[0] if bag == 1 else SeedBag(models)
        except AutomedError:
            raise  # a one-line answer of the plugin's own (say, a missing library)
        except Exception as exc:  # noqa: BLE001 - edited params: any error a plugin raises
            if self._provider() is not None:  # other plugin code, not a damaged model (QA)
                raise DataError(
                    f"architecture {name!r} as its plugin builds it now cannot take this "
                    f"model's params ({type(exc).__name__}: {exc}); if its plugin changed "
                    "since the search, give the one the search used with --plugin, else "
                    f"export the model again ({path} may have been "
                    "edited)") from None
            raise DataError(f"{damaged}: architecture {name!r} cannot be built from its params "
                            f"({type(exc).__name__}: {exc}); export the model again") from None
        _load_weights(self.model, self.folder / WEIGHTS, name)
        self.model.eval()
        try:
            self.preprocessor = pre_cls.from_state(pre["state"])
        except AutomedError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{damaged}: its preprocessing state is unreadable "
                            f"({type(exc).__name__}: {exc}); export the model again") from None

    def reading_config(self) -> dict[str, Any]:
        """The config that says how to read samples for this model: its own, with the
        preprocessing state of its first single model when it is an ensemble or a fold bag
        (every member was fitted on the same columns and fields)."""
        leaf = self
        while leaf.members:
            leaf = leaf.members[0][1]
        carried = sorted(str(f) for f in (self.root / PLUGINS).glob("*.py"))
        return {**self.config, "preprocessor": leaf.config.get("preprocessor"),
                **({"carried_plugins": carried} if carried else {})}

    def __repr__(self) -> str:
        return (f"LoadedModel({str(self.folder)!r}: {self.config.get('architecture')}, "
                f"classes {self.classes})")

    def predict(self, x: Any, device: str | torch.device = "cpu") -> list[str]:
        """The predicted class name of each raw sample (its most probable class; QA: an
        AutoGluon habit that had no method)."""
        proba = self.predict_proba(x, device=device)
        return [self.classes[int(i)] for i in np.asarray(proba).argmax(1)]

    def predict_proba(self, x: Any, device: str | torch.device = "cpu") -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` of raw samples ``x`` (as the loaders give
        them: an array of images or signals, a list of texts or sequences, records), or of
        every sample of a file or folder ``x`` names, in the rows `automed predict` writes.
        What the samples make of their predictions (a table's values never seen in training,
        a sequence cut short, ...) is warned as `automed predict` says it."""
        from automed.results.predict import said_about_samples

        if self.root is self.folder and isinstance(x, (str, bytes, os.PathLike)):
            path = Path(os.fsdecode(x))
            if path.exists():  # QA: a file's samples had no one-call way in
                from automed.results.predict import read_samples

                config = self.reading_config()
                parts = read_samples(path, config.get("load_options") or {}, "all", config)
                said_about_samples(path, [part.x for part in parts], config)
                return np.concatenate([self.proba(part.x, device=device) for part in parts])
            # QA: a path to an image .npz was told about texts
            raise DataError(f"{os.fsdecode(x)[:80]!r} is no file or folder: give a path "
                            "that exists, or the samples themselves (a list of texts "
                            "([text]), an array of images or signals)")
        if self.root is self.folder:
            config = self.reading_config()  # read once for both
            x = self._samples(x, config)  # a table's records in the model's column order first
            said_about_samples("the samples", [x], config)
            if self.spec.modality == "text":  # as predict says it of a file (QA: unsaid)
                from automed.data.unlabeled import _said_wordless

                _said_wordless("the samples", "the texts", list(x))
        return self.proba(x, device=device)

    def proba(self, x: Any, device: str | torch.device = "cpu") -> np.ndarray:
        """:meth:`predict_proba` of raw samples, without its warnings (said once by the
        caller that read them)."""
        from automed.searching.devices import resolve_device

        if self.root is self.folder:  # the top: checked once, not per member
            if not isinstance(device, torch.device):
                device = resolve_device(str(device))
            x = self._samples(x)
            if len(x) == 0:
                return np.zeros((0, len(self.classes)))
        if self.members:
            return sum(w * m.proba(x, device=device) for w, m in self.members)
        x = in_model_layout(x, self.spec)
        # one record's values, never split: judged without converting x (review: np.ndim
        # of a ragged list of records raised, and copied a big input)
        one_record = self.spec.modality == "tabular" and (
            getattr(x, "ndim", None) == 1
            or (isinstance(x, (list, tuple)) and len(x) > 0 and np.ndim(x[0]) == 0))
        if len(x) > PREDICT_CHUNK and not one_record:
            # encoded a chunk at a time: memory bounded whatever the input's size (QA: a
            # text model's dense encoding, up to 32 KB a document, of every row at once)
            return np.concatenate([self._chunk_proba(x, i, device)
                                   for i in range(0, len(x), PREDICT_CHUNK)])
        return self._encoded_proba(x, device)

    def _samples(self, x: Any, config: dict | None = None) -> Any:
        """``x`` checked to be samples (QA: None and 5 raised a bare TypeError, and a text
        model predicted [1, 2] and [None]); a table's records found by column name
        (``config``: :meth:`reading_config`, when the caller has it)."""
        modality = self.spec.modality
        if modality == "tabular":
            from automed.data.tabular import records_by_name

            config = config if config is not None else self.reading_config()
            state = (config.get("preprocessor") or {}).get("state") or {}
            names = [str(c.get("name")) for c in state.get("columns") or []]
            if names:
                x = records_by_name(x, names)
        if x is None or isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
            raise DataError(f"samples of type {type(x).__name__}: give a list or an array of "
                            "samples (texts, sequences, images, signals or records; a table's "
                            "records may be a pandas DataFrame), or a path to a file or folder")
        if modality in ("text", "biosequence") and not (
                isinstance(x, np.ndarray) and x.dtype.kind == "U"):
            if isinstance(x, dict) or (hasattr(x, "columns") and getattr(x, "ndim", 0) == 2):
                # review: iterating them gave their column names, read as the texts
                raise DataError(f"samples of type {type(x).__name__}: give a list of "
                                f"{modality} strings, e.g. df['text'].tolist()")
            values = list(x)  # by position: a Series' own index is no position (review)
            bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
            if bad is not None:
                raise DataError(f"sample {bad + 1} is {type(values[bad]).__name__} "
                                f"{str(values[bad])[:40]!r}, not a {modality} string: give a "
                                f"list of strings")
        return x

    def _chunk_proba(self, x: Any, start: int, device: torch.device) -> np.ndarray:
        part = x[start:start + PREDICT_CHUNK]
        try:
            return self._encoded_proba(part, device)
        except DataError as exc:  # its record numbers count within the chunk (review)
            raise DataError(f"{exc} (in samples {start + 1}-{start + len(part)} of "
                            f"{len(x)})") from None

    def _encoded_proba(self, x: Any, device: torch.device) -> np.ndarray:
        from automed.searching.training import predict_proba

        try:
            tensor = self.preprocessor.transform(x)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{self.folder / CONFIG}: its preprocessing does not fit these "
                            f"samples ({type(exc).__name__}: {exc}); predict data like the "
                            "training data, or export the model again") from None
        if tuple(tensor.shape[1:]) != tuple(self.spec.input_shape):
            raise DataError(
                f"the samples encode to shape {tuple(tensor.shape[1:])} but the model expects "
                f"{tuple(self.spec.input_shape)}; predict data with the training data's "
                "columns, or export the model again")
        try:
            proba = predict_proba(self.model, tensor, device=device, cpu_bf16=self.cpu_bf16)
        except RuntimeError as exc:
            raise DataError(f"{self.folder}: the model cannot run on these samples "
                            f"({str(exc).splitlines()[0]}); export the model again") from None
        if proba.shape[1:] != (len(self.classes),):
            raise DataError(f"{self.folder}: the model gives {proba.shape[1:]} outputs for "
                            f"{len(self.classes)} class names; export the model again")
        return proba


def in_model_layout(x: Any, spec: Spec) -> Any:
    """Image and signal arrays in the layout the loaders give (:func:`automed.data.loaders.npz.
    _shape`), so raw samples are taken as ``automed predict`` takes them: (N, L) signals as
    (N, 1, L), (N, H, W) images as (N, 1, H, W), channels-last images channels-first. Samples
    that still do not have the model's input shape are refused in one line."""
    if spec.modality not in ("image", "signal"):
        return x
    expected = tuple(spec.input_shape)
    if isinstance(x, (list, tuple)):  # QA: a list of series was told "the samples encode to"
        try:
            x = np.asarray(x)  # its own dtype: 8-bit pixels stay 8-bit (review)
        except (TypeError, ValueError):
            x = None
        if x is None or x.dtype.kind not in "biuf":
            raise DataError(f"the samples are a list of {spec.modality}s of differing sizes "
                            "or non-numbers; give an array shaped "
                            f"(N, {', '.join(map(str, expected))})")
    shape = getattr(x, "shape", None)
    if shape is None:
        return x
    # One sample without its batch axis, before any reshaping reads it as a batch (QA: one
    # series (96,) was told "samples have shape ()"; review: one RGB image (3, 28, 28) gave
    # three predictions). (1, L) signals and (1, H, W) images are batches of one.
    original = tuple(shape)
    if original in (expected[1:], (*expected[1:], expected[0])) or (
            expected[0] > 1 and original == expected):
        gray = (f"; if these are {expected[0]} grayscale images, give x[:, None]"
                if spec.modality == "image" and original == expected else "")
        raise DataError(f"samples have shape {original}, that of one sample: give a batch, "
                        f"e.g. x[None] of shape (1, {', '.join(map(str, original))}){gray}")
    given = tuple(shape[1:])
    if isinstance(x, np.ndarray) and tuple(shape[1:]) != expected and len(shape) >= 2:
        from automed.data.loaders.npz import _shape

        try:
            x = _shape(x, spec.modality, "the samples")
        except DataError:
            pass  # refused below, with the shape the model expects
        shape = x.shape
    if spec.modality == "image" and tuple(shape[1:]) != expected:
        from automed.data.loaders import to_channels

        x = to_channels(x, expected)  # colour for a grayscale model and back (QA: "resize")
        shape = np.shape(x)
    if tuple(shape[1:]) != expected:
        got = tuple(shape[1:])
        # what differs says the fix (QA: "resize" for a transposed series too)
        fix = ("transpose them to (channels, length) like the training data"
               if spec.modality == "signal" and sorted(got) == sorted(expected) else
               f"give them the training data's {expected[0]} channel(s) (leads)"
               if spec.modality == "signal" and len(got) == len(expected)
               and got[1:] == expected[1:] else
               "resample them to the training length" if spec.modality == "signal" else
               "resize them like the training images")
        raise DataError(f"samples have shape {given} but the model expects {expected}; {fix}")
    return x


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError and its kin; RecursionError: nesting past Python's
        # limit (an edited file of 100,000 "[")
        why = ("nested too deeply" if isinstance(exc, RecursionError) else
               str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
        raise DataError(f"{path} is not valid JSON ({why}); export the model again with "
                        "`automed export`") from None
    if not isinstance(config, dict):
        raise DataError(f"{path} is not a JSON object; export the model again")
    return config


def _load_weights(model: torch.nn.Module, path: Path, architecture: str | None = None) -> None:
    """Load safetensors weights strictly; any damage is one line, and pickle is never read.

    Readable weights whose tensors do not fit the model ``architecture`` builds now are not
    damage but other code: a plugin file edited since the search (QA: the message blamed the
    weights and said to run the export that failed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    if not path.is_file():
        raise DataError(f"{path.parent}: no {WEIGHTS}; export the model again")
    try:
        load_model(model, str(path), strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if architecture and isinstance(exc, RuntimeError) and "state_dict" in str(exc):
            raise DataError(
                f"{path}: these weights do not fit architecture {architecture!r} as built now "
                f"({first[:160]}); if its plugin file changed since the search, give the one "
                f"the search used with --plugin, else export the model again (its "
                f"{CONFIG} may have been edited)"
            ) from None
        raise DataError(f"{path}: not the weights of this model ({first[:200]}); export the "
                        "model again with `automed export`") from None
