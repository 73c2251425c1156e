"""Image folders as QA found them: bit depths, nested and train/val/test layouts, colour vs
grayscale, huge images, EXIF orientation, .webp/.gif, and the dataset's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automed.data.dataset import Dataset
from automed.data.loaders import load_data
from automed.data.preprocess import ImagePreprocessor, SignalPreprocessor
from automed.errors import DataError


def _save(path: Path, array: np.ndarray, suffix: str = ".png", **kw) -> Path:
    path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def _gray(root: Path, n: int = 2, size=(6, 5), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for cls in ("benign", "malignant"):
        for i in range(n):
            _save(root / cls / str(i), rng.integers(0, 255, size, dtype=np.uint8))


# -- 1. 16-bit and float images: one rule, the stored intensities --------------------------------

def test_16_bit_and_float_images_keep_their_intensities(tmp_path):
    dark = np.full((6, 5), 200, np.uint16)  # a dark 12-bit X-ray: max under 255
    bright = np.arange(30, dtype=np.uint16).reshape(6, 5) * 141  # up to 4089 of 4095
    _save(tmp_path / "benign" / "dark", dark)
    _save(tmp_path / "malignant" / "bright", bright)
    x = load_data(tmp_path).train.x
    assert x.dtype == np.float32 and x.shape == (2, 1, 6, 5)
    assert np.array_equal(x[0, 0], dark) and np.array_equal(x[1, 0], bright)
    floats = tmp_path / "floats"
    ramp = np.linspace(0, 1, 30, dtype=np.float32).reshape(6, 5)
    _save(floats / "a" / "0", ramp, ".tif")
    _save(floats / "b" / "0", 1 - ramp, ".tif")
    x = load_data(floats).train.x
    assert np.allclose(x[0, 0], ramp) and len(np.unique(x[0])) == 30  # not binary


def test_a_folder_mixing_8_and_16_bit_images_is_refused(tmp_path):
    _gray(tmp_path)
    _save(tmp_path / "malignant" / "deep", np.full((6, 5), 3000, np.uint16))
    with pytest.raises(DataError, match=r"mixes 8-bit images \(.*\) and 16-bit or float "
                                         r"images \(deep\.png\); export them at one bit depth"):
        load_data(tmp_path)


def test_a_test_set_or_val_split_at_another_bit_depth_is_refused_before_the_search(tmp_path):
    # QA: uint8 train_images and float val_images were concatenated to float, the val images
    # left at 0..1 beside 0..255; a --test folder of 16-bit images was refused only after
    # the whole search, by the answer
    rng = np.random.default_rng(0)
    eight = rng.integers(0, 255, (8, 6, 5), dtype=np.uint8)
    labels = np.array([0, 1] * 4)
    np.savez(tmp_path / "mixed_val.npz", train_images=eight, train_labels=labels,
             val_images=eight[:4].astype(np.float32) / 255, val_labels=labels[:4])
    with pytest.raises(DataError, match=r"mixed_val\.npz: val_images are 16-bit or float but "
                                         r"the train_images are 8-bit \(uint8\); save them at "
                                         "one bit depth"):
        load_data(tmp_path / "mixed_val.npz")
    np.savez(tmp_path / "mixed_test.npz", train_images=eight, train_labels=labels,
             test_images=eight[:4].astype(np.float32) / 255, test_labels=labels[:4])
    with pytest.raises(DataError, match=r"test images are 16-bit or float but the training "
                                         r"images are 8-bit"):
        load_data(tmp_path / "mixed_test.npz")
    _gray(tmp_path / "train")
    _save(tmp_path / "deep" / "benign" / "0", np.full((6, 5), 3000, np.uint16))
    _save(tmp_path / "deep" / "malignant" / "0", np.full((6, 5), 300, np.uint16))
    with pytest.raises(DataError, match=r"deep: test images are 16-bit or float"):
        load_data(tmp_path / "train", test=tmp_path / "deep")
    np.savez(tmp_path / "same.npz", train_images=eight, train_labels=labels,
             val_images=eight[:4], val_labels=labels[:4], test_images=eight[:4],
             test_labels=labels[:4])
    assert load_data(tmp_path / "same.npz").train.x.dtype == np.uint8


def _images(x: np.ndarray) -> Dataset:
    return Dataset(x, np.array([0, 1] * (len(x) // 2)), ["a", "b"], "image")


def test_the_image_preprocessor_refuses_the_other_pixel_kind():
    eight = np.random.default_rng(0).integers(0, 255, (4, 1, 3, 3), dtype=np.uint8)
    pre = ImagePreprocessor().fit(_images(eight))
    assert pre.state()["pixels"] == "uint8"
    loaded = ImagePreprocessor.from_state(pre.state())
    assert loaded.transform(eight).shape == (4, 1, 3, 3)
    with pytest.raises(DataError, match=r"images are 16-bit or float but the model was trained "
                                         r"on 8-bit \(uint8\) images; export them"):
        loaded.transform(eight.astype(np.float32) * 257)
    deep = ImagePreprocessor.from_state(ImagePreprocessor().fit(
        _images(eight.astype(np.float32) * 16)).state())
    with pytest.raises(DataError, match=r"images are 8-bit \(uint8\) but the model was trained "
                                         r"on 16-bit or float images; export them at the "
                                         r"training images' bit depth; in memory, "
                                         r"x\.astype\('float32'\) / 255 if the training"):
        deep.transform(eight)
    # A state saved before the pixel kind was recorded reads any kind, as it did.
    old = ImagePreprocessor.from_state({"mean": [0.5], "std": [0.25]})
    assert old.transform(eight.astype(np.float32)).shape == (4, 1, 3, 3)
    # Signals are not images: float or not, as before, and their state is unchanged.
    signals = SignalPreprocessor().fit(Dataset(eight[:, 0, 0].astype(np.float32)[:, None],
                                               np.array([0, 1, 0, 1]), ["a", "b"], "signal"))
    assert set(signals.state()) == {"mean", "std"}
    assert signals.transform(eight[:, 0, :1]).shape == (4, 1, 3)


# -- 2. nested class folders and the train/ val/ test/ layout -----------------------------------

def test_images_in_sub_folders_of_a_class_are_read(tmp_path):
    _gray(tmp_path)
    _save(tmp_path / "benign" / "scanner2" / "deep" / "x", np.zeros((6, 5), np.uint8))
    _save(tmp_path / "benign" / ".ipynb_checkpoints" / "x", np.zeros((6, 5), np.uint8))
    _save(tmp_path / "normal" / "only_sub" / "y", np.full((6, 5), 9, np.uint8))
    train = load_data(tmp_path).train
    assert train.classes == ["benign", "malignant", "normal"]
    assert train.class_counts() == {"benign": 3, "malignant": 2, "normal": 1}


def test_val_is_merged_into_training_and_needs_no_test(tmp_path):
    _gray(tmp_path / "train", n=3)
    _gray(tmp_path / "val", n=1, seed=1)
    _save(tmp_path / "test" / "malignant" / "t", np.zeros((6, 5), np.uint8))
    data = load_data(tmp_path)
    assert len(data.train) == 8 and len(data.test) == 1
    (tmp_path / "test" / "malignant" / "t.png").unlink()
    (tmp_path / "test" / "malignant").rmdir()
    (tmp_path / "test").rmdir()
    data = load_data(tmp_path)
    assert len(data.train) == 8 and data.test is None
    assert data.train.classes == ["benign", "malignant"]


def test_groups_may_name_each_image_by_its_path_in_any_order_test_images_too(tmp_path):
    # QA: --groups matched ids to images by a loading order written nowhere (class folders by
    # name, then each one's files by path); a list made with `find` grouped the wrong images,
    # and a test/ folder's patients could not be given
    _gray(tmp_path / "train", n=3)
    _gray(tmp_path / "val", n=1, seed=1)
    _save(tmp_path / "test" / "malignant" / "t", np.zeros((6, 5), np.uint8))
    ids = load_data(tmp_path).train.ids
    lines = [f"{i},p{k % 3}" for k, i in enumerate(ids)][::-1]  # any order
    (tmp_path / "g.csv").write_text("path,patient\n" + "\n".join(lines) + "\n")
    data = load_data(tmp_path, groups=tmp_path / "g.csv")
    assert list(data.train.groups) == [f"p{k % 3}" for k in range(len(ids))]
    assert data.test.groups is None  # the file names no test image: none given
    (tmp_path / "g.csv").write_text("\n".join([*lines, "test/malignant/t.png,p9"]) + "\n")
    data = load_data(tmp_path, groups=tmp_path / "g.csv")
    assert list(data.test.groups) == ["p9"]
    # the same patient in training and test: refused, as for any grouped data
    (tmp_path / "g.csv").write_text("\n".join([*lines, "test/malignant/t.png,p1"]) + "\n")
    from automed.evaluation.leakage import check_test_leakage

    data = load_data(tmp_path, groups=tmp_path / "g.csv")
    with pytest.raises(DataError, match=r"1 group\(s\) are in both the training and the test "
                                         r"data \(e\.g\. p1\)"):
        check_test_leakage(data.train, data.test)
    (tmp_path / "g.csv").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match=r"g\.csv: no group for 1 sample\(s\) of .*"
                                         r"\(val/malignant/0\.png\); give a line ID,GROUP"):
        load_data(tmp_path, groups=tmp_path / "g.csv")
    (tmp_path / "g.csv").write_text("\n".join([*lines, "benign/9.png,p1"]) + "\n")
    with pytest.raises(DataError, match=r"line 9 names 'benign/9\.png', no sample of the data; "
                                         r"give ids as `automed predict` writes them \(e\.g\. "
                                         r"'train/benign/0\.png'; quote an id that holds a "
                                         r"comma\)"):
        load_data(tmp_path, groups=tmp_path / "g.csv")
    # review: ids that name no sample, one line per image, were read as one group per line
    (tmp_path / "g.csv").write_text("\n".join(line.split("/", 1)[1] for line in lines) + "\n")
    with pytest.raises(DataError, match=r"its lines read as ID,GROUP but no id names a sample of "
                                         r"the data \(the first: "):
        load_data(tmp_path, groups=tmp_path / "g.csv")
    # review: a separate --test folder's ids are paths within it, the same as training ones:
    # they cannot take the training lines' groups
    _gray(tmp_path / "tr", n=2)
    _gray(tmp_path / "te", n=1, seed=3)
    train_ids = load_data(tmp_path / "tr").train.ids
    (tmp_path / "g2.csv").write_text("\n".join(f"{i},p{k}" for k, i in enumerate(train_ids)))
    data = load_data(tmp_path / "tr", test=tmp_path / "te", groups=tmp_path / "g2.csv")
    assert list(data.train.groups) == [f"p{k}" for k in range(4)] and data.test.groups is None
    (tmp_path / "g2.csv").write_text("\n".join([*(f"{i},p{k}" for k, i in enumerate(train_ids)),
                                                "benign/0.png,p9"]))
    with pytest.raises(DataError, match=r"'benign/0\.png' names a training and a test sample"):
        load_data(tmp_path / "tr", test=tmp_path / "te", groups=tmp_path / "g2.csv")
    # one id per line, in loading order, as before
    (tmp_path / "g.txt").write_text("\n".join(f"p{k % 3}" for k in range(len(ids))) + "\n")
    assert list(load_data(tmp_path, groups=tmp_path / "g.txt").train.groups)[:2] == ["p0", "p1"]


# -- 3. colour vs grayscale, converted to the model's channel count at predict -------------------

def test_predict_converts_images_to_the_models_channels(tmp_path):
    from automed.results.predict import read_samples

    rng = np.random.default_rng(0)
    colour = tmp_path / "colour"
    for cls in ("a", "b"):
        _save(colour / cls / "0", rng.integers(0, 255, (6, 5, 3), dtype=np.uint8))
    gray_model = {"spec": {"modality": "image", "input_shape": [1, 6, 5]}}
    (part,) = read_samples(colour, {}, config=gray_model)
    assert part.x.shape == (2, 1, 6, 5)
    assert part.labels == ["a", "b"]  # a labeled folder keeps its labels (they were dropped)
    pillow = np.asarray(Image.open(colour / "a" / "0.png").convert("L")).astype(int)
    assert np.abs(part.x[0, 0].astype(int) - pillow).max() <= 1  # Pillow's integer rounding
    gray = tmp_path / "gray"
    _gray(gray)
    colour_model = {"spec": {"modality": "image", "input_shape": [3, 6, 5]}}
    (part,) = read_samples(gray, {}, config=colour_model)
    assert part.x.shape == (4, 3, 6, 5) and np.array_equal(part.x[:, 0], part.x[:, 2])


def test_predict_refuses_a_folder_of_mixed_bit_depths(tmp_path):
    from automed.data.unlabeled import read_unlabeled

    _save(tmp_path / "a", np.zeros((6, 5), np.uint8))
    _save(tmp_path / "b", np.full((6, 5), 3000, np.uint16))
    with pytest.raises(DataError, match="export them at one bit depth"):
        read_unlabeled(tmp_path, {"spec": {"modality": "image", "input_shape": [1, 6, 5]}})


def test_predict_names_every_unreadable_image_of_a_folder_at_once(tmp_path):
    # QA: found one per run, as training did before it named them all
    from automed.data.unlabeled import read_unlabeled

    _save(tmp_path / "a", np.zeros((6, 5), np.uint8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "c.png").write_bytes(b"")
    with pytest.raises(DataError) as exc:
        read_unlabeled(tmp_path, {"spec": {"modality": "image", "input_shape": [1, 6, 5]}})
    assert str(exc.value).startswith(f"{tmp_path}: 2 image file(s) cannot be read (b.png, "
                                     "c.png); the first: ")


# -- 4. huge images ---------------------------------------------------------------------------

def test_a_huge_image_is_one_line_naming_the_file(tmp_path, monkeypatch):
    _gray(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 6x5 = 30 pixels: a "bomb" here
    with pytest.raises(DataError, match=r"0\.png: image too large to read safely .*; "
                                         r"downscale it$"):
        load_data(tmp_path)


# -- 5. EXIF orientation ----------------------------------------------------------------------

def test_exif_orientation_is_applied(tmp_path):
    from automed.data.unlabeled import read_unlabeled

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    for cls in ("a", "b"):
        _save(tmp_path / "lab" / cls / "0", np.zeros((8, 16), np.uint8), ".jpg", exif=exif)
    assert load_data(tmp_path / "lab").train.x.shape == (2, 1, 16, 8)
    x = read_unlabeled(tmp_path / "lab" / "a",
                       {"spec": {"modality": "image", "input_shape": [1, 16, 8]}})
    assert x.shape == (1, 1, 16, 8)


# -- 6. .webp and .gif ------------------------------------------------------------------------

def test_webp_and_gif_images_are_read(tmp_path):
    _gray(tmp_path)
    _save(tmp_path / "benign" / "w", np.full((6, 5), 7, np.uint8), ".webp", lossless=True)
    _save(tmp_path / "malignant" / "g", np.full((6, 5), 9, np.uint8), ".gif")
    train = load_data(tmp_path).train
    assert len(train) == 6
    assert {int(train.x[2].max()), int(train.x[5].max())} == {7, 9}


# -- 7. the dataset's name (the default study name) -------------------------------------------

def test_a_train_test_folder_is_named_after_the_folder(tmp_path):
    from automed.searching.runner import default_study_name

    names = set()
    for study in ("chest", "skin"):
        _gray(tmp_path / study / "train")
        _gray(tmp_path / study / "test", n=1)
        data = load_data(tmp_path / study)
        assert data.train.source == str(tmp_path / study)
        names.add(default_study_name(data.train, "accuracy", 2))
    assert names == {"chest-accuracy-cv2", "skin-accuracy-cv2"}


@pytest.mark.parametrize("train_rgb", [False, True])
def test_a_test_folder_of_the_other_colour_is_converted_to_the_trainings(tmp_path, train_rgb):
    # QA: a colour --test folder for grayscale training images was told "resize or re-export"
    rng = np.random.default_rng(1)
    for root, rgb in ((tmp_path / "train", train_rgb), (tmp_path / "test", not train_rgb)):
        for cls in ("benign", "malignant"):
            for i in range(3):
                shape = (6, 5, 3) if rgb else (6, 5)
                _save(root / cls / str(i), rng.integers(0, 255, shape, dtype=np.uint8))
    data = load_data(tmp_path / "train", test=tmp_path / "test")
    assert data.test.x.shape == (6, 3 if train_rgb else 1, 6, 5)
    assert data.test.x.dtype == np.uint8
    image = Image.open(tmp_path / "test" / "benign" / "0.png")
    want = np.asarray(image.convert("RGB" if train_rgb else "L"))
    got = data.test.x[0].transpose(1, 2, 0) if train_rgb else data.test.x[0, 0]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # Pillow's own rounding


def test_predictions_name_each_images_file_and_each_fasta_record(tmp_path, monkeypatch, capsys):
    # QA: predictions of an image folder or a FASTA file could not be traced back to files
    import csv
    import io

    from clirun import run_cli

    from automed.searching.runner import search

    _gray(tmp_path / "imgs", n=4)
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(tmp_path / "imgs", trials=1, folds=2, max_epochs=1, bootstrap=0, storage=storage,
           study="img", architectures=["cnn"])
    new = tmp_path / "new"
    _save(new / "a" / "x", np.zeros((6, 5), dtype=np.uint8))
    _save(new / "y", np.full((6, 5), 200, dtype=np.uint8))
    for data, ids in ((tmp_path / "imgs", ["benign/0.png", "benign/1.png", "benign/2.png"]),
                      (new, ["a/x.png", "y.png"]), (new / "y.png", ["y.png"])):
        code, out, err = run_cli(monkeypatch, capsys, "predict", str(data), "--study", "img",
                                 "--storage", storage)
        assert code in (0, None), err
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["id"] for r in rows][:len(ids)] == ids
    fasta = tmp_path / "s.fasta"
    fasta.write_text("".join(f">gi|{i}|ref|NM_{i}.1 {('pos', 'neg')[i % 2]}\n"
                             f"{('ACGTACGTAA', 'TTGCATGCAT')[i % 2]}\n" for i in range(12)))
    search(fasta, trials=1, folds=2, max_epochs=1, bootstrap=0, storage=storage, study="seq",
           architectures=["biosequence"])
    new_fasta = tmp_path / "new.fasta"
    new_fasta.write_text(">q1 some description\nACGTACGTAA\n>q2\nTTGCATGCAT\n")
    for data, ids in ((fasta, ["gi|0|ref|NM_0.1", "gi|1|ref|NM_1.1"]), (new_fasta, ["q1", "q2"])):
        code, out, err = run_cli(monkeypatch, capsys, "predict", str(data), "--study", "seq",
                                 "--storage", storage)
        assert code in (0, None), err
        assert [r["id"] for r in csv.DictReader(io.StringIO(out))][:2] == ids


def test_images_outside_the_class_folders_are_refused_in_training(tmp_path):
    _gray(tmp_path / "imgs")
    _save(tmp_path / "imgs" / "stray", np.zeros((6, 5), dtype=np.uint8))
    with pytest.raises(DataError, match=r"1 image\(s\) lie outside the class sub-folders "
                                        r"\(stray.png\); move each into the sub-folder"):
        load_data(tmp_path / "imgs")


def test_raw_arrays_get_the_models_channels_and_a_refusal_names_its_fix():
    # QA: an RGB .npz for a grayscale model, and a series of another length, were both told
    # "resize the data like the training data"
    from automed.results.artifact import in_model_layout
    from automed.spec import Spec

    gray = Spec("image", (1, 6, 5), 2)
    rgb = np.random.default_rng(0).integers(0, 255, (4, 6, 5, 3), dtype=np.uint8)
    assert in_model_layout(rgb, gray).shape == (4, 1, 6, 5)
    with pytest.raises(DataError, match=r"expects \(1, 6, 5\); resize them like the training"):
        in_model_layout(np.zeros((4, 7, 5), dtype=np.uint8), gray)
    signal = Spec("signal", (1, 60), 2)
    with pytest.raises(DataError, match="expects \\(1, 60\\); resample them to the training "
                                        "length"):
        in_model_layout(np.zeros((4, 80), dtype=np.float32), signal)


def _dicom_like(path: Path) -> None:
    """A file with DICOM's preamble and magic (what format_hint looks for)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)


def test_files_of_a_format_automed_does_not_read_are_refused_not_skipped(tmp_path):
    # QA (formats): class folders of 12 DICOM scans and 2 PNGs each searched the 4 PNGs,
    # unsaid, and predict left DICOMs out of its rows; a folder of DICOMs alone was "empty".
    for cls in ("normal", "nodule"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 6), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
        _dicom_like(tmp_path / cls / "IM00001")           # as PACS exports name them
        (tmp_path / cls / "scan.dcm").write_bytes(b"x")
    (tmp_path / "normal" / "notes.txt").write_text("kept out, as before")
    with pytest.raises(DataError, match=r"nodule: 2 file\(s\) automed does not read, such as "
                                        r"(IM00001: a DICOM file|scan\.dcm: DICOM is not read)"):
        load_data(tmp_path)
    only = tmp_path / "only"
    (only / "a").mkdir(parents=True)
    (only / "b").mkdir()
    (only / "a" / "x.txt").write_text("a note")
    (only / "b" / "y.txt").write_text("a note")
    with pytest.raises(DataError, match=r"a: holds no images, only 1 \.txt file\(s\)"):
        load_data(only)


@pytest.mark.parametrize("name,said", [
    ("scan.dcm", "DICOM is not read directly"), ("brain.nii.gz", "NIfTI volumes are not read"),
    ("rec.edf", "EDF recordings are not read directly"), ("x.mat", "numpy.savez"),
    ("t.xlsx", "save the sheet as CSV UTF-8"), ("r.fastq", "convert to FASTA"),
    ("one.png", "one image: automed reads a folder of class sub-folders")])
def test_formats_people_have_are_refused_with_their_fix(tmp_path, name, said):
    path = tmp_path / name
    if name.endswith(".png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    else:
        path.write_bytes(b"\x01\x02 binary")
    with pytest.raises(DataError, match=said) as e:
        load_data(path)
    assert "\n" not in str(e.value)


def test_one_colour_image_among_grayscale_ones_is_said_in_the_data_line(tmp_path, monkeypatch,
                                                                        capsys):
    # QA: one colour JPEG among grayscale PNGs made every image RGB, unsaid
    from clirun import run_cli

    _gray(tmp_path / "data", n=6)
    rng = np.random.default_rng(2)
    _save(tmp_path / "data" / "benign" / "photo", rng.integers(0, 255, (6, 5, 3), np.uint8),
          ".jpg")
    assert load_data(tmp_path / "data").train.x.shape[1] == 3
    code, _, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "data"), "--trials",
                           "1", "--folds", "2", "--max-epochs", "1", "--bootstrap", "0",
                           "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert code in (0, None), err
    assert ("; 1 of 13 images are colour (e.g. benign/photo.jpg), so every image is read as "
            "RGB; convert it to grayscale to read all as one channel") in err
    _gray(tmp_path / "gray")
    assert "channels_note" not in load_data(tmp_path / "gray").train.meta


def test_new_images_of_two_sizes_name_the_two_files(tmp_path):
    # QA: predict said "images differ in size ((1, 28, 28), (1, 30, 30))", naming no file
    from automed.data.unlabeled import _images

    _save(tmp_path / "new" / "a", np.zeros((6, 5), np.uint8))
    _save(tmp_path / "new" / "sub" / "b", np.zeros((7, 5), np.uint8))
    with pytest.raises(DataError, match=r"new: images differ in size: a\.png is 5x6 but "
                                         r"sub/b\.png is 5x7; resize them like the training"):
        _images(tmp_path / "new", (1, 6, 5))
    (tmp_path / "new" / "sub" / "b.png").unlink()
    assert _images(tmp_path / "new", (1, 6, 5)).shape == (1, 1, 6, 5)
