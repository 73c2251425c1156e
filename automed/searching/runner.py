"""``automed.search``: plan -> prepare -> record -> optimise (here or in workers) -> refit.

About 400 lines: ``search()``'s keyword arguments (the Python API mirrors every CLI option)
take a quarter of it, and ``run()`` is the one place the phases (search, refit, ensemble) and
their time budget are sequenced, which reads best in one piece.

:func:`search` turns keyword arguments into a :class:`~automed.searching.plan.SearchPlan`;
:func:`run` carries a plan out. Everything is validated (options, data, metric, folds,
architectures, database) before anything is written, so bad input leaves the database as it
was. Running the same search again (same study name and settings) resumes it; its budget
(``trials``, ``timeout``) may change.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from automed.architecture import Architecture
from automed.contract import TRAINING_DEFAULTS, split_defaults
from automed.data.dataset import Dataset, LoadedData
from automed.data.preprocess import Preprocessor
from automed.errors import (
    AutomedError,
    ConfigError,
    DataError,
    DataWarning,
    PluginWarning,
    user_stacklevel,
)
from automed.evaluation import metrics as M
from automed.results.artifact import STAMP, default_dir, study_stamp, write_stamp
from automed.results.describe import metric_labels, objective_words
from automed.results.outputs import BIG_FILE, output_dir
from automed.searching import ensemble as ensembles
from automed.searching import foldbag, portfolio
from automed.searching.devices import plan_slots
from automed.searching.ensemble import (
    ENSEMBLE_TRIAL,
    build_ensemble,
    held_for_members,
    save_ensemble,
    select_ensemble,
)
from automed.searching.ensemble import record_row as record_ensemble_row
from automed.searching.interrupts import stopping
from automed.searching.manifest import build_manifest, enable_determinism
from automed.searching.objective import Objective
from automed.searching.plan import HEARTBEAT_INTERVAL, DataPlan, SearchPlan, plugin_ref
from automed.searching.prepare import Prepared, load_plugins, prepare, resolve_path
from automed.searching.refit import (
    artifact_info,
    model_info,
    refit_best,
    save_best,
    test_intervals,
)
from automed.searching.selection import choose_single
from automed.searching.study import (
    counted_trials,
    enqueue_defaults,
    open_study,
    retry_interrupted,
    run_trials,
    waiting_retries,
)
from automed.searching.workers import run_local_workers
from automed.spec import Spec
from automed.storage import Store
from automed.storage.fleet import results_db_env

MAX_STUDY_NAME = 120
_STUDY_NAME = re.compile(r"^[^\x00-\x1f/\\]+$")

BIG_FOLDER = 1000  # files in a data folder that take seconds to read: said first


@dataclass
class SearchResult:
    """What a search found. ``answer`` says what answers: ``test_scores``, ``test_ci``,
    ``artifact`` and ``predict_proba`` are always the answer's, which is an ensemble of
    several candidates when that beat ``best``, the best single candidate, out-of-fold::

        print(result.answer["architecture"], result.test_scores)  # e.g. ensemble of #0, #4
        print(result.best["architecture"], result.best_test_scores)  # the best single alone
    """

    study: str
    storage: str  # password redacted
    # Complete candidates best first, with an ensemble's row (trial -1) when one was built
    # (as `automed leaderboard` lists them).
    leaderboard: list[dict]
    # The best single candidate (a leaderboard row): the leaderboard's leader, or the first
    # portfolio start when the leader's out-of-fold lead over it is within chance
    # (selection.choose_single). It answers unless an ensemble does (see ``answer``), so
    # ``test_scores`` are its own only when ``answer["kind"]`` is "single".
    best: dict | None
    test_scores: dict | None = None  # the answer's (see ``answer``)
    test_size: int | None = None
    resumed: bool = False
    # The refit model and its preprocessing (--refit-full); None when the answer is made of
    # fold models: use predict_proba, which serves both.
    model: torch.nn.Module | None = field(default=None, repr=False)
    preprocessor: Preprocessor | None = field(default=None, repr=False)
    spec: Spec | None = None
    test_ci: dict | None = None  # {metric: {value, low, high}}, 95 % bootstrap on the test set
    artifact: str | None = None  # folder of the saved answer (what predict and export read)
    manifest: dict | None = None
    warnings: list[str] = field(default_factory=list)
    ensemble: dict | None = None  # {label, weights, cv_score} when the answer is an ensemble
    timing: dict | None = None  # wall seconds: search_s, answer_s or refit_s/ensemble_s, total_s
    # What answers: {"kind": "single" or "ensemble", "label": "#3" or "ensemble of #0, #4",
    # "architecture": the single's family or the ensemble's label, "trials", "weights"
    # ({trial: weight}), "cv_score", "test_scores" (= test_scores), "from": "folds" or
    # "refit"}; None when the search built no answer (refit=False).
    answer: dict | None = None
    # ``best``'s own test scores: the answer's when it answers alone; beside an ensemble that
    # answers, measured only to report (None when skipped to stay within --timeout).
    best_test_scores: dict | None = None
    classes: list[str] | None = None  # the class names, in predict_proba's column order
    # Each metric's name as printed beside its score: "recall (macro)", "f1 (binary, positive
    # class 'sick')" (describe.metric_labels)
    metric_labels: dict[str, str] | None = None
    # How a grouped search's test intervals were drawn ({"resampled": "groups", "groups": n},
    # "too few groups" (no interval) or "samples"); {} for an ungrouped search
    test_intervals: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        # QA: a notebook cell printed thousands of characters of leaderboard rows
        answer = (self.answer or {}).get("label") or (
            f"#{self.best['trial']}" if self.best else None)
        cv = (self.answer or {}).get("cv_score")
        test = {k: round(v, 4) for k, v in (self.test_scores or {}).items()
                if k in ("accuracy", "balanced_accuracy", "auroc") and v is not None}
        return (f"SearchResult(study={self.study!r}, answer={answer!r}, "
                f"cv={None if cv is None else round(cv, 4)}, test={test or None}, "
                f"complete={sum(r.get('state') == 'complete' for r in self.leaderboard)}, "
                f"artifact={self.artifact!r})")

    def predict(self, x, device: str = "cpu") -> list[str]:
        """The answer's predicted class (its most probable) for each raw sample."""
        proba = self.predict_proba(x, device=device)
        classes = self.classes or [str(i) for i in range(np.asarray(proba).shape[1])]
        return [classes[int(i)] for i in np.asarray(proba).argmax(1)]

    def predict_proba(self, x, device: str = "cpu"):
        """The answer's class probabilities for raw samples (read as the search read them),
        exactly as ``automed predict`` gives them from the saved model."""
        from automed.results.artifact import LoadedModel, in_model_layout
        from automed.searching.training import predict_proba

        if self.artifact is not None:
            return LoadedModel(self.artifact).predict_proba(x, device=device)
        if self.model is None:
            # QA: said "(refit=False)" of a workers=0 search, which only created the study
            raise AutomedError("this search kept no model: it answered nothing (refit=False, "
                               "or workers=0 created the study for `automed worker`); run "
                               "the search again without them to answer and keep a model")
        if isinstance(x, (str, bytes, os.PathLike)):
            raise DataError("this search saved no model (save_model=False), and only a saved "
                            "one reads files: give the samples themselves")
        from automed.plugin_manager import get_plugin_manager

        arch = get_plugin_manager().architectures().get((self.best or {}).get("architecture"))
        if self.spec is not None:
            x = in_model_layout(x, self.spec)
        return predict_proba(self.model, self.preprocessor.transform(x), device=device,
                             cpu_bf16=bool(arch is not None and arch.cpu_bf16))


def default_study_name(dataset: Dataset, metric: str, folds: int,
                       store: Store | None = None) -> str:
    """``<data file>-<metric>-cv<folds>``: the extension keeps data.csv and data.jsonl apart.

    Earlier versions named a study by the file's stem alone; with ``store``, a study of that
    name on this same data keeps its name, so re-running its command still resumes it.
    """
    source = Path(dataset.source)
    # in-memory data has no file name: its content names it (QA: every Dataset got one name,
    # and a second one was refused as "other data")
    unnamed = f"dataset-{dataset.fingerprint[:8]}"
    name = _fit_name(f"{source.name or unnamed}-{metric}-cv{folds}", store)
    old = f"{source.stem or unnamed}-{metric}-cv{folds}"
    if store is None or old == name or _stored_search(store, name) is not None:
        return name
    was = _stored_search(store, old)
    return old if was is not None and was["dataset_fingerprint"] == dataset.fingerprint else name


def _fit_name(name: str, store: Store | None) -> str:
    """A default name within MAX_STUDY_NAME: a long file name cut, with a hash of the whole
    (QA: a 250-character file name made a 269-character study, where --study is refused past
    120), unless a study of the long name is already stored (it resumes as it was)."""
    if len(name) <= MAX_STUDY_NAME or (store is not None
                                       and _stored_search(store, name) is not None):
        return name
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).hexdigest()
    return f"{name[:MAX_STUDY_NAME - 10]}~{digest}"


def _stored_search(store: Store, name: str) -> dict | None:
    try:
        return store.search(name)
    except ConfigError:
        return None


def check_study_name(name: str) -> str:
    if not name.strip():
        raise ConfigError("--study is empty; give the study a name (or leave --study out)")
    if len(name) > MAX_STUDY_NAME:
        raise ConfigError(f"--study is {len(name)} characters long; use at most "
                          f"{MAX_STUDY_NAME}")
    if not _STUDY_NAME.match(name) or name.strip(".") == "":
        raise ConfigError(f"--study {name!r} has path separators, control characters or is "
                          "only dots; use letters, digits, '-', '_' or spaces")
    return name


def search(
    data: str | Path | LoadedData,
    *,
    test: str | Path | None = None,
    metric: str = "accuracy",
    average: str = "macro",
    pos_label: str | int | None = None,
    folds: int = 5,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    results_db: str | None = None,
    study: str | None = None,
    architectures: list[str] | None = None,
    seed: int = 0,
    format: str | None = None,
    modality: str | None = None,
    label_col: str | int | None = None,
    group_col: str | int | None = None,
    text_col: str | list[str] | None = None,
    sequence_col: str | None = None,
    id_col: str | None = None,
    device: str = "auto",
    workers: int | None = None,
    gpus: str | None = None,
    trials_per_gpu: int = 1,
    heartbeat: float = HEARTBEAT_INTERVAL,
    prune: bool = True,
    refit: bool = True,
    ensemble: bool = True,
    max_epochs: int | None = None,
    progress=None,
    plugins: list[str | Path] | None = None,
    groups: str | Path | None = None,
    test_fraction: float | None = None,
    artifacts: str | Path | None = None,
    save_model: bool = True,
    bootstrap: int = 1000,
    deterministic: bool = False,
    refit_full: bool = False,
    bag: int | None = None,
) -> SearchResult:
    """Search every architecture that accepts the data; rank candidates by CV ``metric``.

    Placement: one worker in this process by default; ``workers`` CPU processes, or
    ``trials_per_gpu`` processes on each of ``gpus`` ("all", "none", "0,2"), share the study
    through the database, as ``automed worker`` processes on other machines can.
    ``plugins`` adds plugins that are not installed (``.py`` files or module names).
    ``results_db``: with ``storage`` an ``automed proxy`` (grpc://HOST:PORT), the database
    URL that automed's own tables are written to directly (``--results-db``).
    ``progress``: a callable given each progress event (a dict with ``"event"``: start,
    candidate, warning, answer, done, ...), or True to print the command line's progress
    lines to stderr (data warnings among them, then not raised as Python warnings too); by
    default a Python search prints nothing (its warnings are Python warnings, and
    ``result.warnings``).

    Groups (``group_col``, an npz ``groups`` key, or a ``groups`` file) make every split
    grouped. The locked test set is the data's own split, ``test``, or a grouped stratified
    ``test_fraction`` carved out first. The answer (the best candidate's k fold models, or
    an ensemble of several candidates' when that is better out-of-fold; with ``refit_full``
    a refit on all training data with ``bag`` seeds) is scored there once with ``bootstrap``
    resamples for 95 % intervals and saved (unless ``save_model`` is False) to ``artifacts``/
    <study>, by default ``automed_models/`` beside a SQLite database. ``save_model=False``
    keeps no fold models either, so the answer is then a refit on all training data (as with
    ``refit_full``), held in ``result.model``.

    ``data`` is a file path; a pandas DataFrame, read as a CSV file of it is (``label_col``
    and the other column options name its columns, ``test`` may be another DataFrame); or
    data built in memory: a ``Dataset`` (training data) or ``LoadedData(train, test)``,
    checked as a file's loading checks it (``test``, ``format``, ``modality``, the column
    options and ``groups`` then apply to files and DataFrames only). A DataFrame, like a
    Dataset, is searched in this process (no ``workers=0``; its study resumes by content).
    Errors are :class:`automed.errors.AutomedError` subclasses with one-line messages (named
    after the CLI's flags: ``--folds`` is ``folds=``).
    """
    if isinstance(data, Dataset):  # the obvious thing to pass: training data alone
        data = LoadedData(data)
    if _is_frame(data):
        # AutoGluon's habit, fit(train_data=df, label=...): read as the same table in a CSV
        # file is read, its columns named by the options (QA: refused)
        data = _frame_data(data, test, groups, dict(
            format=format, modality=modality, label_col=label_col, group_col=group_col,
            text_col=text_col, sequence_col=sequence_col, id_col=id_col))
        test = format = modality = groups = None
        label_col = group_col = text_col = sequence_col = id_col = None
    in_memory = isinstance(data, LoadedData)
    if not in_memory and not isinstance(data, (str, os.PathLike)):
        # QA: an array, an (x, y) pair or a DataFrame failed deep inside with "expected str,
        # bytes or os.PathLike object"
        raise ConfigError(f"data is a {type(data).__name__}: give a file path, a pandas "
                          "DataFrame (label_col= names its label), or arrays as "
                          "automed.Dataset(x, y, classes, modality) (tabular: x of shape "
                          "(n, features), y class indices)")
    printed = progress is True  # its lines say the data warnings (QA: printed twice)
    if progress is True:  # the command line's progress lines, in a notebook too
        from automed.cli import _Progress

        progress = _Progress(quiet=False)
    # Arguments of the wrong type, refused before anything is stored (QA (notebook): a string
    # progress failed the study after it was opened; prune="no" pruned; a Path storage raised
    # TypeError deep inside)
    if progress is not None and progress is not False and not callable(progress):
        raise ConfigError(f"progress={progress!r}: give True (the command line's lines), a "
                          "function taking each event dict, or None")
    progress = progress or None
    flags = dict(prune=prune, refit=refit, ensemble=ensemble, save_model=save_model,
                 deterministic=deterministic, refit_full=refit_full)
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):  # numpy's are bools too (review)
            raise ConfigError(f"{name}={value!r}: give True or False")
    prune, refit, ensemble, save_model, deterministic, refit_full = map(bool, flags.values())
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)  # a database file, as the string path is read
    if storage is not None and not isinstance(storage, str):
        raise ConfigError(f"storage={storage!r}: give a database URL (sqlite:///file.db, "
                          "postgresql://...) or a file path")
    if metric is None:
        metric = "accuracy"
    if architectures is not None and not architectures:
        raise ConfigError("architectures=[] names none; give some, or None for every family "
                          "that takes the data")
    if in_memory:
        given = [flag for flag, value in (("test", test), ("modality", modality),
                                          ("format", format)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to "
                              "files; give in-memory data its test set as LoadedData(train, "
                              "test) and its modality on the Dataset")
        if workers == 0:
            raise ConfigError("workers=0 creates a study for `automed worker` processes, which "
                              "need the data as a file path, not in-memory data")
    # One name may be given where a list is expected (not split into characters)
    architectures = [architectures] if isinstance(architectures, str) else architectures
    plugins = [plugins] if isinstance(plugins, (str, Path)) else plugins
    if isinstance(label_col, str) and label_col.strip().isdigit():
        label_col = int(label_col)  # a column index, stored as the CLI stores it
    options = {"label_col": label_col, "group_col": group_col, "text_col": text_col,
               "sequence_col": sequence_col, "id_col": id_col}
    plan = SearchPlan(
        data=DataPlan(path=None if in_memory else resolve_path(data), format=format,
                      modality=modality, test=resolve_path(test), test_fraction=test_fraction,
                      groups=resolve_path(groups), options=options),
        metric=metric, average=average, pos_label=None if pos_label is None else str(pos_label),
        folds=folds, seed=seed, architectures=list(architectures) if architectures else None,
        trials=trials, timeout=timeout, max_epochs=max_epochs, prune=prune, device=device,
        gpus=gpus, trials_per_gpu=trials_per_gpu, workers=workers, heartbeat=heartbeat,
        plugins=[plugin_ref(p) for p in plugins or []], bootstrap=bootstrap,
        deterministic=deterministic, refit_full=refit_full, bag=bag)
    with results_db_env(results_db, storage), warnings.catch_warnings():
        if printed:  # the progress lines say them; result.warnings keeps them
            warnings.filterwarnings("ignore", category=DataWarning)
        return run(plan, data=data if in_memory else None, storage=storage, study=study,
                   progress=progress, refit=refit, save_model=save_model,
                   artifacts=artifacts, ensemble=ensemble)


def _is_frame(data: Any) -> bool:
    """A pandas DataFrame (or one like it), without importing pandas."""
    return (hasattr(data, "columns") and hasattr(data, "to_csv")
            and getattr(data, "ndim", None) == 2)


def _frame_data(frame: Any, test: Any, groups: Any, options: dict) -> LoadedData:
    """A DataFrame (and a test one) as a file of its table is read: written to a CSV file
    and loaded, so detection (records, texts, sequences, signals), column options, checks and
    messages are a file's; the loaded data is then in memory (one process, like a Dataset).
    Messages name "the DataFrame" and its rows by position (``iloc``), not the file. A named
    index (``set_index("patient")``) is read as a column."""
    import csv
    import dataclasses
    import tempfile

    from automed.data.loaders import load_data

    if test is not None and not _is_frame(test):
        raise ConfigError(f"test is a {type(test).__name__}; with a DataFrame give the test "
                          "rows as a DataFrame too (or test_fraction=)")
    with tempfile.TemporaryDirectory(prefix="automed-frame-") as tmp:
        paths = {"train": Path(tmp) / "dataframe.csv", "test": Path(tmp) / "test.csv"}
        names = {"train": "the DataFrame", "test": "the test DataFrame"}
        rows_at: dict[str, dict[int, int]] = {}  # each file line a record starts on: its row

        def said(exc: AutomedError) -> AutomedError:
            text = str(exc)
            for part, path in paths.items():
                if text.startswith(str(path)):  # its lines are the DataFrame's rows (review:
                    # a groups file's lines were renumbered too; notes over several lines)
                    at = rows_at.get(part, {})
                    text = re.sub(r"\blines? (\d+)(?: and (\d+))?",
                                  lambda m, at=at: _rows_named(m, at), text)
                text = text.replace(str(path), names[part])
            return type(exc)(text.replace(tmp, "the DataFrame"))

        for part, df in (("train", frame), ("test", test)):
            if df is None:
                continue
            which = names[part]
            if any(n is not None for n in getattr(df.index, "names", [None])):
                df = df.reset_index()  # a named index: a column (review: "no column patient")
            if not all(isinstance(c, str) for c in df.columns):
                # review: numbered columns were written as a header of numbers, read as a
                # sample of a headerless signal table
                raise DataError(f"{which}'s columns are not all named by strings (such as "
                                f"{next(c for c in df.columns if not isinstance(c, str))!r}): "
                                "name them (df.columns = [...]) so that label_col= can name "
                                "the label")
            if len(set(df.columns)) != len(df.columns):
                raise DataError(f"{which} names a column twice; give each column once")
            df.to_csv(paths[part], index=False)
            with paths[part].open(encoding="utf-8", newline="") as f:
                reader, start, at = csv.reader(f), 1, {}
                for k, _ in enumerate(reader):
                    if k:
                        at[start] = k - 1
                    start = reader.line_num + 1
            rows_at[part] = at
        try:
            loaded = load_data(paths["train"], test=paths["test"] if test is not None else None,
                               groups=groups, **{k: v for k, v in options.items()
                                                 if v is not None})
        except AutomedError as exc:
            raise said(exc) from None
    # the options that read it, kept for the saved model: a new file of its table is read
    # with them (review: a model searched on a DataFrame forgot its text and label columns)
    used = {k: v for k, v in options.items() if v is not None}
    train = dataclasses.replace(loaded.train, source="",
                                meta={**loaded.train.meta, "frame_options": used})
    return LoadedData(train, None if loaded.test is None else
                      dataclasses.replace(loaded.test, source=""))


def _rows_named(match: re.Match, at: dict[int, int]) -> str:
    """"line 4" or "lines 4 and 11" of a DataFrame's CSV as its rows, "row iloc[2]"."""
    numbers = [int(n) for n in match.groups() if n is not None]
    if not all(n in at for n in numbers):
        return match.group(0)
    rows = " and ".join(f"iloc[{at[n]}]" for n in numbers)
    return f"row{'s' if len(numbers) > 1 else ''} {rows}"


def _family_defaults(archs: dict[str, Architecture], spec: Spec,
                     trials: int | None = None, specs: dict[str, Spec] | None = None,
                     said: list[str] | None = None) -> list[tuple[str, dict, dict]]:
    """The portfolio of known-good starts, strong-and-cheap families first (see portfolio),
    as ``(family, study parameters, fixed parameters)`` (:func:`automed.contract.split_defaults`).
    ``specs`` are the specs of families with a preprocessor of their own. A family whose
    ``default_params`` raises has no start (its candidates come from its search space), said
    in ``said``.
    """
    specs = specs or {}
    said = [] if said is None else said

    def spec_of(name: str) -> Spec:
        return specs.get(name, spec)

    def order(item: tuple[str, Architecture]) -> tuple[int, str]:
        try:
            return int(item[1].priority(spec_of(item[0]))), item[0]
        except (Exception, SystemExit):  # noqa: BLE001 - a faulty plugin goes last, not the
            return 100, item[0]  # search down (SystemExit: its sys.exit, as in a candidate)

    per_family = []
    for name, arch in sorted(archs.items(), key=order):
        try:
            defaults = arch.default_params(spec_of(name))
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a faulty plugin loses its start
            defaults = None
            said.append(f"{name}: default_params raised {type(exc).__name__}: {exc}; the family "
                        "has no portfolio start (its candidates come from its search space)")
        if defaults:
            known = {**TRAINING_DEFAULTS, **defaults}
            configs: list[dict] = []
            for override in portfolio.entries(spec.modality, name):
                config = {**defaults, **{k: v for k, v in override.items() if k in known}}
                if config not in configs:
                    configs.append(config)
            per_family.append((name, configs))
    starts = portfolio.interleave(per_family, None if trials is None else trials // 2)
    # Left-out training keys take the library defaults where the family's space can hold
    # them; values outside it train as given (fixed): see split_defaults.
    return [(name, *split_defaults(archs[name], spec_of(name), config))
            for name, config in starts]


def _config(p: Prepared, slots) -> dict:
    """The search's stored config: the plan itself plus the facts readers show."""
    plan = p.plan
    return {"plan": plan.to_dict(), "identity": p.identity(),
            # Read by the leaderboard, show, report and the resume check:
            "metric": p.metric, "average": p.average, "pos_label": p.pos_label,
            "folds": plan.folds, "cv_seed": plan.seed, "architectures": sorted(p.architectures),
            "trials": plan.trials, "timeout": plan.timeout, "max_epochs": plan.max_epochs,
            "prune": plan.prune, "devices": [sl.device for sl in slots],
            "spec": p.spec.to_dict(), "source": p.train.source,
            "test_source": p.test.source if p.test is not None else None,
            "test_fraction": plan.data.test_fraction, "grouped": p.train.groups is not None,
            **_grouping(p),
            "bootstrap": plan.bootstrap, "leakage": p.leakage, "leakage_warnings": p.warnings,
            # The dataset row counts the whole file; these, what the search and test use.
            "n_train": len(p.train), "n_test": None if p.test is None else len(p.test),
            # where each third-party family came from: a resume without it says what to
            # install (QA: "unknown architecture pkgconv", where predict said pip install)
            "providers": _providers(p.architectures)}


def _providers(architectures) -> dict:
    from automed.plugin_manager import get_plugin_manager

    pm = get_plugin_manager()
    return {name: given for name in sorted(architectures)
            if (given := pm.provider(name)) is not None}


def _add_warning(folder: Path, warning: str) -> None:
    """Add ``warning`` to a saved answer's config (what its model card lists)."""
    import json

    from automed.results.artifact import CONFIG

    path = folder / CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    config["leakage_warnings"] = [*(config.get("leakage_warnings") or []), warning]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _one_class_answer(predictions: dict | None) -> str | None:
    """What to say of an answer that predicts one class for every test sample of a test set
    holding several: it has learnt nothing that ranks, whatever its accuracy."""
    if not predictions or not predictions.get("proba"):
        return None
    predicted = np.asarray(predictions["proba"], dtype=float).argmax(1)
    truth = set(predictions.get("y_true") or [])
    if len(set(predicted.tolist())) > 1 or len(truth) < 2:
        return None
    name = predictions["classes"][int(predicted[0])]
    return (f"the answer predicts class {name!r} for every one of the {len(predicted)} test "
            "samples: it tells the classes apart nowhere; give the search more time "
            "(--timeout, --trials) or more data")


def _grouping(p: Prepared) -> dict:
    """Which ids group the folds, and how many patients they name (the search, show and the
    report say it)."""
    if p.train.groups is None:
        return {}
    d = p.plan.data
    column = d.options.get("group_col")
    by = (repr(str(column)) if column is not None else
          f"the ids of {Path(d.groups).name}" if d.groups else "the data's group ids")
    return {"group_by": by, "n_groups": len(set(np.asarray(p.train.groups).tolist()))}


def data_line(p: Prepared) -> str:
    """The search's first data line. With --test-fraction it counts the whole file (as the
    dataset row, ``show`` and the report do) and says how it was split."""
    train, test, full = p.train, p.test, p.full
    if not p.plan.data.test_fraction or test is None:
        # QA: a table's split column was dropped and its test rows kept out, unsaid
        # (its rows carry their file rows: records.build)
        marked = (f"; {len(test)} more rows its split column marks test (the locked test set)"
                  if test is not None and not p.plan.data.test and "file_rows" in test.meta
                  else "")
        return train.summary() + marked + _columns_said(train)
    counts = ", ".join(f"{c}: {n}" for c, n in train.class_counts().items())
    return (f"{len(full)} {full.modality} samples{full.shape_words()}, {full.n_classes} "
            f"classes: {len(train)} for "
            f"the search ({counts}), {len(test)} held out as test" + _columns_said(train))


def _columns_said(train) -> str:
    """How a table's columns are read (QA: nothing said which were numbers and which
    categories, or that the label and the split column are no features)."""
    columns = train.meta.get("tabular_columns") if train.modality == "tabular" else None
    if train.meta.get("channels_note"):
        return f"; {train.meta['channels_note']}"
    if not columns:
        unread = train.meta.get("unread_columns")  # beside sequences: said, not dropped unsaid
        what = "texts" if train.modality == "text" else "sequences"
        named = (f"; text column {train.meta['text_col']!r}"
                 if train.modality == "text" and train.meta.get("text_col") else "")
        return named + (f"; columns not read: {_some(unread)} (a {train.modality} search reads "
                        f"the {what} and their labels only; --id-col names a record id, "
                        "--group-col a patient id, --modality tabular reads a table of "
                        f"features, its {what} as categories)" if unread else "")
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"]
    levels = [f"{c['name']} ({len(c['levels'])} levels)" for c in columns
              if c["kind"] != "numeric"]
    parts = ([f"numeric {_some(numeric)}"] if numeric else []) + (
        [f"categorical {_some(levels)}"] if levels else [])
    label = train.meta.get("label_name")
    return f"; features: {'; '.join(parts)}" + (f"; label: {label}" if label else "")


def _some(names: list[str], shown: int = 12) -> str:
    """Names, or the first and last of many with their count (QA: a 3,000-column table's data
    line ran to 20,000 characters; the model card still lists them all)."""
    if len(names) <= shown:
        return ", ".join(names)
    return (f"{len(names)} columns: {', '.join(names[:shown - 2])}, ..., "
            f"{', '.join(names[-2:])}")


def _changed_numerics(was: dict, now: dict) -> list[str]:
    """What a resume trains differently from the study's earlier runs (QA: bf16 off on resume
    and --deterministic dropped were taken unsaid, and the manifest then spoke for all)."""
    said = []
    if "cpu_bf16" in was and was["cpu_bf16"] != now.get("cpu_bf16"):
        said.append(f"this run trains {'with' if now.get('cpu_bf16') else 'without'} bf16 "
                    "autocast on the CPU, the study's earlier runs "
                    f"{'with' if was['cpu_bf16'] else 'without'} (AUTOMED_CPU_BF16, or another "
                    "CPU): their candidates' scores compare less exactly")
    if "deterministic" in was and bool(was["deterministic"]) != bool(now.get("deterministic")):
        said.append(f"this run is {'' if now.get('deterministic') else 'not '}--deterministic, "
                    f"the study's earlier runs were {'' if was['deterministic'] else 'not'}: "
                    "give the same flag for a study that repeats exactly")
    return said


def _changed_run(stored: dict, plan: SearchPlan, study_name: str,
                 artifacts: str | Path | None) -> list[str]:
    """What a resume runs or answers otherwise than the study's earlier runs (``stored``: its
    config), said: pruning switched (QA: unsaid, and its plan then spoke for every worker), or
    another --artifacts than the folder of its fold models (QA: they were left unread and the
    answer silently became a refit with other test scores)."""
    said = []
    was_pruning = (stored.get("plan") or {}).get("prune")
    if was_pruning is not None and bool(was_pruning) != bool(plan.prune):
        said.append(f"this run {'prunes' if plan.prune else 'does not prune'}, the study's "
                    f"earlier runs {'did' if was_pruning else 'did not'} "
                    f"({'--no-prune' if not was_pruning else 'no --no-prune'}): from now on "
                    "its workers follow this run")
    kept = stored.get("fold_models")
    # without --artifacts a resume uses the study's own folder; a folder gone is looked for
    # beside the database (a moved project)
    if artifacts is not None and kept and Path(kept).exists():
        root = Path(kept).parent
        if root != Path(artifacts).expanduser().resolve():
            said.append(f"study {study_name!r} keeps its candidates' fold models in {root}, "
                        f"and this run saves to {artifacts}: the answer is refit there (its "
                        f"test scores may differ); give --artifacts "
                        f"{shlex.quote(str(root))} (or none) to answer from them")
    return said


def _study_uid(store: Store, study_name: str, search_id: int) -> str:
    """The study's uid (see results.artifact.study_stamp); a study from before uids gets one."""
    uid = (store.search(study_name)["config"] or {}).get("uid")
    if not uid:
        uid = uuid.uuid4().hex
        store.update_search_config(search_id, uid=uid)
    return uid


def _check_resume(store: Store, study_name: str, plan: SearchPlan, identity: dict,
                  architectures: dict[str, Architecture], pos_label: int | None = None,
                  counts: tuple[int | None, int | None] | None = None) -> dict:
    """Refuse a resume whose settings or data differ from the stored study's; its stored
    config ({} for a new study). ``pos_label``: this run's positive class as resolved (an
    index), which a stored one is compared with (QA: the default class given by name,
    --pos-label 1, was refused as another class)."""
    try:
        stored = store.search(study_name)["config"]
    except ConfigError:  # a new search: its name must be free in Optuna's tables too
        try:
            store.optuna_storage().get_study_id_from_name(study_name)
        except KeyError:
            return {}
        try:  # the same search started at once elsewhere wrote its row, then its study
            stored = store.search(study_name)["config"]
        except ConfigError:
            # QA: a plain Optuna study of this name was taken over as a resume and crashed
            # the answer (KeyError: 'architecture'), leaving a failed search row behind
            raise ConfigError(f"study {study_name!r} in this database was made by another "
                              "Optuna program, not by automed; give another --study "
                              "name") from None
    if "plan" in stored:
        same = ("pos_label",) if "pos_label" in stored and stored["pos_label"] == pos_label \
            else ()
        old = dict(stored.get("identity") or {})
        was, now = old.pop("preprocessing", None) or {}, dict(identity)
        now.pop("preprocessing", None)
        plan.check_resumable(SearchPlan.from_dict(stored["plan"], study_name), study_name, same,
                             same_data=bool(old) and Prepared.differs(old, now) is None)
        for name in sorted(was.keys() & (identity.get("preprocessing") or {}).keys()):
            if was[name] != identity["preprocessing"][name]:
                raise ConfigError(
                    f"study {study_name!r} searched {name} with preprocessing {was[name]}, this "
                    f"run with {identity['preprocessing'][name]}; use the same family settings "
                    "(e.g. AUTOMED_HF_MODEL) or another --study name")
        what = Prepared.differs(old, now) if old else None
        if what is not None:
            # what differs, and by how much where counts say it (QA: adding one image was
            # told "other data, groups or test rows")
            part = {"full": "its samples or labels", "train": "its training samples or labels",
                    "test": "its test rows", "grouped": "its groups",
                    "folds": "its groups or folds", "records": "its samples"}.get(what, what)
            changed = [f"{n} {name} samples then, {m} now" for name, n, m in (
                ("training", stored.get("n_train"), (counts or (None, None))[0]),
                ("test", stored.get("n_test"), (counts or (None, None))[1]))
                if n is not None and m is not None and n != m]
            raise ConfigError(f"study {study_name!r} was created on other data ({part} differ"
                              + (f": {', '.join(changed)}" if changed else "")
                              + "); use the same files or another --study name")
    # The families are one categorical of the study's space: Optuna cannot change its choices.
    was = stored.get("architectures")
    if was is not None and sorted(was) != sorted(architectures):
        missing = _plugins_not_given(stored.get("plan") or {}, plan)
        gone = _uninstalled(stored, set(was) - set(architectures))
        raise ConfigError(
            f"study {study_name!r} searched the architectures {', '.join(sorted(was))}, this "
            f"run {', '.join(sorted(architectures))}; "
            + (f"it was searched with --plugin {' --plugin '.join(missing)}: give it again, "
               "or another --study name" if missing else
               f"{gone[0]}: {gone[1]}" if gone else
               "give the same --arch (and plugins) or another --study name"))
    return stored or {}


def _uninstalled(stored: dict, names: set[str]) -> tuple[str, str] | None:
    """``(family, how to get it back)`` for a family of ``names`` that an installed plugin
    gave the stored study and that is not here now (review: a resume without --arch said
    only "give the same --arch")."""
    from automed.plugin_manager import get_plugin_manager
    from automed.results.artifact import _plugin_to_give

    known = get_plugin_manager().architectures()
    for name in sorted(names):
        given = (stored.get("providers") or {}).get(name)
        if name not in known and isinstance(given, dict) and given.get("distribution"):
            return name, _plugin_to_give(given, None, False)
    return None


def _plugins_not_given(stored_plan: dict, plan: SearchPlan) -> list[str]:
    """The plugins a stored study was searched with that this run was not given (QA: a
    resume without them said "unknown architecture" and named none)."""
    given = {r.get("source") for r in plan.plugins}
    return [shlex.quote(str(r.get("source"))) for r in stored_plan.get("plugins") or []
            if isinstance(r, dict) and r.get("source") and r.get("source") not in given]


def _first_label_study(plan: SearchPlan, storage: str | None, study: str | None) -> bool:
    """Whether a stored study (``study``, or any without a name given) read this file
    without --label-col: made before two label-like columns were refused, it resumes with
    the label it found then (the first known name)."""
    if plan.data.path is None or plan.data.options.get("label_col") is not None:
        return False
    try:
        store = Store(storage, existing=True)
        searches = store.studies()
    except AutomedError:
        return False
    if study is None:
        # only the study this command resumes, by its default name (QA: a new study, another
        # --metric, took the label an older study of the file had found, where a fresh
        # database refused the two columns)
        path = Path(plan.data.path)
        names = {_fit_name(f"{n}-{plan.metric}-cv{plan.folds}", store)
                 for n in (path.name, path.stem)}
    else:
        names = {study}
    for s in searches:
        data = ((s["config"] or {}).get("plan") or {}).get("data") or {}
        if (data.get("path") == plan.data.path and s["study"] in names
                and (data.get("options") or {}).get("label_col") is None):
            return True
    return False


def _prepared(plan: SearchPlan, data: LoadedData | None, storage: str | None,
              study: str | None) -> Prepared:
    """:func:`prepare`, whose "unknown architecture" names the plugins an existing study of
    this name was searched with, when this run lacks them."""
    try:
        return prepare(plan, data)
    except DataError as exc:
        if "could each be the label" not in str(exc) or not _first_label_study(
                plan, storage, study):
            raise
        from automed.data.loaders import records

        token = records.FIRST_LABEL.set(True)
        try:
            return prepare(plan, data)
        finally:
            records.FIRST_LABEL.reset(token)
    except ConfigError as exc:
        if study is None or not str(exc).startswith("unknown architecture"):
            raise
        try:
            stored = Store(storage, existing=True).search(study)["config"] or {}
        except AutomedError:
            raise exc from None
        missing = _plugins_not_given(stored.get("plan") or {}, plan)
        if not missing:
            gone = _uninstalled(stored, set(plan.architectures or ()))
            if gone:
                raise ConfigError(f"unknown architecture {gone[0]}; study {study!r} searched "
                                  f"it: {gone[1]}") from None
            raise
        raise ConfigError(f"{str(exc).split('; available')[0]}; study {study!r} was searched "
                          f"with --plugin {' --plugin '.join(missing)}: give it again") from None


def run(plan: SearchPlan, *, data: LoadedData | None = None, storage: str | None = None,
        study: str | None = None, progress=None, refit: bool = True, save_model: bool = True,
        artifacts: str | Path | None = None, ensemble: bool = True) -> SearchResult:
    """Carry out ``plan``: the whole search, from loading to the saved refit model.

    With ``ensemble`` (and ``refit``), a greedy ensemble of the best candidates is selected on
    their out-of-fold predictions; when it beats the best single candidate there, its members
    are refit and it becomes the answer (artifact, test scores), with its own leaderboard row.

    An error after the study is opened marks it failed (a resume continues it); Ctrl-C marks
    it interrupted. The caller's Optuna log level and torch random state are left as they
    were (a notebook runs more than searches).
    """
    if artifacts is not None:
        output_dir(artifacts, "--artifacts")  # before anything is written
    if plan.gpus == "all":
        from automed.searching.devices import visible_gpus

        if not visible_gpus():
            warnings.warn("--gpus all: no GPU is visible; training on the CPU",
                          stacklevel=user_stacklevel())
    opened: dict = {}
    verbosity, rng = optuna.logging.get_verbosity(), torch.random.get_rng_state()
    # --deterministic switches torch's kernels for this search only (QA: it stayed on in the
    # notebook, and the next search's manifest said it was off)
    determinism = (torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled(),
                   torch.backends.cudnn.benchmark)
    try:
        return _run(plan, data=data, storage=storage, study=study, progress=progress,
                    refit=refit, save_model=save_model, artifacts=artifacts, ensemble=ensemble,
                    opened=opened)
    except KeyboardInterrupt as exc:
        if not opened:  # Ctrl-C while reading the data: no study to resume (the CLI says so)
            exc.nothing_stored = True
        raise
    except Exception as exc:
        if opened:
            try:  # else it stays "running" under a live process (studies, show say so)
                # and why, for show and studies (QA: a failed study gave no reason)
                said = str(exc).splitlines()[0] if str(exc) else ""
                opened["store"].update_search_config(
                    opened["search_id"], failure=f"{type(exc).__name__}: {said}"[:300])
                opened["store"].finish_search(opened["search_id"], status="failed")
            except Exception:  # noqa: BLE001 - the error being raised is the one to see
                pass
        raise
    finally:
        optuna.logging.set_verbosity(verbosity)
        torch.random.set_rng_state(rng)
        torch.use_deterministic_algorithms(determinism[0], warn_only=determinism[1])
        torch.backends.cudnn.benchmark = determinism[2]


def _run(plan: SearchPlan, *, data: LoadedData | None, storage: str | None, study: str | None,
         progress, refit: bool, save_model: bool, artifacts: str | Path | None, ensemble: bool,
         opened: dict) -> SearchResult:
    progress = progress or (lambda event: None)
    wall_start = time.monotonic()
    if study is not None:
        check_study_name(study)
    load_plugins(plan)  # before loading: plugins may bring loaders
    slots = plan_slots(plan.gpus, plan.trials_per_gpu, plan.workers, plan.device)
    if len(slots) > 1 and data is not None:
        raise ConfigError("several workers need the data as a file path, not in-memory data")
    if plan.deterministic:
        enable_determinism()
    portfolio.check()
    source = Path(plan.data.path) if plan.data.path else None
    if source is not None and source.is_file() and source.stat().st_size > BIG_FILE:
        # QA: 200,000 rows printed nothing for 110 s (reading, checks, leakage)
        progress({"event": "note", "message": f"reading {source.name} "
                  f"({source.stat().st_size / 1e6:.0f} MB) and checking it ..."})
    elif source is not None and source.is_dir():
        # QA: 3,000 224x224 PNGs read for 24 s before any line
        files = sum(len(names) for _, _, names in os.walk(source))
        if files >= BIG_FOLDER:
            progress({"event": "note", "message": f"reading the folder {source.name} "
                      f"({files:,} files) and checking it ..."})
    p = _prepared(plan, data, storage, study)
    read_s = time.monotonic() - wall_start
    train, test = p.train, p.test
    store = Store(storage)
    study_name = study or default_study_name(p.full, p.metric, plan.folds, store)
    dev = torch.device(slots[0].device)
    prior = _check_resume(store, study_name, plan, p.identity(), p.architectures, p.pos_label,
                          (len(p.train), None if p.test is None else len(p.test)))
    config = _config(p, slots)
    manifest = build_manifest(train, test, seed=plan.seed, device=dev,
                              deterministic=plan.deterministic, leakage=p.leakage)
    # The dataset as loaded (before any --test-fraction carve-out), so a resume matches it.
    full = p.full
    dataset_id = store.upsert_dataset(
        fingerprint=full.fingerprint, name=Path(full.source).stem, source=full.source,
        modality=full.modality, n_samples=len(full), classes=full.classes,
        class_counts=full.class_counts(), input_shape=list(p.spec.input_shape))
    if save_model:  # a model folder it cannot write is refused before the study opens (QA)
        default_dir(store.url, study_name,
                    artifacts if artifacts is not None else prior.get("artifacts_root"))
    search_id, resumed = store.open_search(study_name, dataset_id, p.metric,
                                           {**config, "uid": uuid.uuid4().hex})
    opened.update(store=store, search_id=search_id)
    # Whose models the folders hold: the answer's folder is this database's and study's own,
    # and its stamp (and every kept bag's) names this very study, so nothing another study
    # of the same name wrote is ever read as this one's.
    stamp = study_stamp(store.url, study_name, _study_uid(store, study_name, search_id),
                        full.fingerprint)
    stored_config = (store.search(study_name)["config"] or {}) if resumed else {}
    p.warnings.extend(_changed_numerics(stored_config.get("manifest") or {}, manifest)
                      + _changed_run(stored_config, plan, study_name, artifacts))
    if resumed and artifacts is None:
        # QA: a resume without the first run's --artifacts saved its answer beside the
        # database and left the first run's fold models unread
        artifacts = stored_config.get("artifacts_root")
    folder = default_dir(store.url, study_name, artifacts)
    earlier = stored_config.get("artifact") or stored_config.get("fold_models")
    if earlier and not folder.exists():
        # A project moved or copied with its database: the folder's name hashes the
        # database's path, so look for the one the study wrote (QA: its fold models were
        # left unread and the answer silently became a refit with other test scores).
        name = Path(earlier).name.removesuffix(foldbag.CANDIDATES_SUFFIX)
        if (folder.parent / name).is_dir() or (folder.parent / (
                name + foldbag.CANDIDATES_SUFFIX)).is_dir():
            folder = folder.parent / name
    # Complete candidates keep their fold models there, for an answer without a refit.
    fold_root = (foldbag.candidates_dir(folder) if refit and save_model and not plan.refit_full
                 else None)
    if fold_root is not None:
        foldbag.claim(fold_root, stamp)
    # Fold bags whose test predictions every worker keeps time for (the final phase fits an
    # ensemble's size to the time left).
    answer_members = (foldbag.RESERVED_MEMBERS if ensemble else 1) if fold_root else 0
    # This run's plan (a resume may change the budget), read by every worker; this run's
    # manifest.
    store.update_search_config(search_id, owner={"host": socket.gethostname(),
                                                 "pid": os.getpid()},
                               manifest=manifest, plan=plan.to_dict(),
                               trials=plan.trials, timeout=plan.timeout,
                               identity=p.identity(), n_train=config["n_train"],
                               n_test=config["n_test"],  # for a study from before they were
                               fold_models=None if fold_root is None else str(fold_root),
                               answer_members=answer_members,
                               artifacts_root=None if artifacts is None else
                               str(Path(artifacts).expanduser().resolve()))
    for message in p.warnings:
        warnings.warn(message, DataWarning, stacklevel=user_stacklevel())
        progress({"event": "warning", "message": message})

    ostudy = open_study(store, study_name, seed=plan.seed, prune=plan.prune,
                        search_id=search_id, heartbeat=plan.heartbeat, create=True)
    if not ostudy.trials:
        faults: list[str] = []
        enqueue_defaults(ostudy, _family_defaults(p.architectures, p.spec, plan.trials,
                                                    p.specs, faults))
        for message in faults:  # a plugin's bug, said (QA: it was silently skipped)
            warnings.warn(message, PluginWarning, stacklevel=user_stacklevel())
            progress({"event": "warning", "message": message})
    retry_interrupted(ostudy)
    leader = store.leaderboard(study_name, top=1) if resumed else []
    progress({"event": "start", "study": study_name, "storage": store.redacted,
              "best": leader[0]["score_mean"] if leader else None,
              "dataset": data_line(p), "architectures": sorted(p.architectures),
              "folds": plan.folds, "metric": p.metric, "trials": plan.trials,
              "objective": objective_words(config, p.metric, p.train.classes),
              "done": counted_trials(ostudy), "resumed": resumed,
              "device": ", ".join(sorted({sl.device for sl in slots})),
              "workers": len(slots), "reason": train.meta.get("reason"),
              "read_s": read_s})
    if plan.timeout is not None and read_s > plan.timeout / 2:
        progress({"event": "note", "message": f"reading and checking the data took "
                  f"{read_s:.0f} s of the {plan.timeout:g} s --timeout; the first candidate "
                  "still runs (a search always answers), so the search ends past it"})
    if plan.workers == 0:
        # Only create the study: workers join it with `automed worker` (here or elsewhere);
        # with --timeout, the first to join starts its clock (see workers.study_ends_at).
        store.update_search_config(search_id, search_ends_at=None)
        store.finish_search(search_id, status="created")
        return SearchResult(study_name, store.redacted, store.leaderboard(study_name), None,
                            resumed=resumed, spec=p.spec)
    objective = Objective(p, store=store, study_name=study_name, search_id=search_id,
                          device=dev, progress=progress)
    objective.fold_models, objective.fold_owner = fold_root, stamp
    if refit and plan.refit_full:
        # --timeout covers the refit of the answer (each seed of its bag) and, with
        # ensembles, of up to two more members.
        objective.refits_after = plan.seeds * (1 + 2 * bool(ensemble))
    elif refit:
        objective.answer_members = answer_members  # the fold bags' test predictions
    deadline = None if plan.timeout is None else wall_start + plan.timeout
    # --timeout counts from the command's start: loading and checking the data used some of it
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    # When this session's search ends, for `automed worker`s that join it (QA: they ignored
    # --timeout and trained on past the answer)
    store.update_search_config(search_id, search_ends_at=None if left is None
                               else time.time() + left)

    def searching() -> None:
        if (len(slots) > 1 and plan.trials is not None
                and counted_trials(ostudy) >= plan.trials and not waiting_retries(ostudy)
                and not ostudy.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.RUNNING,))):
            return  # the budget is used: no worker processes to start (QA: 10 s to resume)
        if len(slots) == 1:
            run_trials(objective, ostudy, trials=plan.trials, timeout=left,
                       heartbeat=plan.heartbeat)
        else:
            run_local_workers(store, study_name, slots, timeout=left,
                              allowed_plugins=plan.plugins, progress=progress)

    def interrupted() -> None:
        store.finish_search(search_id, status="interrupted")

    stopping(searching, on_stop=interrupted)  # Ctrl-C: see interrupts
    if plan.timeout is not None:  # its search is over (maybe early, to keep time to answer):
        store.update_search_config(search_id, search_ends_at=time.time())  # so is a worker's

    timing = {"timeout": plan.timeout, "search_s": time.monotonic() - wall_start}
    result = SearchResult(study_name, store.redacted, store.leaderboard(study_name), None,
                          classes=list(train.classes),
                          metric_labels=metric_labels(config, train.classes),
                          resumed=resumed, spec=p.spec, manifest=manifest, warnings=p.warnings)
    completed = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        store.finish_search(search_id, status="failed")
        hint = (f"raise --timeout (it was {plan.timeout:g} s)" if plan.timeout is not None else
                f"see `automed leaderboard --study {shlex.quote(study_name)} --all` for their "
                "errors, fix them, and search again under a new --study name (a resume counts "
                "these candidates as done)")
        raise AutomedError(f"no candidate of study {study_name!r} completed; {hint}")
    # The leaderboard's first row leads (its tie-break decides, not Optuna's).
    result.best = result.leaderboard[0] if result.leaderboard else None
    best = next((t for t in completed if result.best and t.number == result.best["trial"]),
                ostudy.best_trial)
    if not refit:
        store.finish_search(search_id, status="complete", best_trial=best.number)
        progress({"event": "done", "study": study_name, "best": result.best,
                  "test_scores": None, "ensemble": None, "timing": None})
        return result
    # "answering" while the answer is made from the fold models (no refit), "refitting" with
    # --refit-full (QA: a search that refit nothing read "refitting")
    store.finish_search(search_id, status="refitting" if plan.refit_full else "answering")
    completed_by_number = {t.number: t for t in completed}
    # The leader answers only when its out-of-fold lead over the first portfolio start is
    # more than chance; else that start does (the winner's curse: see selection).
    best, choice = choose_single(p, store, search_id, completed_by_number, best)
    store.update_search_config(search_id, choice=choice)
    if choice is not None:
        progress({"event": "choice", **choice})
        result.best = next((r for r in result.leaderboard if r["trial"] == best.number),
                           result.best)
    if not ensemble:
        store.delete_candidate(search_id, ENSEMBLE_TRIAL)  # a resumed run's old blend
    if save_model:
        # The folder is rewritten now: until its new answer is whole it belongs to no study,
        # and predict and export refuse it.
        (folder / STAMP).unlink(missing_ok=True)

    def answer() -> _Final:
        final = None
        if fold_root is not None:
            final = _answer_from_folds(p, store, search_id, study_name, best, completed_by_number,
                                       fold_root, folder, dev, ensemble=ensemble,
                                       manifest=manifest, progress=progress, deadline=deadline,
                                       owner=stamp)
            if final is not None:
                timing["answer_s"] = time.monotonic() - wall_start - timing["search_s"]
        if final is None:
            final = _answer_by_refit(p, store, search_id, study_name, best,
                                     completed_by_number, folder, dev, ensemble=ensemble,
                                     deadline=deadline, manifest=manifest, progress=progress,
                                     save_model=save_model, timing=timing,
                                     wall_start=wall_start, best_row=result.best)
        return final

    final = stopping(answer, on_stop=interrupted)
    if final.artifact is not None:
        write_stamp(final.artifact, stamp)
    ens = final.ensemble
    answer = "ensemble" if ens is not None and ens.answers else "single"
    result.model, result.preprocessor = final.model, final.preprocessor
    if final.model is not None:
        result.spec = p.spec_for(final.architecture)  # the spec model and preprocessor share
    result.test_size = len(test) if test is not None else None
    result.test_scores, result.test_ci = final.test_scores, final.test_ci
    result.test_intervals = test_intervals(p) if result.test_ci else {}
    if answer == "ensemble":
        result.ensemble = {"label": ens.selection.label(), "weights": ens.selection.weights,
                           "cv_score": ens.cv["score_mean"]}
        result.answer = {"kind": "ensemble", "label": ens.selection.label(),
                         "architecture": ens.selection.label(),
                         "trials": sorted(ens.selection.weights),
                         "weights": dict(ens.selection.weights),
                         "cv_score": ens.cv["score_mean"]}
    else:
        result.answer = {"kind": "single", "label": f"#{best.number}",
                         "architecture": best.params["architecture"], "trials": [best.number],
                         "weights": {best.number: 1.0},
                         "cv_score": (result.best or {}).get("score_mean")}
    result.answer.update(test_scores=result.test_scores,
                         **{"from": "folds" if final.from_folds else "refit"})
    result.best_test_scores = (final.single or {}).get("test_scores")
    result.artifact = None if final.artifact is None else str(final.artifact)
    timing["total_s"] = time.monotonic() - wall_start
    result.timing = timing
    # Read again now that the answer is built: an ensemble's row (trial -1) is written only
    # in the final phase, and the leaderboard shows it as `automed leaderboard` does.
    result.leaderboard = store.leaderboard(study_name, states=("complete", "ensemble"))
    result.best = next((r for r in result.leaderboard if r["trial"] == best.number),
                       result.best)  # the same row, ranked among them
    one_class = _one_class_answer(final.test_predictions)
    if one_class:  # QA: an answer that said one class for every test sample, unsaid
        warnings.warn(one_class, DataWarning, stacklevel=user_stacklevel())
        progress({"event": "warning", "message": one_class})
        p.warnings.append(one_class)
        result.warnings = p.warnings
        if final.artifact is not None:  # written before it was scored: its card says it too
            _add_warning(Path(final.artifact), one_class)
    store.update_search_config(
        search_id, artifact=result.artifact, test_ci=result.test_ci, answer=answer,
        test_intervals=result.test_intervals,
        leakage_warnings=p.warnings,
        answer_from="folds" if final.from_folds else "refit",
        single=final.single, timing=timing,
        ensemble=None if ens is None else {
            "label": ens.selection.label(), "weights": ens.selection.weights,
            "picks": ens.selection.picks, "oof_score": ens.selection.score,
            "single_oof_score": ens.selection.single, "better": ens.better,
            "objective": ens.objective, "keeps_metric": ens.keeps_metric,
            "late": ens.late, "against": ens.against, "margin": ens.margin,
            "confidence": ensembles.LEAD_CONFIDENCE,
            "p_better": None if ens.lead is None else ens.lead.p_better,
            "lead_beats": None if ens.lead is None else ens.lead.beats,
            **({"lead_note": ens.lead.note} if ens.lead is not None and ens.lead.note else {}),
            "test_scores": ens.test_scores, "test_ci": ens.test_ci})
    store.finish_search(search_id, status="complete", best_trial=best.number,
                        test_scores=result.test_scores, test_size=result.test_size,
                        test_predictions=final.test_predictions)
    progress({"event": "done", "study": study_name, "best": result.best,
              "test_scores": result.test_scores, "ensemble": result.ensemble,
              "answer": result.answer, "timing": result.timing})
    return result


@dataclass
class _Final:
    """What the final phase produced, by either route (fold bags or a refit)."""

    from_folds: bool
    test_scores: dict | None = None
    test_ci: dict | None = None
    test_predictions: dict | None = None
    ensemble: object = None  # EnsembleResult (selected; answers when better and not late)
    single: dict | None = None  # the best single candidate's own test scores
    artifact: Path | None = None
    model: torch.nn.Module | None = None  # the refit model (refit route only)
    preprocessor: Preprocessor | None = None
    architecture: str | None = None


def _answer_from_folds(p: Prepared, store: Store, search_id: int, study: str, best, trials: dict,
                       root: Path, folder: Path, dev, *, ensemble: bool, manifest: dict,
                       progress, deadline: float | None = None,
                       owner: dict | None = None) -> _Final | None:
    """The answer from the fold models its candidates' cross-validation trained: the best
    single's bag, or an ensemble of bags when that beats it out-of-fold by more than its
    noise, with as many members as the time left before ``deadline`` predicts the test set
    with. None when a needed bag is missing, or not stamped with ``owner`` (the study's
    stamp): the caller refits."""
    start = time.perf_counter()
    store.delete_candidate(search_id, ENSEMBLE_TRIAL)  # an earlier run's, now outdated
    members = foldbag.members_in_time(p, trials.values(), deadline) if ensemble else 1
    selected = (select_ensemble(p, store, search_id, study, trials, max_members=members,
                                single=best.number) if members > 1 else None)
    answers = selected if selected is not None and selected.better else None
    out = foldbag.answer(p, best.number, root, ensemble=answers, device=dev, progress=progress,
                         owner=owner,
                         said=None if selected is None else selected.event(from_folds=True))
    if out is None:
        return None
    if answers is not None:
        record_ensemble_row(store, search_id, answers, time.perf_counter() - start, dev)
    rows = {r["trial"]: r for r in store.candidates(study)}
    infos = {t: model_info(p, trial=t, architecture=trials[t].params["architecture"],
                           params=dict(out.bags[t].config["params"]),
                           test_scores=out.test_scores if len(out.weights) == 1 else None,
                           test_ci=out.test_ci if len(out.weights) == 1 else None,
                           study=study, best_row=rows.get(t),
                           fold_scores=trials[t].user_attrs.get("fold_scores"),
                           manifest=manifest, refit=False)
             for t in out.weights}
    top = None
    if answers is not None:
        cv = answers.cv
        top = model_info(p, trial=ENSEMBLE_TRIAL, architecture=answers.selection.label(),
                         params={"members": {str(t): w for t, w in out.weights.items()}},
                         test_scores=out.test_scores, test_ci=out.test_ci, study=study,
                         best_row=cv, fold_scores=cv["fold_scores"], manifest=manifest,
                         refit=False)
        # The data's spec as its leading member reads it: log-loss selection can leave out the
        # best single by the search's metric (BreastMNIST: #0, #8, #77 over #14).
        lead = best.number if best.number in infos else max(out.weights, key=out.weights.get)
        top.update(spec=infos[lead]["spec"], ensemble={
            "kind": "candidates", "members": [
                {"folder": f"member-{t}", "trial": t, "weight": w,
                 "architecture": infos[t]["architecture"], "params": infos[t]["params"],
                 "folds": len(p.splits)} for t, w in out.weights.items()],
            "method": "greedy selection with replacement (Caruana et al. 2004) on out-of-fold "
                      "predictions; each member is the bag of its fold models",
            "picks": answers.selection.picks})
    artifact = foldbag.save_answer(folder, root, out, infos, top)
    single = {"trial": best.number, "test_scores": out.test_scores, "test_ci": out.test_ci}
    if answers is not None and p.test is not None:
        # What the best single alone scores on the test set (reported, never chosen on): its
        # test prediction when it is a member, else its bag's.
        proba = out.member_test.get(best.number)
        if proba is None and foldbag.predicts_in_time(p, best, deadline):
            bag = foldbag.load_bag(root, best.number, owner)
            proba = None if bag is None else bag.predict_proba(p.test.x, device=dev)
        elif proba is None:
            single["skipped"] = "its test prediction would end past --timeout"
        single["test_scores"] = (None if proba is None else
                                 M.all_scores(p.test.y, proba, p.average, p.pos_label))
        single["test_ci"] = None
    return _Final(True, out.test_scores, out.test_ci, out.test_predictions, ensemble=selected,
                  single=single, artifact=artifact)


def _answer_by_refit(p: Prepared, store: Store, search_id: int, study: str, best,
                     trials: dict, folder: Path, dev, *, ensemble: bool, deadline,
                     manifest: dict, progress, save_model: bool, timing: dict,
                     wall_start: float, best_row: dict | None) -> _Final:
    """The answer refit on all training data (--refit-full, or fold models not at hand)."""
    plan = p.plan
    progress({"event": "refit", "trial": best.number,
              "architecture": best.params["architecture"], "test": p.test is not None,
              "seeds": plan.seeds})
    # A better ensemble's other members get their refit time before the answer's extra
    # bag seeds (see ensemble.held_for_members).
    selected = (select_ensemble(p, store, search_id, study, trials, single=best.number)
                if ensemble and deadline is not None else None)
    hold = (held_for_members(selected, trials, best.number, plan.folds, deadline)
            if selected is not None else 0.0)
    r = refit_best(p, best, dev, deadline=None if deadline is None else deadline - hold)
    timing["refit_s"] = time.monotonic() - wall_start - timing["search_s"]
    ens = None
    if ensemble:
        progress({"event": "ensembling"})
        ens = build_ensemble(p, store, search_id, study, trials, dev,
                             refits={best.number: r}, progress=progress,
                             deadline=deadline, selected=selected, single=best.number)
        timing["ensemble_s"] = (time.monotonic() - wall_start - timing["search_s"]
                                - timing["refit_s"])
    final = _Final(False, r.test_scores, r.test_ci, r.test_predictions, ensemble=ens,
                   single={"trial": best.number, "test_scores": r.test_scores,
                           "test_ci": r.test_ci},
                   model=r.model, preprocessor=r.preprocessor, architecture=r.architecture)
    if ens is not None and ens.answers:
        final.test_scores, final.test_ci = ens.test_scores, ens.test_ci
        final.test_predictions = ens.test_predictions
        if save_model:
            final.artifact = _save_ensemble(p, ens, study, manifest, folder, trials, store)
    elif save_model:
        final.artifact = save_best(p, r, study=study, best_row=best_row,
                                   fold_scores=best.user_attrs.get("fold_scores"),
                                   manifest=manifest, folder=folder)
    return final


def _save_ensemble(p: Prepared, ens, study: str, manifest: dict, folder: Path, trials: dict,
                   store: Store) -> Path:
    """The ensemble artifact: each refit member in a sub-folder, the blend's config on top."""
    rows = {r["trial"]: r for r in store.candidates(study)}
    members, listed = {}, []
    for t, w in ens.selection.weights.items():
        r = ens.refits[t]
        members[t] = (r.model, r.preprocessor, artifact_info(
            p, r, study=study, best_row=rows.get(t),
            fold_scores=trials[t].user_attrs.get("fold_scores"), manifest=manifest))
        listed.append({"folder": f"member-{t}", "trial": t, "weight": w,
                       "architecture": r.architecture, "params": r.params})
    row = {"score_mean": ens.cv["score_mean"], "score_std": ens.cv["score_std"]}
    first = ens.refits[ens.selection.members[0]]
    info = artifact_info(p, first, study=study, best_row=row,
                         fold_scores=ens.cv["fold_scores"], manifest=manifest)
    info.update(trial=ENSEMBLE_TRIAL, architecture=ens.selection.label(),
                params={"members": {str(t): w for t, w in ens.selection.weights.items()}},
                ensemble={"members": listed, "method": "greedy selection with replacement "
                          "(Caruana et al. 2004) on out-of-fold predictions",
                          "picks": ens.selection.picks})
    if info.get("test"):
        info["test"].update(scores=ens.test_scores, ci=ens.test_ci)
    return save_ensemble(folder, members, info)
