"""From a plan to what candidates train on: load, carve the test set, check, split, once.

:func:`prepare` is the only way a search gets its data. ``automed search``, its local worker
processes and ``automed worker`` on other machines all call it with the plan stored in the
study, so groups, the locked test rows and every loader option are honoured on every path.
:func:`Prepared.identity` summarises the result (data fingerprints and a digest of the folds);
a worker whose identity differs from the one recorded at creation refuses to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automed.architecture import Architecture
from automed.data.dataset import Dataset, LoadedData
from automed.data.loaders import check_data, load_data
from automed.errors import AutomedError, ConfigError, DataError, PluginError
from automed.evaluation import metrics as M
from automed.evaluation.cv import check_folds, make_folds, split_test
from automed.evaluation.leakage import check_folds_leakage, check_test_leakage, leakage_warnings
from automed.plugin_manager import get_plugin_manager
from automed.searching.plan import SearchPlan, plugin_ref
from automed.spec import Spec


@dataclass
class Prepared:
    """A plan made concrete: the data, its folds and checks, and the candidate families."""

    plan: SearchPlan
    full: Dataset  # as loaded, before a --test-fraction carve-out
    train: Dataset
    test: Dataset | None
    splits: list[tuple[np.ndarray, np.ndarray]]
    leakage: dict
    warnings: list[str]
    spec: Spec  # with extra["n_train"]
    architectures: dict[str, Architecture]
    metric: str
    average: str
    pos_label: int | None
    # Families with a preprocessor of their own see the spec it gives (also with n_train).
    specs: dict[str, Spec] = dataclasses.field(default_factory=dict)

    def spec_for(self, family: str) -> Spec:
        """The spec family ``family`` is searched, built and saved with."""
        return self.specs.get(family, self.spec)

    @property
    def loaded(self) -> LoadedData:
        return LoadedData(self.train, self.test)

    @staticmethod
    def differs(stored: dict | None, now: dict) -> str | None:
        """The first key of ``now`` that a stored identity disagrees on (None: the same
        search). A study stored before ``records`` was kept is not compared on it: its data
        was checked as it was then (the ends of long records)."""
        stored = stored or {}
        keys = [*now, *(k for k in stored if k not in now)]
        return next((k for k in keys if stored.get(k) != now.get(k)
                     and not (k == "records" and "records" not in stored)), None)

    def identity(self) -> dict:
        """What every process of one search must agree on (JSON-serialisable)."""
        h = hashlib.blake2b(digest_size=12)
        for tr, va in self.splits:
            h.update(np.asarray(tr, dtype=np.int64).tobytes())
            h.update(b"|")
            h.update(np.asarray(va, dtype=np.int64).tobytes())
            h.update(b"/")
        out = {"full": self.full.fingerprint, "train": self.train.fingerprint,
               "test": self.test.fingerprint if self.test is not None else None,
               "grouped": self.train.groups is not None, "folds": h.hexdigest()}
        long = {k: d.long_records for k, d in (("full", self.full), ("train", self.train),
                                               ("test", self.test)) if d is not None}
        if any(long.values()):  # records the fingerprint sees only the ends of
            out["records"] = long
        if self.specs:  # families with a preprocessor of their own (say, which pretrained model)
            modality = self.train.modality
            out["preprocessing"] = {name: self.architectures[name].preprocessor(modality).key
                                    for name in sorted(self.specs)}
        return out


def _check_rankable(train: Dataset, splits: list, metric: str, average: str, pos: int) -> None:
    """Refuse folds a ranking metric cannot score: AUROC and AUPRC need both classes (the
    positive one for a binary AUPRC) in every validation fold, else every candidate fails
    with a non-finite score. Stratified folds always have them; grouped folds may not (the
    review: 2 of 20 patients positive, 5 folds, 3 folds without a positive)."""
    if metric not in ("auroc", "auprc"):
        return
    need = (set(range(train.n_classes)) if train.n_classes == 2 else
            {pos} if metric == "auprc" and average == "binary" else set())
    for i, (_, va) in enumerate(splits):
        present = set(np.unique(train.y[va]).tolist())
        missing = sorted(need - present)
        if len(present) < 2 or missing:
            lacks = (f"no sample of class {train.classes[missing[0]]!r}" if missing else
                     "samples of one class only")
            raise DataError(
                f"{train.source}: validation fold {i + 1} of {len(splits)} holds {lacks}, so "
                f"{metric} cannot score it"
                + (" (folds keep each patient whole)" if train.groups is not None else "")
                + "; use fewer --folds (at most the patients of the rarest class), or "
                "another --metric")


def _fold_class_warnings(train: Dataset, splits: list, metric: str, average: str,
                         pos: int) -> list[str]:
    """Validation folds without a sample of some class (grouped folds keep each patient
    whole) skew every class-averaged metric (QA: 20 grouped folds of one class each made
    balanced accuracy equal accuracy, unsaid), and a binary one lacking the positive class
    scores it 0 or not at all; accuracy and micro averages are sample means, and AUROC/AUPRC
    are refused by :func:`_check_rankable`."""
    micro = average == "micro" and metric != "balanced_accuracy"
    if metric in ("accuracy", "auroc", "auprc") or micro or train.n_classes < 2:
        return []
    binary = average == "binary" and metric != "balanced_accuracy"
    lacking = [i for i, (_, va) in enumerate(splits)
               if (pos not in train.y[va] if binary else
                   len(np.unique(train.y[va])) < train.n_classes)]
    if not lacking:
        return []
    shown = ", ".join(str(i + 1) for i in lacking[:8]) + (", ..." if len(lacking) > 8 else "")
    grouped = train.groups is not None
    what = (f"hold no sample of the positive class {train.classes[pos]!r}" if binary else
            "lack a class")
    effect = (f"their {metric} of that class is 0 or undefined there, so the mean is skewed"
              if binary else f"their {metric} averages over the classes they hold, so it is "
              "skewed and not comparable between folds")
    return [f"validation fold(s) {shown} of {len(splits)} {what}"
            + (" (folds keep each patient whole)" if grouped else "")
            + f": {effect}; use fewer --folds"
            + (" (at most the patients of the rarest class)" if grouped else "")]


def load_plugins(plan: SearchPlan, allowed: list[dict] | None = None) -> None:
    """Register the plan's extra plugins.

    ``allowed=None`` trusts the plan (the process that wrote it). A worker passes the plugins
    its own command line or environment allows; a plan naming anything else is refused, so a
    study database edited by someone else cannot make workers import code.
    """
    pm = get_plugin_manager()
    for ref in plan.plugins:
        if allowed is not None and ref not in allowed:
            what = (f"plugin file {ref['source']} (sha256 {str(ref['sha256'])[:12]}...)"
                    if ref.get("sha256") else f"plugin module {ref['source']!r}")
            raise PluginError(
                f"the study needs {what}, which this worker was not given; pass "
                f"--plugin {ref['source']} to `automed worker` if you trust it (a file must be "
                "byte-identical to the one the study was created with)")
        pm.add_source(ref["source"], required=True)


def allowed_plugins(sources: list[str]) -> list[dict]:
    return [plugin_ref(s) for s in sources]


def prepare(plan: SearchPlan, data: LoadedData | None = None) -> Prepared:
    """Load, carve, check and split as ``plan`` says; raise a one-line error on bad input.

    ``data`` replaces loading from ``plan.data.path`` (in-memory data, Python API only).
    """
    metric = M.resolve_metric(plan.metric)
    d = plan.data
    if data is None:
        if not d.path:
            raise ConfigError("the plan names no data file; give a path to the data")
        data = load_data(d.path, format=d.format, modality=d.modality, test=d.test,
                         groups=d.groups, **d.options)
    elif d.options or d.groups:
        # named as given (QA: label_col= was answered about groups)
        given = [f"{k}=" for k in d.options] + (["groups="] if d.groups else [])
        raise ConfigError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to "
                          "files; in-memory data already has its columns split: set labels "
                          "(y) and groups on the Dataset instead")
    else:  # built in memory: the checks a file's loading makes
        data = check_data(data)
    full = data.train
    if d.test_fraction is not None:
        if data.test is not None:
            raise ConfigError(f"{data.test.source} is already a test set; drop "
                              "--test-fraction or the other test set")
        data = LoadedData(*split_test(full, d.test_fraction, plan.seed))
    train, test = data.train, data.test
    pos = _resolve_pos_label(plan.pos_label, train.classes)
    average, pos = M.resolve_average(plan.average, train.n_classes, pos)
    check_folds(train, plan.folds)
    pm = get_plugin_manager()
    given = {pm.by_source.get(r["source"], r["source"]) for r in plan.plugins}
    archs = pm.architectures_for(train.modality, plan.architectures, given)
    splits = make_folds(train, plan.folds, plan.seed)
    _check_rankable(train, splits, metric, average, pos)
    leakage = check_folds_leakage(train, splits)
    if test is not None:
        leakage.update(check_test_leakage(train, test))
    from automed.data.preprocess import preprocessor_for

    def sized(spec: Spec) -> Spec:
        # The training-set size lets families scale batch size and epochs to the data.
        return dataclasses.replace(spec, extra={**spec.extra, "n_train": len(train)})

    spec = sized(preprocessor_for(train.modality).spec(train))
    said = (leakage_warnings(leakage) + _text_warnings(train) + _label_warnings(train)
            + _table_warnings(train) + _test_class_warnings(train, test)
            + _test_levels_warnings(train, test)
            + _test_groups_warnings(train, test, plan.bootstrap)
            + _volume_warnings(train) + _unused_plugins(pm, train.modality, given)
            + _fold_class_warnings(train, splits, metric, average, pos))
    # A family's own preprocessor (a pretrained tokenizer, ...) gives its own spec; computed
    # here, so a missing model or library stops the search before any candidate runs.
    specs, unfit = {}, {}
    for name, arch in sorted(archs.items()):
        own = arch.preprocessor(train.modality)
        if own is None:
            continue
        try:
            specs[name] = sized(own.spec(train))
        except AutomedError:
            raise  # its own one-line answer (a missing model or library)
        except Exception as exc:  # noqa: BLE001 - a family that cannot read these samples
            unfit[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if unfit:
        why = "; ".join(f"{n}: {e}" for n, e in unfit.items())
        if len(unfit) == len(archs):
            raise DataError(f"{full.source}: no family can read these {train.modality} samples: "
                            f"{why}; {_data_hint(train)}")
        archs = {n: a for n, a in archs.items() if n not in unfit}
        said.append(f"left out {', '.join(unfit)}: preprocessing cannot read these "
                    f"{train.modality} samples ({why}); {_data_hint(train)}")
    return Prepared(plan, full, train, test, splits, leakage, said, spec, archs, metric,
                    average, pos, specs)


def _unused_plugins(pm, modality: str, given: set[str]) -> list[str]:
    """A plugin the user named (``--plugin``) none of whose architectures takes this data (QA:
    an image-only family given for signals was left out without a word)."""
    every = pm.architectures()
    out = []
    for info in pm.plugins.values():
        if info.name in given and info.architectures and not info.loaders \
                and not any(every[a].accepts(modality) for a in info.architectures
                            if a in every):
            takes = "; ".join(f"{a}: {', '.join(sorted(every[a].modalities)) or 'any'}"
                              for a in info.architectures if a in every)
            out.append(f"plugin {info.module}: its architectures ({takes}) do not take "
                       f"{modality} data, so none of them is searched")
    return out


def _data_hint(train: Dataset) -> str:
    if train.modality == "text":
        column = train.meta.get("text_col") or "text"
        return f"check that --text-col names the texts (now {column!r})"
    return "check the data"


def _text_warnings(train: Dataset) -> list[str]:
    """Texts with no word that two of them share: every word-level model sees only unknown
    words and scores chance, most often because --text-col names an id or a label."""
    if train.modality != "text" or not len(train):
        return []
    from automed.data.tokens import tokenize

    seen: set[str] = set()
    for text in train.x:
        words = set(tokenize(text))
        if words & seen:
            return []
        seen |= words
    column = train.meta.get("text_col") or "text"
    return [f"no word occurs in two of the training texts (text column {column!r}): word-level "
            "models will score chance; check that --text-col names the texts"]


def _test_groups_warnings(train: Dataset, test: Dataset | None, bootstrap: int) -> list[str]:
    """A grouped search whose test data names no patients (a --groups file covers the
    training data only) resamples test samples one by one: said before the search, not only
    by the card (QA)."""
    if train.groups is None or test is None or test.groups is not None or not bootstrap:
        return []
    return [f"{test.source}: the test data names no patients, so its 95 % intervals resample "
            "single samples and are too narrow where a patient has several; give the test "
            "data a patient column (--group-col) or test_groups"]


def _test_levels_warnings(train: Dataset, test: Dataset | None) -> list[str]:
    """A table's test rows with categories its training rows never have are read as missing
    by every model: said before the search, as predict says it of new files (QA: a 'U' in
    the sex column of one split=test row went unsaid)."""
    from automed.data.tabular import unseen_levels

    columns = train.meta.get("tabular_columns") if train.modality == "tabular" else None
    if test is None or not columns or not len(test):
        return []
    rows = np.asarray(list(test.x), dtype=object)
    if rows.ndim != 2 or rows.shape[1] != len(columns):
        return []
    said = []
    for j, col in enumerate(columns):
        new = unseen_levels(col, rows[:, j])
        if new:
            said.append(f"{test.source}: column {col.get('name')!r} of the test rows holds "
                        f"values the training rows never have ({new}); every model reads "
                        "them as missing")
    return said


def _test_class_warnings(train: Dataset, test: Dataset | None) -> list[str]:
    """A locked test set without some training class scores that class nowhere (QA: a test
    folder lacking one of three classes, unsaid; its macro scores average the others)."""
    if test is None or not len(test):
        return []
    missing = [c for i, c in enumerate(train.classes) if not np.any(np.asarray(test.y) == i)]
    if not missing:
        return []
    return [f"the test set has no sample of class{'es' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}: its scores say nothing of "
            f"{'them' if len(missing) > 1 else 'it'} (its macro recall, precision and f1 "
            "average the classes it has)"]


def _volume_warnings(train: Dataset) -> list[str]:
    volume = train.meta.get("volume")
    if not volume:
        return []
    d, h, w = volume
    return [f"samples of {d} x {h} x {w} are read as {h} x {w} images of {d} channels (a 3-D "
            "volume's depth as channels: automed has no 3-D family); if another axis holds "
            "the channels, transpose the array to (N, channels, height, width) first"]


def _label_warnings(train: Dataset) -> list[str]:
    """Classes whose names differ only in case or spacing ("Yes", "yes", "YES"): most often
    one class spelt two ways (QA: a yes/no table became four classes and scored 0.29)."""
    spelt: dict[str, list[str]] = {}
    for name in train.classes:
        spelt.setdefault(" ".join(str(name).lower().split()), []).append(str(name))
    same = [names for names in spelt.values() if len(names) > 1]
    said = []
    if same:
        pairs = "; ".join(" and ".join(map(repr, names)) for names in same)
        said.append(f"classes {pairs} differ only in case or spacing, and are searched as "
                    f"different classes ({len(train.classes)} in all); if each pair is one "
                    "class, write it one way in the label column")
    # QA: "C04;C01" became a class of its own, unsaid: labels joined from others
    names = {str(c).strip() for c in train.classes}
    joined = [c for c in map(str, train.classes) for sep in ";|" if sep in c
              and all(part.strip() in names for part in c.split(sep))]
    if joined:
        said.append(f"classes {', '.join(map(repr, joined[:3]))}{' ...' if len(joined) > 3 else ''}"
                    " join other classes' names: multi-label records are searched as classes "
                    "of their own; automed learns one class per record, so give each one label")
    return said


# Numbers as spreadsheets dress them: thousands separators, units, currency, percent (a unit
# of one letter only after a space: "3A" is a stage, "5 A" a current).
_DRESSED = re.compile(r"^[$€£]?\s*[-+]?(\d{1,3}(,\d{3})+(\.\d+)?|\d+(\.\d+)?)"
                      r"(\s+[a-zA-Zµμ%°/][a-zA-Zµμ%°/²³.]*|[%°]|[a-zA-Zµμ][a-zA-Zµμ%°/²³.]+)?$")
# Dates and times as files write them (ISO, day/month/year).
_DATE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                   r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})$")
# A column with a different value in (nearly) every row is an identifier, not a feature.
ID_SHARE, ID_MIN_ROWS = 0.95, 20
# ... and one with many values, each in a few rows only, a patient id shared by some visits.
SHARED_ID_SHARE, SHARED_ID_ROWS = 0.3, 4
# ... and one whose values are mostly sentences, most of them different: free text.
FREE_TEXT_WORDS, FREE_TEXT_SHARE = 5, 0.5


def _table_warnings(train: Dataset) -> list[str]:
    """Columns of a table that are most likely no features, said before the search (QA):
    an identifier (a text value in nearly every row its own, or whole numbers counting the
    rows) is learnt from, one-hot encoded or as a number that follows the file's order; and a
    column of numbers with a few other values ("<90", "5%") is read as categories."""
    columns = train.meta.get("tabular_columns") if train.modality == "tabular" else None
    if not columns or len(train) < ID_MIN_ROWS:
        return []
    from collections import Counter

    from automed.data.tabular import is_missing, to_float

    x = np.asarray(train.x)
    said = []
    for j, col in enumerate(columns):
        present = [str(v).strip() for v in x[:, j] if not is_missing(v)]
        if not present:
            continue
        name = col["name"]
        hint = (f"if it identifies records or patients, give --id-col {name} (or --group-col "
                f"{name} when rows share patients) so that it is no feature")
        if col["kind"] == "categorical":
            numbers = [t for t in present if to_float(t) is not None]
            others = sorted({t for t in present if to_float(t) is None})
            dressed = [t for t in others if _DRESSED.match(t)]
            levels = len(set(present))
            if dressed and len(numbers) + sum(_DRESSED.match(t) is not None for t in present) \
                    >= 0.8 * len(present):
                # QA: "6,826" and "19.2 mg" made 381- and 246-level categories (the search's
                # candidates collapsed), and the only word was "like an identifier"
                said.append(f"column {name!r} holds numbers written with separators or units "
                            f"(such as {', '.join(map(repr, dressed[:2]))}), read as {levels} "
                            "categories; write them as plain numbers (1234.5, no units) to "
                            "read it as numbers")
            elif sum(_DATE.match(t) is not None for t in present) >= 0.8 * len(present):
                said.append(f"column {name!r} holds dates (such as {present[0]!r}), read as "
                            f"{levels} categories; derive numbers from them (days since a "
                            "reference, an age) or drop the column")
            elif len(numbers) >= 0.8 * len(present):
                said.append(f"column {name!r} is read as categories: {len(present) - len(numbers)}"
                            f" of its {len(present)} values are no numbers (such as "
                            f"{', '.join(map(repr, others[:3]))}); fix or blank them to read it "
                            "as numbers")
            elif (np.median([len(t.split()) for t in present]) >= FREE_TEXT_WORDS
                  and levels >= FREE_TEXT_SHARE * len(present)):  # review: not 3 phrases
                # QA: a 'transcription' column of clinical notes was told it looked like an
                # identifier, to be given as --id-col
                said.append(f"column {name!r} holds free text ({levels} different values of "
                            f"{int(np.median([len(t.split()) for t in present]))} words or "
                            "so), read as categories, each its own; to learn from its words "
                            f"search it as text: --text-col {name}")
            elif len(set(present)) >= ID_SHARE * len(x):
                said.append(f"column {name!r} has a different value in "
                            f"{len(set(present))} of {len(x)} rows, like an identifier; {hint}")
            elif len(set(present)) >= SHARED_ID_SHARE * len(x) and max(
                    Counter(present).values()) <= SHARED_ID_ROWS:
                # QA: a patient id shared by two visits each was a 45-level feature, unsaid
                said.append(f"column {name!r} has {len(set(present))} values in {len(x)} rows, "
                            f"each in at most {max(Counter(present).values())}, like a patient "
                            f"or record id; {hint}")
            continue
        values = np.array([to_float(t) for t in present])
        steps = np.diff(values)
        if (len(values) == len(x) and np.all(values == np.round(values))
                and len(np.unique(values)) == len(values)
                and values.max() - values.min() < 1.5 * len(values)):
            said.append(f"column {name!r} numbers the rows ({values.min():g} to "
                        f"{values.max():g}, each once), like a record number; {hint}")
        elif len(values) == len(x) and np.all(steps > 0) and steps.std() < 0.1 * steps.mean():
            # QA: "time,ECG,label" (one recording, one row per sample) was searched with
            # its time as a feature that gives the label away
            said.append(f"column {name!r} rises in even steps ({values[0]:g}, {values[1]:g}, "
                        "...), like the time axis of one recording in long format: automed "
                        "reads one sample per row (a whole series per row for signals); "
                        "reshape the recording into windows, or drop the column")
    return said


def _resolve_pos_label(pos_label: str | int | None, classes: list[str]) -> int | None:
    if pos_label is None:
        return None
    given = str(pos_label)
    if given in classes:
        return classes.index(given)
    # As the label column writes it (QA: "-1.0000000e+00" of a UCR file, whose class is
    # "-1", and " Disease" were refused): the same number, or the same name but for case and
    # spacing, when exactly one class matches.
    matches = [i for i, c in enumerate(classes) if _same_label(given, c)]
    if len(matches) == 1:
        return matches[0]
    raise ConfigError(f"--pos-label {given!r} is not a class; give one of "
                      f"{', '.join(map(repr, classes))}")


def _same_label(given: str, name: str) -> bool:
    try:
        return float(given) == float(name)
    except ValueError:
        return " ".join(given.lower().split()) == " ".join(name.lower().split())


def resolve_path(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())
