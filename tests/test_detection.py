"""Label and modality detection as a clinician with a numeric CSV meets it (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from automed.data.loaders import find_loader, load_data
from automed.errors import DataError
from automed.evaluation.cv import check_folds


def _wisconsin(path, *, header=True, label_name="label", label_first=False):
    """scikit-learn's breast-cancer table as a numeric CSV (569 rows, 30 features)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    rows = [[*map(repr, map(float, x)), str(int(y))] for x, y in zip(data.data, data.target)]
    names.append(label_name)
    if label_first:
        names = names[-1:] + names[:-1]
        rows = [r[-1:] + r[:-1] for r in rows]
    lines = ([",".join(names)] if header else []) + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_numeric_csv_with_a_label_header_is_read_as_tabular(tmp_path):
    path = _wisconsin(tmp_path / "wisconsin.csv")
    assert find_loader(path).name == "tabular"
    train = load_data(path).train
    assert train.modality == "tabular" and train.x.shape == (569, 30)
    assert train.classes == ["0", "1"] and train.class_counts() == {"0": 212, "1": 357}
    reason = train.meta["reason"]
    assert reason.startswith("read as tabular by the tabular loader because")
    assert "'label' is the label column" in reason


@pytest.mark.parametrize("name", ["target", "Class", "outcome"])
def test_any_label_name_decides_the_label_column_wherever_it_is(tmp_path, name):
    path = _wisconsin(tmp_path / "w.csv", label_name=name, label_first=name == "Class")
    train = load_data(path).train
    assert train.modality == "tabular" and train.n_classes == 2
    # The signal reader, when asked for, follows the header too (it took column 0 before).
    signal = load_data(path, modality="signal").train
    assert signal.n_classes == 2 and signal.x.shape == (569, 1, 30)
    assert signal.y.tolist() == train.y.tolist()


def test_headerless_ucr_table_stays_a_signal_table(tmp_path):
    path = _wisconsin(tmp_path / "ucr.csv", header=False, label_first=True)
    train = load_data(path).train
    assert train.modality == "signal" and train.x.shape == (569, 1, 30)
    assert "no header naming a label column" in train.meta["reason"]


def test_numbered_series_header_stays_a_signal_table(tmp_path):
    path = tmp_path / "ecg.csv"
    rng = np.random.default_rng(0)
    lines = ["label," + ",".join(f"t{j}" for j in range(40))]
    lines += [f"{i % 2}," + ",".join(f"{v:.3f}" for v in rng.normal(size=40)) for i in range(8)]
    path.write_text("\n".join(lines))
    train = load_data(path).train
    assert train.modality == "signal" and train.x.shape == (8, 1, 40)
    assert "numbered series (t0 to t39)" in train.meta["reason"]
    assert "--modality tabular" in train.meta["reason"]


def test_the_reason_names_the_series_not_the_patient_column_beside_it(tmp_path):
    # "numbered series (patient to t95)": the first non-label column was taken for the start
    path = tmp_path / "ecg.csv"
    rng = np.random.default_rng(0)
    lines = ["label,patient," + ",".join(f"t{j}" for j in range(96))]
    lines += [f"{i % 2},p{i // 2}," + ",".join(f"{v:.3f}" for v in rng.normal(size=96))
              for i in range(8)]
    path.write_text("\n".join(lines))
    train = load_data(path, group_col="patient").train
    assert train.x.shape == (8, 1, 96)
    assert "numbered series (t0 to t95) beside the label 'label'" in train.meta["reason"]


def test_a_feature_taken_as_the_label_is_refused_saying_so(tmp_path):
    # A header naming no label column: the signal table takes column 0, 'mean radius'.
    path = _wisconsin(tmp_path / "unnamed.csv", label_name="malignant")
    with pytest.raises(DataError) as err:
        check_folds(load_data(path).train, 5)  # what the search runs before anything else
    message = str(err.value)
    assert "distinct values in label column 'mean radius' of 569 rows" in message
    assert "this looks like a feature, not a label" in message
    assert "--label-col" in message and "--modality tabular" in message
    assert "\n" not in message and len(message) - len(str(path)) < 250  # no class list
    fixed = load_data(path, label_col="malignant").train
    check_folds(fixed, 5)


def test_a_legitimate_label_with_many_samples_per_class_passes(tmp_path):
    path = tmp_path / "many.csv"
    rng = np.random.default_rng(0)
    lines = ["label,a,b"] + [f"{i % 40},{rng.normal():.3f},{rng.normal():.3f}"
                             for i in range(400)]
    path.write_text("\n".join(lines))
    train = load_data(path).train
    check_folds(train, 5)
    assert train.n_classes == 40


@pytest.mark.parametrize("image", [False, True])
def test_float_labels_in_an_npz_are_refused_with_a_fix_that_works_for_npz(tmp_path, image):
    # The npz loader takes no --label-col: the fix is to save class labels under the key.
    x = np.random.default_rng(0).normal(size=(40, 8, 8) if image else (40, 16))
    np.savez(tmp_path / "d.npz", x=x, y=np.linspace(0.5, 20.0, 40))
    with pytest.raises(DataError) as err:
        check_folds(load_data(tmp_path / "d.npz").train, 5)
    message = str(err.value)
    assert "40 distinct values in label array 'y' of 40 samples" in message
    assert "save one class label per sample as 'y'" in message
    assert "--label-col" not in message and "--modality" not in message


def test_an_image_folder_per_image_is_refused_with_a_fix_that_works_for_folders(tmp_path):
    # One sub-folder per image (or per patient) is a folder layout mistake: the image-folder
    # loader takes no --label-col, so the fix names the folders.
    from PIL import Image

    for i in range(40):
        (tmp_path / "imgs" / f"case{i:02d}").mkdir(parents=True)
        Image.fromarray(np.full((8, 8), i * 5, dtype=np.uint8)).save(
            tmp_path / "imgs" / f"case{i:02d}" / "a.png")
    with pytest.raises(DataError) as err:
        check_folds(load_data(tmp_path / "imgs").train, 5)
    message = str(err.value)
    assert "40 distinct values in class sub-folders of 40 images" in message
    assert "one sub-folder per class" in message
    assert "--label-col" not in message and "--modality" not in message


def test_search_refuses_before_writing_anything(tmp_path, storage_url):
    from automed.searching.runner import search

    path = _wisconsin(tmp_path / "unnamed.csv", label_name="malignant")
    with pytest.raises(DataError, match=r"456 distinct values in label column 'mean radius'"):
        search(path, trials=1, storage=storage_url)
    assert not (tmp_path / "study.db").exists()


def test_numbered_features_are_records_and_numbered_time_points_a_series(tmp_path):
    from automed.data.loaders.signals import series_names

    assert not series_names([f"f{i}" for i in range(12)] + ["patient"])
    assert not series_names([f"x{i}" for i in range(1, 100)])
    assert series_names([f"t{i}" for i in range(12)] + ["patient"])
    assert series_names([str(i) for i in range(5)])
    assert series_names([f"lead_{i}" for i in range(40)])
    assert not series_names(["mean radius", "mean texture", "worst area"])
    path = tmp_path / "f.csv"
    path.write_text("patient,label,f0,f1,f2\np1,0,1.0,2.0,3.0\np2,1,2.0,3.0,4.0\n")
    assert find_loader(path).name == "tabular"


def test_medmnist_groups_without_val_groups_name_the_missing_key(tmp_path):
    # val_images join training: train_groups alone gave "groups and labels differ in length".
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mm.npz", train_images=rng.integers(0, 255, (12, 8, 8)),
             train_labels=np.arange(12) % 2, train_groups=np.arange(12) // 2,
             val_images=rng.integers(0, 255, (4, 8, 8)), val_labels=np.arange(4) % 2)
    with pytest.raises(DataError, match="add val_groups, one id per validation sample"):
        load_data(tmp_path / "mm.npz")
    np.savez(tmp_path / "short.npz", x=rng.normal(size=(12, 5)), y=np.arange(12) % 2,
             groups=np.arange(10))
    with pytest.raises(DataError, match="10 group ids for 12 samples; give exactly one"):
        load_data(tmp_path / "short.npz")
