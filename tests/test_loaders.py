"""The built-in loaders (npz, image folders, signal tables) and load_data's dispatch and checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automed.data.loaders import load_data
from automed.errors import ConfigError, DataError
from automed.plugin_manager import reset_plugin_manager

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def fresh_plugins():
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def _labels(n: int, pattern=(0, 1)) -> np.ndarray:
    return np.array([pattern[i % len(pattern)] for i in range(n)], dtype=np.uint8)


# -- npz ---------------------------------------------------------------------------------------

def test_npz_medmnist_merges_val_and_keeps_test(tmp_path):
    path = tmp_path / "mnist.npz"
    rng = np.random.default_rng(0)
    np.savez(path,
             train_images=rng.integers(0, 255, (6, 5, 5), dtype=np.uint8),
             train_labels=_labels(6)[:, None],
             val_images=rng.integers(0, 255, (2, 5, 5), dtype=np.uint8),
             val_labels=np.array([[1], [1]], dtype=np.uint8),
             test_images=rng.integers(0, 255, (3, 5, 5), dtype=np.uint8),
             test_labels=np.array([[0], [1], [1]], dtype=np.uint8))
    data = load_data(path)
    train, test = data.train, data.test
    assert train.x.shape == (8, 1, 5, 5) and train.x.dtype == np.uint8
    assert train.modality == "image" and train.source == str(path)
    assert train.classes == ["0", "1"]
    assert train.y.tolist() == [0, 1, 0, 1, 0, 1, 1, 1]
    with np.load(path) as raw:
        assert np.array_equal(train.x[6:, 0], raw["val_images"])
        assert np.array_equal(test.x[:, 0], raw["test_images"])
    assert test.x.shape == (3, 1, 5, 5) and test.y.tolist() == [0, 1, 1]


def test_npz_test_labels_use_train_classes(tmp_path):
    # Test has only class "2": it must get train's index 2, not its own index 0.
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 10)), y=np.array([0, 1, 2, 0, 1, 2]),
             x_test=np.zeros((2, 10)), y_test=np.array([2, 2]))
    data = load_data(path)
    assert data.test.classes == ["0", "1", "2"]
    assert data.test.y.tolist() == [2, 2]


def test_npz_unknown_test_label_is_an_error(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 10)), y=np.array([0, 1, 0, 1]),
             x_test=np.zeros((2, 10)), y_test=np.array([1, 7]))
    with pytest.raises(DataError, match=r"d\.npz.*\[.7.\].*do not occur in the training"):
        load_data(path)


def test_npz_xy_signal_and_images_labels(tmp_path):
    path = tmp_path / "sig.npz"
    x = np.random.default_rng(0).normal(size=(6, 40)).astype(np.float32)
    np.savez(path, x=x, y=np.array(["a", "b", "a", "b", "a", "b"]))
    data = load_data(path)
    assert data.train.modality == "signal" and data.train.x.shape == (6, 1, 40)
    assert data.train.classes == ["a", "b"] and data.test is None
    assert np.array_equal(data.train.x[:, 0], x)

    path2 = tmp_path / "img.npz"
    np.savez(path2, images=np.zeros((4, 7, 7), np.uint8), labels=np.array([[0], [1], [0], [1]]))
    data2 = load_data(path2)
    assert data2.train.modality == "image" and data2.train.x.shape == (4, 1, 7, 7)


def test_npz_modality_inference_and_forcing(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, x=np.zeros((4, 3, 64), np.float32), y=_labels(4))
    assert load_data(path).train.modality == "signal"  # few channels, long series
    assert load_data(path).train.x.shape == (4, 3, 64)
    forced = load_data(path, modality="image").train
    assert forced.modality == "image" and forced.x.shape == (4, 1, 3, 64)

    square = tmp_path / "s.npz"
    np.savez(square, x=np.zeros((4, 12, 12), np.uint8), y=_labels(4))
    assert load_data(square).train.x.shape == (4, 1, 12, 12)

    flat = tmp_path / "f.npz"
    np.savez(flat, x=np.zeros((4, 9), np.float32), y=_labels(4))
    assert load_data(flat, modality="signal").train.x.shape == (4, 1, 9)
    tab = load_data(flat, modality="tabular").train
    assert tab.modality == "tabular" and tab.x.shape == (4, 9)
    with pytest.raises(DataError, match=r"f\.npz.*cannot be image"):
        load_data(flat, modality="image")


def test_npz_channels_last(tmp_path):
    path = tmp_path / "rgb.npz"
    x = np.random.default_rng(1).integers(0, 255, (4, 8, 6, 3), dtype=np.uint8)
    np.savez(path, train_images=x, train_labels=_labels(4)[:, None])
    train = load_data(path).train
    assert train.x.shape == (4, 3, 8, 6) and train.x.dtype == np.uint8
    assert np.array_equal(train.x[2, 1], x[2, :, :, 1])


def test_npz_without_known_keys_lists_keys(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, pixels=np.zeros((4, 5)), target=_labels(4))
    with pytest.raises(DataError, match=r"odd\.npz.*keys: pixels, target.*x/y") as err:
        load_data(path)
    assert "\n" not in str(err.value)


def test_npz_length_mismatch_and_missing_labels(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, train_images=np.zeros((5, 4, 4)), train_labels=_labels(4))
    with pytest.raises(DataError, match=r"bad\.npz.*train_images has 5 samples.*4 labels"):
        load_data(path)
    half = tmp_path / "half.npz"
    np.savez(half, x=np.zeros((4, 5)))
    with pytest.raises(DataError, match=r"half\.npz.*no y"):
        load_data(half)
    half_test = tmp_path / "half_test.npz"
    np.savez(half_test, x=np.zeros((4, 5)), y=_labels(4), x_test=np.zeros((2, 5)))
    with pytest.raises(DataError, match=r"half_test\.npz.*no y_test"):
        load_data(half_test)


def test_npz_not_an_archive(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("not a zip")
    with pytest.raises(DataError, match=r"junk\.npz.*not a readable \.npz"):
        load_data(path)


def test_npz_object_arrays_and_strings(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([[1], [2, 3]], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"obj\.npz: holds object arrays"):
        load_data(path)
    seqs = tmp_path / "seqs.npz"
    np.savez(seqs, x=np.array(["ACGT", "GGCA", "TTAA"]), y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match=r"seqs\.npz: samples have dtype <U4.*biosequence"):
        load_data(seqs)
    train = load_data(seqs, modality="biosequence").train
    assert train.x.dtype == object and train.x.tolist() == ["ACGT", "GGCA", "TTAA"]


# -- image folders -----------------------------------------------------------------------------

def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def _gray_folder(root: Path, n_per_class: int = 2, size=(6, 5)) -> None:
    rng = np.random.default_rng(0)
    for cls in ("benign", "malignant"):
        for i in range(n_per_class):
            _save(root / cls / f"{i}.png", rng.integers(0, 255, size, dtype=np.uint8))


def test_image_folder_grayscale(tmp_path):
    _gray_folder(tmp_path)
    (tmp_path / "benign" / "notes.txt").write_text("ignored: not an image suffix")
    data = load_data(tmp_path)
    train = data.train
    assert train.x.shape == (4, 1, 6, 5) and train.x.dtype == np.uint8
    assert train.classes == ["benign", "malignant"] and train.y.tolist() == [0, 0, 1, 1]
    expected = np.asarray(Image.open(tmp_path / "malignant" / "1.png"))
    assert np.array_equal(train.x[3, 0], expected)
    assert data.test is None and train.modality == "image"


def test_image_folder_any_colour_makes_all_rgb(tmp_path):
    _gray_folder(tmp_path)
    colour = np.zeros((6, 5, 3), np.uint8)
    colour[..., 0] = 200
    _save(tmp_path / "malignant" / "c.jpg", colour)
    train = load_data(tmp_path).train
    assert train.x.shape == (5, 3, 6, 5)
    gray = np.asarray(Image.open(tmp_path / "benign" / "0.png"))
    assert all(np.array_equal(train.x[0, c], gray) for c in range(3))
    assert train.x[4, 0].mean() > 150 and train.x[4, 2].mean() < 50  # the red jpg


def test_image_folder_gray_palette_png_stays_grayscale(tmp_path):
    """QA: a grayscale PNG saved with a palette (mode P) made the whole folder RGB."""
    _gray_folder(tmp_path)
    gray = np.arange(30, dtype=np.uint8).reshape(6, 5) * 8
    Image.fromarray(gray).convert("P").save(tmp_path / "benign" / "p.png")
    assert Image.open(tmp_path / "benign" / "p.png").mode == "P"
    train = load_data(tmp_path).train
    assert train.x.shape == (5, 1, 6, 5)
    assert np.array_equal(train.x[2, 0], gray)  # benign: 0.png, 1.png, p.png
    # a palette of colours still makes the folder RGB
    colour = np.zeros((6, 5, 3), np.uint8)
    colour[..., 1] = 180
    Image.fromarray(colour).convert("P").save(tmp_path / "malignant" / "c.png")
    assert load_data(tmp_path).train.x.shape == (6, 3, 6, 5)


def test_image_folder_train_test(tmp_path):
    _gray_folder(tmp_path / "train", n_per_class=3)
    _save(tmp_path / "test" / "malignant" / "t.png", np.zeros((6, 5), np.uint8))
    data = load_data(tmp_path)
    assert len(data.train) == 6 and data.train.classes == ["benign", "malignant"]
    assert data.test.x.shape == (1, 1, 6, 5)
    assert data.test.classes == ["benign", "malignant"] and data.test.y.tolist() == [1]


def test_image_folder_mixed_sizes(tmp_path):
    _gray_folder(tmp_path)
    _save(tmp_path / "malignant" / "big.png", np.zeros((9, 9), np.uint8))
    with pytest.raises(DataError, match=r"0\.png is 5x6 but .*big\.png is 9x9.*resize"):
        load_data(tmp_path)


def test_image_folder_empty_class_and_no_images(tmp_path):
    _gray_folder(tmp_path)
    (tmp_path / "normal").mkdir()
    with pytest.raises(DataError, match=r"normal: is an empty class folder"):
        load_data(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no class sub-folders"):
        load_data(empty)


def test_image_folder_unreadable_file(tmp_path):
    _gray_folder(tmp_path)
    (tmp_path / "benign" / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        load_data(tmp_path)


def test_image_folder_names_every_unreadable_file_at_once(tmp_path):
    # QA: a corrupt PNG, an empty one and a truncated JPEG took three runs to find, each
    # reading the whole folder again
    import io

    _gray_folder(tmp_path)
    (tmp_path / "benign" / "broken.png").write_bytes(b"definitely not a png")
    (tmp_path / "benign" / "empty.png").write_bytes(b"")
    jpeg = io.BytesIO()
    Image.fromarray(np.full((40, 40), 128, dtype=np.uint8)).save(jpeg, "JPEG")
    (tmp_path / "malignant" / "cut.jpg").write_bytes(jpeg.getvalue()[:200])  # header only
    with pytest.raises(DataError) as exc:
        load_data(tmp_path)
    said = str(exc.value)
    assert said.startswith(f"{tmp_path}: 3 image file(s) cannot be read (")
    for name in ("benign/broken.png", "benign/empty.png", "malignant/cut.jpg"):
        assert name in said
    assert "not a readable image" in said and "replace or delete the file" in said
    assert "\n" not in said


def test_image_folder_rejects_other_modality(tmp_path):
    _gray_folder(tmp_path)
    with pytest.raises(DataError, match="image folder holds image data, not signal"):
        load_data(tmp_path, modality="signal")


# -- signal tables -----------------------------------------------------------------------------

UCR_TXT = (
    "  1.0000000e+00   0.5   0.25   -0.125\n"
    " -1.0000000e+00   1.5   2.5    3.5\n"
    "\n"
    "  1.0000000e+00   0.0   0.0    1.0\n"
    " -1.0000000e+00   2.0   1.0    0.0\n"
)


def test_ucr_txt(tmp_path):
    path = tmp_path / "ECG_TRAIN.txt"
    path.write_text(UCR_TXT)
    train = load_data(path).train
    assert train.x.shape == (4, 1, 3) and train.x.dtype == np.float32
    assert train.modality == "signal" and train.source == str(path)
    assert train.classes == ["-1", "1"] and train.y.tolist() == [1, 0, 1, 0]
    assert train.x[0, 0].tolist() == [0.5, 0.25, -0.125]


def test_txt_with_commas_and_forced_tabular(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("1,0.1,0.2\n2,0.3,0.4\n1,0.5,0.6\n")
    train = load_data(path).train
    assert train.x.shape == (3, 1, 2) and train.classes == ["1", "2"]
    tab = load_data(path, modality="tabular").train
    assert tab.modality == "tabular" and tab.x.shape == (3, 2)
    assert tab.x[2].tolist() == pytest.approx([0.5, 0.6])


def test_tsv_with_header_and_named_label_col(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("t0\tt1\tdiagnosis\tt2\n0.1\t0.2\tMI\t0.3\n1.1\t1.2\tnormal\t1.3\n"
                    "2.1\t2.2\tMI\t2.3\n")
    train = load_data(path, label_col="diagnosis").train
    assert train.classes == ["MI", "normal"] and train.y.tolist() == [0, 1, 0]
    assert train.x[1, 0].tolist() == pytest.approx([1.1, 1.2, 1.3])
    by_index = load_data(path, label_col=2).train
    assert by_index.y.tolist() == train.y.tolist()
    with pytest.raises(DataError, match=r"s\.tsv: no column named 'label'.*t0, t1, diagnosis"):
        load_data(path, label_col="label")


def test_csv_header_of_numbers_with_named_label(tmp_path):
    path = tmp_path / "pandas.csv"
    path.write_text("label,0,1\n1,0.1,0.2\n2,0.3,0.4\n")
    train = load_data(path, label_col="label").train
    assert train.classes == ["1", "2"] and train.x.shape == (2, 1, 2)
    # An index is not a name: a first data row whose label equals it stays data.
    plain = tmp_path / "plain.csv"
    plain.write_text("0,0.1,0.2\n1,0.3,0.4\n")
    assert len(load_data(plain, label_col="0").train) == 2


def test_csv_string_labels_last_column(tmp_path):
    path = tmp_path / "beats.csv"
    path.write_text("0.5, 0.25, normal\n0.1, 0.2, \"abnormal\"\n0.3, 0.3, normal\n")
    train = load_data(path, label_col=-1).train
    assert train.classes == ["abnormal", "normal"] and train.y.tolist() == [1, 0, 1]
    assert train.x.shape == (3, 1, 2)


def test_signal_non_numeric_value_names_line_and_column(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(UCR_TXT.replace("2.0   1.0", "2.0   oops"))
    with pytest.raises(DataError, match=r"bad\.txt: non-numeric value 'oops' at line 5, column 3"):
        load_data(path)


def test_signal_missing_values(tmp_path):
    nan = tmp_path / "nan.txt"
    nan.write_text(UCR_TXT.replace("1.5", "NaN"))
    with pytest.raises(DataError, match=r"nan\.txt: missing value at line 2, column 2.*fill"):
        load_data(nan)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,x1,x2\n1,0.1,0.2\n0,,0.4\n")
    with pytest.raises(DataError, match=r"empty\.csv: missing value at line 3, column 2 \('x1'\)"):
        load_data(empty)
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("1,0.1,0.2\n,0.3,0.4\n")
    with pytest.raises(DataError, match=r"nolabel\.csv: line 2 has no label"):
        load_data(no_label)


def test_signal_ragged_rows(tmp_path):
    path = tmp_path / "ragged.txt"
    path.write_text("1 0.1 0.2 0.3\n2 0.1 0.2\n")
    with pytest.raises(DataError, match=r"ragged\.txt: line 2 has 3 values but line 1 has 4"):
        load_data(path)


def test_signal_table_speed(tmp_path):
    # ~4 MB in UCR float format should read in well under a second with the numpy path.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2000, 140))
    labels = rng.integers(1, 3, 2000)
    path = tmp_path / "big.txt"
    np.savetxt(path, np.c_[labels, values], fmt="%.7e")
    import time

    start = time.perf_counter()
    train = load_data(path).train
    assert time.perf_counter() - start < 3.0
    assert train.x.shape == (2000, 1, 140)
    assert np.allclose(train.x[:, 0], values, atol=1e-5)


# -- load_data dispatch and checks -------------------------------------------------------------

def test_unknown_suffix_lists_formats(tmp_path):
    path = tmp_path / "data.xyz"  # a suffix no hint names (.parquet has its own advice)
    path.write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"data\.xyz: unknown data format '\.xyz'") as err:
        load_data(path)
    for fmt in (".npz", ".csv", ".tsv", ".txt", "image-folder", "signal-table", "npz"):
        assert fmt in str(err.value)


def test_a_known_suffix_with_unknown_contents_says_so(tmp_path):
    # A .data file that is not UCI splice lines: "unknown format '.data'; automed reads .data"
    # contradicted itself.
    path = tmp_path / "x.data"
    path.write_text("a b c\n1 2 3\n")
    with pytest.raises(DataError) as err:
        load_data(path)
    message = str(err.value)
    assert "not a .data file automed recognises" in message and "UCI splice" in message
    assert "unknown data format" not in message and "--format" in message


def test_format_forces_loader(tmp_path):
    path = tmp_path / "series.dat"
    path.write_text(UCR_TXT)
    assert load_data(path, format="signal-table").train.x.shape == (4, 1, 3)
    with pytest.raises(ConfigError, match="unknown format 'parquet'"):
        load_data(path, format="parquet")


def test_a_modality_the_file_cannot_be_read_as_names_the_flag_that_was_given(tmp_path):
    # "drop --format tabular" was the fix even when only --modality had been given.
    path = tmp_path / "clin.csv"
    path.write_text("age,sex,outcome\n50,M,a\n60,F,b\n")
    with pytest.raises(DataError) as err:
        load_data(path, modality="image")
    assert "--format" not in str(err.value)
    assert "drop --modality image to read it as tabular" in str(err.value)
    with pytest.raises(DataError, match="drop --format tabular or use --modality tabular"):
        load_data(path, format="tabular", modality="image")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"nope\.npz: no such file"):
        load_data(tmp_path / "nope.npz")


def test_one_class_is_an_error(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("1 0.1 0.2\n1 0.3 0.4\n")
    with pytest.raises(DataError, match=r"one\.txt: only one class \('1'\)"):
        load_data(path)


def test_separate_test_file_unknown_class_and_shape(tmp_path):
    train = tmp_path / "TRAIN.txt"
    train.write_text(UCR_TXT)
    test = tmp_path / "TEST.txt"
    test.write_text("1 0.1 0.2 0.3\n-1 0.0 0.0 0.0\n")
    data = load_data(train, test=test)
    assert data.test.classes == ["-1", "1"] and data.test.y.tolist() == [1, 0]

    unknown = tmp_path / "UNKNOWN.txt"
    unknown.write_text("1 0.1 0.2 0.3\n3 0.0 0.0 0.0\n")
    with pytest.raises(DataError, match=r"UNKNOWN\.txt: labels \['3'\] do not occur"):
        load_data(train, test=unknown)

    longer = tmp_path / "LONG.txt"
    longer.write_text("1 0.1 0.2 0.3 0.4\n-1 0.0 0.0 0.0 0.0\n")
    with pytest.raises(DataError, match=r"LONG\.txt: test samples have shape \(1, 4\)"):
        load_data(train, test=longer)


# -- real data, when the shared copies are present ---------------------------------------------

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"shared datasets not found at {SHARED_DATA}")


@needs_shared
def test_real_breastmnist():
    data = load_data(SHARED_DATA / "breastmnist" / "breastmnist_28.npz")
    assert data.train.x.shape == (624, 1, 28, 28)  # 546 train + 78 val
    assert data.test.x.shape == (156, 1, 28, 28)
    assert data.train.x.dtype == np.uint8 and data.train.classes == ["0", "1"]


@needs_shared
def test_real_ecg200():
    data = load_data(SHARED_DATA / "ucr_ecg200" / "ECG200_TRAIN.txt")
    assert data.train.x.shape == (100, 1, 96) and data.train.n_classes == 2
    assert data.train.classes == ["-1", "1"]


def _series_rows(n: int = 12, length: int = 8) -> list[tuple[int, int, list[float]]]:
    rng = np.random.default_rng(1)
    return [(1 + i % 2, i // 3, list(np.round(rng.normal(size=length), 3))) for i in range(n)]


def test_a_group_column_index_of_a_headerless_signal_table_is_an_index(tmp_path):
    """QA: --group-col 1 on a UCR-style table (label, patient, values) was matched against the
    first row's values: "1" equalled its label, so column 0 was taken and refused as the
    label column, though the message listed column 1 as valid."""
    path = tmp_path / "grouped.txt"
    path.write_text("".join(f"{y} {g} " + " ".join(map(str, s)) + "\n"
                            for y, g, s in _series_rows()))
    data = load_data(path, group_col="1")
    assert data.train.x.shape == (12, 1, 8) and data.train.classes == ["1", "2"]
    assert list(data.train.groups[:6]) == ["0", "0", "0", "1", "1", "1"]
    with pytest.raises(DataError, match=r"must be a column index \(e\.g\. --label-col 0\)"):
        load_data(path, label_col="label")


def test_a_named_column_beside_a_numbered_series_is_refused_not_read_as_a_point(tmp_path):
    """QA: label,patient,t0..t7 read the patient id as every series' first point (input
    shape 9, where the series has 8); --group-col patient takes it out, as the refusal says."""
    path = tmp_path / "named.csv"
    path.write_text("label,patient," + ",".join(f"t{j}" for j in range(8)) + "\n" + "".join(
        f"{y},{g}," + ",".join(map(str, s)) + "\n" for y, g, s in _series_rows()))
    with pytest.raises(DataError, match=r"column 'patient' is not a point of the series "
                                        r"\(t0 to t7\); give it as --group-col patient"):
        load_data(path)
    assert load_data(path, group_col="patient").train.x.shape == (12, 1, 8)
    assert load_data(path, modality="tabular").train.x.shape[1] == 9  # every column a feature


def test_an_npz_declaring_more_than_half_the_memory_is_refused_unread(tmp_path, monkeypatch):
    # QA (hostile inputs): a 5 MB file declaring a 5.2 GB array was inflated whole; a
    # cut-short array was said to "need pickle".
    from automed.data.loaders import npz

    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros((200, 1, 28, 28), np.float32), y=np.arange(200) % 2)
    monkeypatch.setattr(npz, "_memory_bytes", lambda: 1_000_000)  # a 1 MB machine
    with pytest.raises(DataError, match=r"its arrays would take 0\.0 GB, more than half of "
                                        r"this machine's 0\.0 GB of memory; give a smaller"):
        load_data(path)
    monkeypatch.undo()
    short = tmp_path / "short.npz"
    np.savez(short, x=np.zeros((50, 28, 28), np.float32), y=np.arange(50) % 2)
    import zipfile

    with zipfile.ZipFile(short) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(short, "w") as z:  # x.npy cut short, its header intact
        for name, data in members.items():
            z.writestr(name, data[:len(data) // 2] if name == "x.npy" else data)
    with pytest.raises(DataError, match="not a readable .npz archive") as e:
        load_data(short)
    assert "pickle" not in str(e.value)


def test_a_volume_in_an_npz_is_read_as_channels_and_said(tmp_path):
    # QA (formats): MedMNIST-3D's (N, 28, 28, 28) became 28-channel 2-D images, unsaid
    from automed.searching.prepare import _volume_warnings

    path = tmp_path / "vol.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((20, 8, 12, 12)).astype(np.float32), y=np.arange(20) % 2)
    train = load_data(path).train
    assert train.x.shape == (20, 8, 12, 12)
    [said] = _volume_warnings(train)
    assert said.startswith("samples of 8 x 12 x 12 are read as 12 x 12 images of 8 channels")
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, x=rng.random((20, 12, 12, 3)).astype(np.float32), y=np.arange(20) % 2)
    assert _volume_warnings(load_data(rgb).train) == []  # colour images: no volume
