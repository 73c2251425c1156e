"""automed from Python, as a notebook uses it: data built in memory is checked as a file's
loading checks it, keyword arguments take what a notebook has (numpy integers, one name for
a list), an error marks its study and leaves the caller's state as it was (QA, session 19)."""

from __future__ import annotations

import inspect
import re

import numpy as np
import optuna
import pytest
import torch

import automed
from automed import Dataset, LoadedData
from automed.data.loaders import check_data
from automed.errors import AutomedError, ConfigError, DataError
from automed.storage import Store

QUICK = dict(trials=1, folds=2, max_epochs=1, bootstrap=0, architectures="mlp")


def _signals(n: int = 24, classes=("a", "b"), flip: bool = False, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 1, 16)).astype("float32")
    x[:, 0, :8] += 3.0 * y[:, None]  # class b: a raised first half, learnable in one epoch
    return Dataset(x=x, y=1 - y if flip else y, classes=list(classes), modality="signal",
                   source="mem")


def test_a_test_set_listing_the_classes_in_another_order_is_reindexed(tmp_path):
    """QA: LoadedData(train, test) with the test's classes listed as ["b", "a"] scored 0.0
    where the same test set in the training order scored 1.0; a test class the training data
    lacks was accepted."""
    train, test = _signals(), _signals(16, seed=1)
    swapped = _signals(16, classes=("b", "a"), flip=True, seed=1)  # the same labels
    checked = check_data(LoadedData(train, swapped)).test
    assert checked.classes == ["a", "b"] and list(checked.y) == list(test.y)
    np.testing.assert_array_equal(checked.x, test.x)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    with pytest.raises(DataError, match=r"labels \['c'\] do not occur in the training data"):
        automed.search(LoadedData(train, _signals(16, classes=("a", "c"))), storage=url,
                       **QUICK)
    assert not (tmp_path / "api.db").exists() or Store(url).studies() == []


@pytest.mark.parametrize("change, message", [
    (dict(y=np.zeros(24, dtype=int), classes=["a"]), "only one class"),
    (dict(x="nan"), r"1 sample\(s\) hold NaN or infinite values \(the first is sample 4\)"),
    (dict(y=np.array(["a", "b"] * 12)), "give class indices"),
    (dict(y=np.arange(24) % 3), "classes names 2"),
    (dict(y=np.arange(24) % 2 - 1), "from -1 to 0"),
    (dict(classes=["a", "a"]), "name a class twice"),
])
def test_data_built_in_memory_is_refused_in_one_line_before_anything_is_written(
        tmp_path, change, message):
    """QA: one class searched "successfully", NaN failed every candidate after training,
    string or out-of-range labels ended in numpy's or torch's own errors."""
    base = _signals()
    fields = dict(x=base.x, y=base.y, classes=base.classes, modality="signal", source="mem")
    if change.get("x") == "nan":
        x = base.x.copy()
        x[3, 0, 2] = np.nan
        change = dict(x=x)
    fields.update(change)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    with pytest.raises(DataError, match=message) as raised:
        automed.search(Dataset(**fields), storage=url, **QUICK)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "api.db").exists() or Store(url).studies() == []


def test_lists_and_unchannelled_arrays_are_taken_as_the_loaders_give_them():
    texts = Dataset(x=["fever cough", "broken bone"] * 6, y=[0, 1] * 6, classes=["a", "b"],
                    modality="text", groups=[f"p{i // 2}" for i in range(12)])
    assert texts.x.dtype == object and isinstance(texts.groups, np.ndarray)
    images = Dataset(x=np.zeros((6, 8, 8), "float32"), y=[0, 1] * 3, classes=["a", "b"],
                     modality="image")
    assert check_data(LoadedData(images)).train.x.shape == (6, 1, 8, 8)


def test_keyword_arguments_take_what_a_notebook_has(tmp_path):
    """QA: np.int64(3) folds read "--folds 3 is too few", architectures="mlp" was split into
    m, l, p, a Dataset alone raised os.fspath's TypeError, label_col "2" was stored apart
    from the CLI's 2 (a resume refused)."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    result = automed.search(_signals(), storage=url, trials=np.int64(1), folds=np.int64(2),
                            max_epochs=np.int64(1), bootstrap=np.int64(0),
                            architectures="mlp", study="np")
    assert result.best["architecture"] == "mlp"
    assert Store(url).search("np")["config"]["folds"] == 2
    with pytest.raises(ConfigError, match=r"--folds 3\.0: cross-validation needs a whole "):
        automed.search(_signals(), storage=url, folds=3.0)
    from automed.searching.plan import DataPlan

    plans = []
    original = DataPlan.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        plans.append(self)

    import automed.searching.plan as plan_module

    plan_module.DataPlan.__init__ = keep
    try:
        with pytest.raises(AutomedError):
            automed.search(tmp_path / "missing.csv", label_col="2", storage=url)
    finally:
        plan_module.DataPlan.__init__ = original
    assert plans and plans[0].options["label_col"] == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(test="t.npz"), "test applies to files"),
    (dict(modality="image", format="npz"), "modality, format apply to files"),
    (dict(workers=0), "need the data as a file path"),
])
def test_options_that_apply_to_files_are_refused_for_in_memory_data(tmp_path, kwargs, message):
    """QA: test=, modality= and format= were silently ignored for in-memory data, and
    workers=0 created a study no worker could join."""
    with pytest.raises(ConfigError, match=message):
        automed.search(_signals(), storage=f"sqlite:///{tmp_path / 'api.db'}", **kwargs)
    assert not (tmp_path / "api.db").exists()


def test_an_error_marks_the_study_failed_and_leaves_the_callers_state(tmp_path):
    """QA: an exception from search() (here the progress callback's) left the study
    "running" under the live notebook process (studies, show and leaderboard said it was
    still searched); Optuna's log level and torch's random state changed for the caller."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    optuna.logging.set_verbosity(optuna.logging.INFO)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()

    def progress(event):
        if event["event"] not in ("start", "warning"):  # the first candidate's line
            raise ZeroDivisionError("a notebook's callback")

    with pytest.raises(ZeroDivisionError):
        automed.search(_signals(), storage=url, study="cb", progress=progress, **QUICK)
    assert Store(url).search("cb")["status"] == "failed"
    # and why, as show and studies say it (QA: a failed study gave no reason)
    from automed.results.describe import effective_status

    said = effective_status(Store(url).search("cb"))
    assert said == "failed (ZeroDivisionError: a notebook's callback)"
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert torch.equal(torch.random.get_rng_state(), state)
    result = automed.search(_signals(), storage=url, study="cb", **QUICK)  # resumes
    assert result.resumed and Store(url).search("cb")["status"] == "complete"
    assert torch.equal(torch.random.get_rng_state(), state)


def test_artifacts_that_is_a_file_is_refused_before_the_database_is_written(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    url = f"sqlite:///{tmp_path / 'api.db'}"
    with pytest.raises(ConfigError, match="is a file; give a folder"):
        automed.search(_signals(), storage=url, artifacts=a_file, **QUICK)
    assert not (tmp_path / "api.db").exists()


def test_a_saved_model_refuses_one_string_and_a_bad_device_and_predicts_no_samples(tmp_path):
    """QA: a string was read as one sample per character; an empty batch raised torch.cat's
    error; device="bogus" blamed the model."""
    texts = Dataset(x=["fever cough pain", "broken bone cast"] * 8, y=[0, 1] * 8,
                    classes=["sick", "hurt"], modality="text", source="mem")
    result = automed.search(texts, storage=f"sqlite:///{tmp_path / 'api.db'}",
                            artifacts=tmp_path / "models", **QUICK)
    import torch

    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    model = automed.LoadedModel(result.artifact)
    assert torch.equal(torch.random.get_rng_state(), before)  # QA: loading drew from it
    assert model.predict_proba(["fever cough"]).shape == (1, 2)
    with pytest.raises(DataError, match="'fever cough' is no file or folder: give a path that "
                                        "exists, or the samples themselves"):
        model.predict_proba("fever cough")
    assert model.predict_proba([]).shape == (0, 2)
    with pytest.raises(ConfigError, match="unknown device 'bogus'"):
        model.predict_proba(["fever"], device="bogus")


def test_the_api_is_discoverable_without_importing_torch_first():
    assert "data" in inspect.signature(automed.search).parameters
    assert automed.search.__doc__ and "built in memory" in automed.search.__doc__
    assert {"LoadedModel", "SearchResult", "Dataset", "search"} <= set(dir(automed))


def test_what_a_notebook_user_tries_from_autogluon_habits(tmp_path, capsys):
    # QA (Python API sweep): arrays passed as data failed deep inside with a TypeError; the
    # metric "auc" refused its own resume as "auroc"; two in-memory datasets shared one
    # default study name; progress=True was "not callable"; there was no predict() and the
    # result's repr ran to thousands of characters.
    url = f"sqlite:///{tmp_path / 'api.db'}"
    x = np.zeros((24, 1, 16), dtype=np.float32)
    for bad in (x, (x, np.zeros(24)), {"x": x}):
        with pytest.raises(ConfigError, match=r"^data is a \w+: give a file path, a pandas "
                                              r"DataFrame \(label_col= names its label\), or "
                                              r"arrays as automed.Dataset"):
            automed.search(bad, storage=url, **QUICK)
    first = automed.search(_signals(), storage=url, metric="auc", progress=True, **QUICK)
    assert "CV by auroc" in capsys.readouterr().err  # the command line's progress lines
    again = automed.search(_signals(), storage=url, metric="AUROC", **QUICK)
    assert again.resumed and again.study == first.study
    import dataclasses

    unnamed = [dataclasses.replace(_signals(seed=s), source="") for s in (1, 2)]
    other = automed.search(unnamed[0], storage=url, **QUICK)
    assert other.study != automed.search(unnamed[1], storage=url, **QUICK).study
    names = first.predict(_signals().x[:3])
    assert len(names) == 3 and set(names) <= {"a", "b"}
    assert automed.LoadedModel(first.artifact).predict(_signals().x[:3]) == names
    text = repr(first)
    assert len(text) < 300 and text.startswith(f"SearchResult(study={first.study!r}, answer=")
    assert repr(automed.LoadedModel(first.artifact)).startswith("LoadedModel(")


def test_one_record_of_a_table_is_predicted_as_one(tmp_path):
    from automed.data.tabular import TabularPreprocessor

    x = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0]])
    pre = TabularPreprocessor().fit(Dataset(x, np.array([0, 1]), ["a", "b"], "tabular"))
    assert tuple(pre.transform(x[0]).shape) == (1, pre.transform(x).shape[1])
    with pytest.raises(DataError, match=r"records have 2 columns, expected 3 columns "
                                        r"\(x0, x1, x2\): give shape \(n, 3\)"):
        pre.transform(x[:, :2])


def test_a_saved_model_predicts_a_file_by_its_path_as_automed_predict_does(tmp_path,
                                                                            demo_signal):
    # QA (docs): a file's samples had no one-call way in (the docs' load_data(...).train.x
    # was only the file's training part); a path now reads as `automed predict` reads it.
    import csv
    import io

    from automed.results.predict import predict_file

    result = automed.search(str(demo_signal), storage=f"sqlite:///{tmp_path / 'api.db'}",
                            **QUICK)
    stream = io.StringIO()
    rows = predict_file(result.artifact, demo_signal, stream=stream)
    table = list(csv.DictReader(io.StringIO(stream.getvalue())))
    expected = np.array([[float(r[f"p_{c}"]) for c in result.classes] for r in table])
    for path in (demo_signal, str(demo_signal)):
        proba = result.predict_proba(path)
        assert proba.shape == (rows, 2)
        np.testing.assert_allclose(proba, expected, atol=1e-5)
    assert result.predict(demo_signal) == [r["predicted"] for r in table]
    with pytest.raises(DataError, match="is no file or folder"):
        result.predict_proba(tmp_path / "missing.npz")
    unsaved = automed.search(str(demo_signal), storage=f"sqlite:///{tmp_path / 'api.db'}",
                             study="unsaved", save_model=False, **QUICK)
    with pytest.raises(DataError, match=r"saved no model \(save_model=False\)"):
        unsaved.predict_proba(demo_signal)


def test_raw_samples_in_the_model_layout_one_sample_and_lists():
    # QA / review: one series (96,) was told "samples have shape ()"; one RGB image gave three
    # predictions; a list of 8-bit images became floats and was refused as "float images"
    import numpy as np

    from automed.errors import DataError
    from automed.results.artifact import in_model_layout
    from automed.spec import Spec

    signal, gray, rgb = (Spec("signal", (1, 96), 2), Spec("image", (1, 28, 28), 2),
                         Spec("image", (3, 28, 28), 2))
    for spec, one in ((signal, (96,)), (gray, (28, 28)), (rgb, (3, 28, 28)), (rgb, (28, 28, 3)),
                      (Spec("signal", (12, 50), 2), (12, 50))):
        with pytest.raises(DataError, match=r"that of one sample: give a batch, e\.g\. x\[None\]"):
            in_model_layout(np.zeros(one, dtype=np.float32), spec)
    assert in_model_layout(np.zeros((1, 96)), signal).shape == (1, 1, 96)  # a batch of one
    assert in_model_layout(np.zeros((1, 28, 28)), gray).shape == (1, 1, 28, 28)
    images = [np.full((28, 28), 200, dtype=np.uint8)] * 2
    as_list = in_model_layout(images, gray)
    assert as_list.dtype == np.uint8 and as_list.shape == (2, 1, 28, 28)
    with pytest.raises(DataError, match="a list of signals of differing sizes or non-numbers"):
        in_model_layout([[1.0, 2.0], [1.0]], signal)
    # review: channels-last single samples; three grayscale images for a colour model
    for spec, one in ((gray, (28, 28, 1)), (signal, (96, 1))):
        with pytest.raises(DataError, match="that of one sample"):
            in_model_layout(np.zeros(one, dtype=np.float32), spec)
    with pytest.raises(DataError, match=r"if these are 3 grayscale images, give x\[:, None\]"):
        in_model_layout(np.zeros((3, 28, 28), dtype=np.uint8), rgb)
    assert in_model_layout(np.zeros((3, 1, 28, 28), dtype=np.uint8), rgb).shape == \
        (3, 3, 28, 28)
    # QA: one lead for a two-lead model was told to resample to the training length
    with pytest.raises(DataError, match=r"expects \(2, 96\); give them the training data's 2 "
                                        r"channel\(s\) \(leads\)"):
        in_model_layout(np.zeros((4, 1, 96)), Spec("signal", (2, 96), 2))
    with pytest.raises(DataError, match="resample them to the training length"):
        in_model_layout(np.zeros((4, 2, 90)), Spec("signal", (2, 96), 2))


def test_a_deterministic_search_leaves_torch_as_it_found_it(tmp_path, demo_signal):
    # QA (notebook): deterministic=True left torch's deterministic kernels on after the search
    import torch

    from automed.searching.runner import search

    assert not torch.are_deterministic_algorithms_enabled()
    search(demo_signal, trials=1, folds=2, max_epochs=1, bootstrap=0, ensemble=False,
           storage=f"sqlite:///{tmp_path / 'd.db'}", deterministic=True)
    assert not torch.are_deterministic_algorithms_enabled()


def test_arguments_of_the_wrong_type_are_refused_before_anything_is_stored(tmp_path,
                                                                          demo_signal):
    # QA (notebook): progress="yes" failed the study after it was opened, prune="no" pruned,
    # a pathlib storage raised TypeError, architectures=[] searched every family, one group
    # was told "use --folds 1 or fewer" and in-memory data's errors began with ": "
    import pathlib

    import numpy as np

    from automed import Dataset
    from automed.errors import ConfigError, DataError
    from automed.searching.runner import search
    from automed.storage import Store

    db = tmp_path / "a.db"
    quick = dict(trials=1, folds=2, max_epochs=1, bootstrap=0, ensemble=False)
    for bad, said in ((dict(progress="yes"), "progress='yes': give True"),
                      (dict(prune="no"), "prune='no': give True or False"),
                      (dict(architectures=[]), "architectures=[] names none"),
                      (dict(storage=5), "storage=5: give a database URL")):
        with pytest.raises(ConfigError, match=re.escape(said)):
            search(demo_signal, **{"storage": f"sqlite:///{db}", **quick, **bad})
    assert not db.exists() or Store(f"sqlite:///{db}").studies() == []
    result = search(demo_signal, storage=pathlib.Path(db), metric=None, prune=np.True_,
                    **quick)  # numpy's bools are bools (review)
    assert result.study and Store(f"sqlite:///{db}").search(result.study)["metric"] == \
        "accuracy"
    x = np.random.default_rng(0).normal(size=(40, 5))
    one = Dataset(x=x, y=np.arange(40) % 2, classes=["a", "b"], modality="tabular",
                  groups=np.zeros(40, int))
    with pytest.raises(DataError, match=r"^the data: only 1 group\(s\) for 2 folds; grouped "
                       "cross-validation needs at least 2 groups"):
        search(one, storage=f"sqlite:///{tmp_path / 'b.db'}", **quick)


def test_progress_true_says_each_data_warning_once(tmp_path, capfd):
    # QA (notebook): with progress=True every data warning printed twice (a Python warning
    # and a progress line)
    import warnings

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    x = np.concatenate([x, x])  # every record twice: a LEAKAGE warning
    data = Dataset(x=x, y=np.arange(60) % 2, classes=["a", "b"], modality="tabular")
    from automed.errors import DataWarning

    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        result = automed.search(data, storage=f"sqlite:///{tmp_path / 'w.db'}", progress=True,
                                **QUICK)
    err = capfd.readouterr().err
    said = [w for w in result.warnings if "LEAKAGE" in w]
    assert said and err.count(said[0][:60]) == 1, err
    assert not [w for w in raised if issubclass(w.category, DataWarning)]


def test_in_memory_mistakes_name_what_was_given():
    # QA (notebook): one-hot y was "200 samples but 400 labels"; label_col= on a Dataset was
    # answered about groups
    x = np.zeros((6, 3))
    with pytest.raises(DataError, match=r"y has shape \(6, 2\), one-hot .*y\.argmax\(1\)"):
        Dataset(x=x, y=np.eye(2)[[0, 1] * 3], classes=["a", "b"], modality="tabular")
    data = Dataset(x=np.random.default_rng(0).normal(size=(20, 3)), y=np.arange(20) % 2,
                   classes=["a", "b"], modality="tabular")
    with pytest.raises(ConfigError, match="label_col= applies to files; in-memory data"):
        automed.search(data, label_col="g", storage="sqlite://", **QUICK)


def test_a_dataframe_is_searched_as_its_csv_file_would_be(tmp_path):
    # AutoGluon's habit, fit(train_data=df, label="outcome"): it was refused ("save it as .csv")
    import warnings

    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 48
    age = rng.integers(20, 90, n)
    frame = pd.DataFrame({"age": age, "smoker": rng.choice(["never", "former", "current"], n),
                          "bp": rng.normal(120, 10, n).round(1),
                          "outcome": np.where(age > 55, "sick", "well")})
    url = f"sqlite:///{tmp_path / 'api.db'}"
    result = automed.search(frame.iloc[:36], label_col="outcome", test=frame.iloc[36:],
                            storage=url, artifacts=tmp_path / "models", **QUICK)
    info = Store(url).search(result.study)
    assert info["config"]["n_train"] == 36 and info["config"]["n_test"] == 12
    assert result.study.startswith("dataset-") and result.classes == ["sick", "well"]
    columns = info["config"]["spec"]  # the file's reading: age, bp numeric; smoker one-hot
    assert columns["input_shape"] == [5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its columns found by name: no "never saw" warning
        by_name = result.predict_proba(frame[["smoker", "bp", "age"]])
    np.testing.assert_allclose(by_name, result.predict_proba(frame.drop(columns="outcome")),
                               rtol=1e-6)
    # the file's checks and messages, naming the DataFrame and its rows by position
    with pytest.raises(DataError, match=r"^the DataFrame: no label column 'nope'"):
        automed.search(frame, label_col="nope", storage=url, **QUICK)
    bad = frame.astype({"bp": object})
    bad.loc[5, "bp"] = "inf"
    with pytest.raises(DataError, match=r"the DataFrame: 1 row\(s\) hold infinite values in "
                                        r"column 'bp' \(the first is row iloc\[5\]"):
        automed.search(bad, label_col="outcome", storage=url, **QUICK)
    with pytest.raises(ConfigError, match="test is a list; with a DataFrame give the test rows "
                                          "as a DataFrame too"):
        automed.search(frame, label_col="outcome", test=[1], storage=url, **QUICK)
    with pytest.raises(ConfigError, match="workers=0 creates a study for `automed worker`"):
        automed.search(frame, label_col="outcome", workers=0, storage=url, **QUICK)
    # review: numbered columns (np.c_[x, y]) were a header read as a sample
    with pytest.raises(DataError, match=r"the DataFrame's columns are not all named by strings "
                                        r"\(such as 0\): name them"):
        automed.search(pd.DataFrame(np.c_[age, age]), label_col=1, storage=url, **QUICK)
    # review: rows of notes over several lines were numbered by file line; two rows named
    notes = pd.DataFrame({"note": [f"chest pain\nday {i}" for i in range(12)],
                          "rid": [f"r{i % 10}" for i in range(12)], "dx": ["a", "b"] * 6})
    with pytest.raises(DataError, match=r"the DataFrame: id 'r0' is on rows iloc\[0\] and "
                                        r"iloc\[10\]"):
        automed.search(notes, label_col="dx", id_col="rid", storage=url, **QUICK)
    blank = notes.assign(rid=[f"r{i}" for i in range(12)], dx=["a", "b"] * 5 + [None, "b"])
    with pytest.raises(DataError, match=r"the DataFrame: row iloc\[10\] has no label"):
        automed.search(blank, label_col="dx", id_col="rid", storage=url, **QUICK)
    # a named index is a column (review: group_col="patient" of set_index("patient"))
    grouped = frame.assign(patient=[f"p{i // 2}" for i in range(n)]).set_index("patient")
    result = automed.search(grouped, label_col="outcome", group_col="patient", storage=url,
                            study="g", **QUICK)
    assert Store(url).search("g")["config"]["grouped"]
    # review: the saved model forgot the options that read the DataFrame
    texts = pd.DataFrame({"transcription": [f"chest pain {i}" if i % 2 else f"broken arm {i}"
                                            for i in range(24)],
                          "specialty": ["cardio", "ortho"] * 12})
    result = automed.search(texts, label_col="specialty", text_col="transcription",
                            storage=url, artifacts=tmp_path / "models", study="t", **QUICK)
    texts.to_csv(tmp_path / "t.csv", index=False)
    proba = automed.LoadedModel(result.artifact).predict_proba(str(tmp_path / "t.csv"))
    assert proba.shape == (24, 2)
