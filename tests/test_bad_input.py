"""Bad input to every command and data format: one ``error:`` line, a non-zero exit, no
traceback, and a study database whose content is exactly what it was.

The cases run through the real entry point (:func:`automed.cli.main`) in this process, a few
of them also in a subprocess. The database is compared by a hash of its table dumps, so a
refused command cannot have created, resumed or re-statused anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import run_cli

from automed import cli as cli_module
from automed.demo import make_demo
from automed.searching.runner import search

STUDY = "base"


def db_hash(path: Path) -> str:
    """A hash of every table's rows (WAL included), or of the bytes for a non-database."""
    if not path.exists():
        return "absent"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            dump = "\n".join(con.iterdump())
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return "bytes:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return hashlib.sha256(dump.encode()).hexdigest()


def _signal_rows(n: int = 20, length: int = 12, bad: str | None = None) -> str:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        values = [f"{v:.4f}" for v in rng.normal(i % 2, 1, length)]
        if bad is not None and i == 3:
            values[5] = bad
        rows.append(" ".join([str(1 + i % 2), *values]))
    return "\n".join(rows) + "\n"


def _tamper(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    edit(dst)
    return dst


def _edit_json(change):
    def edit(folder: Path) -> None:
        path = folder / "automed_model.json"
        config = json.loads(path.read_text())
        change(config)
        path.write_text(json.dumps(config))
    return edit


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict:
    """A workspace: one finished study, its exported model, and many broken inputs."""
    root = tmp_path_factory.mktemp("bad")
    db = root / "studies.db"
    storage = f"sqlite:///{db}"
    data = make_demo("signal", root / "signal.npz", n=40, seed=3)
    result = search(data, trials=1, folds=2, max_epochs=1, storage=storage, study=STUDY,
                    architectures=["cnn"], bootstrap=0)
    model = Path(result.artifact)
    p = {"root": root, "db": db, "storage": storage, "data": data, "model": model}

    def file(name: str, content: str | bytes) -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    x = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    y = np.arange(30) % 2
    for name, value in (("nan", np.nan), ("inf", np.inf), ("neginf", -np.inf)):
        xb = x.copy()
        xb[4, 2] = value
        np.savez(root / f"{name}.npz", x=xb, y=y)
        p[f"{name}_npz"] = str(root / f"{name}.npz")
    xn = x.copy()
    xn[1, 1] = np.nan
    np.savez(root / "nan_x.npz", x=xn)
    p["nan_x_npz"] = str(root / "nan_x.npz")
    np.savez(root / "objects.npz", x=np.array([{"a": 1}] * 30, dtype=object), y=y)
    p["objects_npz"] = str(root / "objects.npz")
    np.savez(root / "one_class.npz", x=x, y=np.zeros(30))
    p["one_class_npz"] = str(root / "one_class.npz")
    # a measurement saved as the labels: one distinct float per sample
    np.savez(root / "float_y.npz", x=x, y=np.linspace(0.5, 9.5, 30))
    p["float_y_npz"] = str(root / "float_y.npz")
    np.savez(root / "float_medmnist.npz", train_images=x.reshape(30, 4, 4),
             train_labels=np.linspace(0.5, 9.5, 30))
    p["float_medmnist_npz"] = str(root / "float_medmnist.npz")
    np.savez(root / "xy.npz", x=x, y=y)
    np.savez(root / "three.npz", x=x, y=np.arange(30) % 3)
    p["three_npz"] = str(root / "three.npz")
    p["xy_npz"] = str(root / "xy.npz")
    np.savez(root / "nolabels.npz", x=x)
    np.savez(root / "wrong_shape.npz", x=x[:, :7])
    p["wrong_shape_npz"] = str(root / "wrong_shape.npz")
    p["nolabels_npz"] = str(root / "nolabels.npz")
    p["fake_npz"] = file("fake.npz", "this is not a zip archive\n")
    p["unknown_suffix"] = file("data.xyz", "1 2 3\n")
    p["empty_csv"] = file("empty.csv", "")
    p["nan_tsv"] = file("nan.txt", _signal_rows(bad="nan"))
    p["inf_tsv"] = file("inf.txt", _signal_rows(bad="inf"))
    p["word_tsv"] = file("word.txt", _signal_rows(bad="abc"))
    p["ragged_tsv"] = file("ragged.txt", _signal_rows() + "1 0.5 0.6\n")
    p["one_class_tsv"] = file("oneclass.txt", "\n".join(
        "1 " + " ".join(["0.5"] * 8) for _ in range(10)) + "\n")
    p["bad_jsonl"] = file("notes.jsonl", '{"text": "cough fever", "label": "a"}\n{oops\n')
    p["nolabel_jsonl"] = file("nolabel.jsonl", '{"text": "cough fever"}\n{"text": "bone"}\n')
    p["empty_text_jsonl"] = file("emptytext.jsonl", '{"text": "!!!", "label": "a"}\n'
                                 '{"text": "bone", "label": "b"}\n')
    p["nolabel_fasta"] = file("seqs.fasta", ">s1\nACGTACGT\n>s2\nACGTTTGA\n")
    p["headless_fasta"] = file("headless.fasta", "ACGT\n>s1 a\nACGT\n")
    p["dup_tabular"] = file("dup.csv", "age,sex,sex,label\n60,F,M,a\n70,M,F,b\n")
    p["nofeature_tabular"] = file("nofeat.csv", "name,label\n")
    p["dup_id_tabular"] = file("dupid.csv", "rid,age,outcome\n1,50,a\n1,60,b\n2,55,a\n3,65,b\n"
                               "4,52,a\n5,61,b\n")
    p["inf_tabular"] = file("inf.csv", "age,sex,outcome\n" + "".join(
        f"{'inf' if i % 5 == 0 else 40 + i},{'MF'[i % 2]},{'ab'[i % 2]}\n" for i in range(30)))
    p["three_tsv"] = file("three.txt", "".join(
        f"{1 + i % 3} " + " ".join(f"{(i * j) % 7 / 7:.3f}" for j in range(12)) + "\n"
        for i in range(30)))
    p["three_csv"] = file("three.csv", "age,sex,label\n" + "".join(
        f"{40 + i},{'FM'[i % 2]},{'abc'[i % 3]}\n" for i in range(30)))
    p["notes_csv"] = file("notes.csv", "pid,note,dx\n" + "".join(
        f"p{i},{'fever cough' if i % 2 else 'broken bone'} day {i},{'ab'[i % 2]}\n"
        for i in range(30)))
    np.savez(root / "grouped.npz", x=x, y=y, groups=np.arange(30) // 3)
    p["grouped_npz"] = str(root / "grouped.npz")
    p["groups_file"] = file("ids.txt", "".join(f"q{i}\n" for i in range(30)))
    p["uci_bad"] = file("splice.data", "EI, S1, ACGTACGTACGT, extra\n")
    p["uci"] = file("good_splice.data", "EI, S1, ACGTACGTACGT\nIE, S2, ACGTTTGAACGT\n")
    p["text_for_signal"] = file("text_for_signal.jsonl",
                                '{"text": "cough fever", "label": "a"}\n'
                                '{"text": "broken bone", "label": "b"}\n')
    empty_images = root / "images_empty"
    (empty_images / "a").mkdir(parents=True)
    (empty_images / "b").mkdir()
    p["empty_images"] = str(empty_images)
    corrupt = root / "images_corrupt"
    (corrupt / "a").mkdir(parents=True)
    (corrupt / "b").mkdir()
    (corrupt / "a" / "x.png").write_bytes(b"not a png")
    (corrupt / "b" / "y.png").write_bytes(b"not a png")
    p["corrupt_images"] = str(corrupt)
    p["not_db"] = file("notdb.db", "this is not a database\n")
    p["missing_db"] = str(root / "missing.db")  # never created: the commands that read refuse it
    p["default_db"] = str(root / "automed.db")  # what no --storage means in the workspace
    p["victim"] = str(root / "victim.npz")
    shutil.copy(data, p["victim"])
    p["a_file"] = file("plain.txt", "a file, not a folder\n")
    p["groups_missing"] = str(root / "no_groups.txt")
    busy = root / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's file\n")
    p["busy_dir"] = str(busy)
    # A copy of the database stamped with a schema revision from the future.
    newer = root / "newer.db"
    src, con = sqlite3.connect(db), sqlite3.connect(newer)
    src.backup(con)  # a file copy would miss what is still in the WAL
    src.close()
    con.execute("UPDATE automed_alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    p["newer_db"] = str(newer)
    # Someone else's Optuna database: no automed tables, which reading must not add.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    p["optuna_db"] = str(root / "optuna.db")
    optuna.create_study(storage=f"sqlite:///{p['optuna_db']}", study_name="plain")
    # Tampered model folders: one fold model of the answer (a single-model artifact), and the
    # answer itself (a bag of fold models) with one fold damaged or pointing outside.
    bag, model = model, model / "fold-0"
    tampered = root / "tampered"
    tampered.mkdir()
    p["m_bag_fold"] = str(_tamper(bag, tampered / "bagfold", lambda f: (
        f / "fold-1" / "model.safetensors").write_bytes(b"\x00" * 64)))
    p["m_bag_escape"] = str(_tamper(bag, tampered / "bagescape", _edit_json(
        lambda c: c["ensemble"]["members"][0].update(folder="../../victim"))))
    # QA: the bag's own classes edited: probabilities of 2 classes under 3 names (rc 0)
    p["m_bag_classes"] = str(_tamper(bag, tampered / "bagclasses", _edit_json(
        lambda c: c.update(classes=["a", "b", "c"]))))
    p["m_bag_renamed"] = str(_tamper(bag, tampered / "bagrenamed", _edit_json(
        lambda c: c.update(classes=list(reversed(c["classes"]))))))
    p["m_json"] = str(_tamper(model, tampered / "json", lambda f: (
        f / "automed_model.json").write_text("{not json")))
    p["m_list_json"] = str(_tamper(model, tampered / "list", lambda f: (
        f / "automed_model.json").write_text("[1, 2]")))
    p["m_params"] = str(_tamper(model, tampered / "params", _edit_json(
        lambda c: c["params"].update(width=9999, blocks=7))))
    p["m_params_type"] = str(_tamper(model, tampered / "params_type", _edit_json(
        lambda c: c["params"].update(width="wide"))))
    p["m_truncated"] = str(_tamper(model, tampered / "truncated", lambda f: (
        f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:200])))
    p["m_pickle"] = str(_tamper(model, tampered / "pickle", lambda f: (
        f / "model.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))))
    p["m_no_weights"] = str(_tamper(model, tampered / "noweights", lambda f: (
        f / "model.safetensors").unlink()))
    p["m_no_spec"] = str(_tamper(model, tampered / "nospec", _edit_json(
        lambda c: c.pop("spec"))))
    p["m_no_classes"] = str(_tamper(model, tampered / "noclasses", _edit_json(
        lambda c: c.pop("classes"))))
    p["m_no_pre"] = str(_tamper(model, tampered / "nopre", _edit_json(
        lambda c: c["preprocessor"].pop("state"))))
    p["m_3_classes"] = str(_tamper(model, tampered / "3classes", _edit_json(
        lambda c: c.update(classes=["a", "b", "c"]))))
    p["m_bad_arch"] = str(_tamper(model, tampered / "arch", _edit_json(
        lambda c: c.update(architecture="no-such-net"))))
    p["m_format"] = str(_tamper(model, tampered / "format", _edit_json(
        lambda c: c.update(format="automed-model/99"))))
    p["m_bad_pre"] = str(_tamper(model, tampered / "badpre", _edit_json(
        lambda c: c["preprocessor"].update(modality="smell"))))
    p["m_empty"] = str(tampered / "empty")
    (tampered / "empty").mkdir()
    return p


LONG = "s" * 300

# (id, argv with {placeholders} from the workspace, database to check, text that must
# not appear: a password, or what a check that comes later would complain about)
CASES: list[tuple[str, list[str], str, str | None]] = [
    # search: options, checked before any work
    ("search-folds-1", ["search", "{data}", "--folds", "1"], "db", None),
    ("search-folds-0", ["search", "{data}", "--folds", "0"], "db", None),
    ("search-trials-0", ["search", "{data}", "--trials", "0"], "db", None),
    ("search-trials-neg", ["search", "{data}", "--trials", "-3"], "db", None),
    ("search-timeout-0", ["search", "{data}", "--timeout", "0"], "db", None),
    ("search-timeout-neg", ["search", "{data}", "--timeout", "-1"], "db", None),
    ("search-timeout-nan", ["search", "{data}", "--timeout", "nan"], "db", None),
    ("search-max-epochs-0", ["search", "{data}", "--max-epochs", "0"], "db", None),
    ("search-max-epochs-neg", ["search", "{data}", "--max-epochs", "-1"], "db", None),
    ("search-heartbeat-0", ["search", "{data}", "--heartbeat", "0"], "db", None),
    ("search-heartbeat-neg", ["search", "{data}", "--heartbeat", "-1"], "db", None),
    ("search-bag-0", ["search", "{data}", "--bag", "0"], "db", None),
    ("search-bag-too-many", ["search", "{data}", "--bag", "1000"], "db", None),
    # --bag seeds a refit: without --refit-full the answer is the fold models, nothing to seed
    ("search-bag-without-refit-full", ["search", "{data}", "--bag", "2"], "db", None),
    ("search-bootstrap-neg", ["search", "{data}", "--bootstrap", "-5"], "db", None),
    ("search-workers-neg", ["search", "{data}", "--workers", "-1"], "db", None),
    ("search-trials-per-gpu-0", ["search", "{data}", "--trials-per-gpu", "0"], "db", None),
    ("search-test-fraction-0", ["search", "{data}", "--test-fraction", "0"], "db", None),
    ("search-test-fraction-big", ["search", "{data}", "--test-fraction", "1.5"], "db", None),
    ("search-test-and-fraction", ["search", "{data}", "--test-fraction", "0.2", "--test",
                                  "{data}"], "db", None),
    ("search-study-empty", ["search", "{data}", "--study", ""], "db", None),
    ("search-study-blank", ["search", "{data}", "--study", "   "], "db", None),
    ("search-study-long", ["search", "{data}", "--study", LONG], "db", None),
    ("search-study-dotdot", ["search", "{data}", "--study", ".."], "db", None),
    ("search-study-dot", ["search", "{data}", "--study", "."], "db", None),
    ("search-study-slash", ["search", "{data}", "--study", "a/b"], "db", None),
    ("search-metric", ["search", "{data}", "--metric", "vibes"], "db", None),
    ("search-arch", ["search", "{data}", "--arch", "no-such-net"], "db", None),
    ("search-arch-wrong-modality", ["search", "{data}", "--arch", "biosequence"], "db", None),
    ("search-device", ["search", "{data}", "--device", "quantum"], "db", None),
    ("search-format", ["search", "{data}", "--format", "no-such-format"], "db", None),
    ("search-modality", ["search", "{data}", "--modality", "smell"], "db", None),
    # a forced modality no loader reads: the fix names the flag given, not --format
    ("search-modality-image-of-records", ["search", "{three_csv}", "--modality", "image"], "db",
     "--format"),
    ("search-modality-signal-of-text", ["search", "{text_for_signal}", "--modality", "signal"],
     "db", "--format"),
    ("search-label-col-npz", ["search", "{data}", "--label-col", "y"], "db", None),
    # --pos-label with three classes: no score would use it (--trials/--max-epochs keep a run
    # that wrongly accepts it short)
    ("search-pos-label-3-classes-npz", ["search", "{three_npz}", "--pos-label", "1",
                                        "--trials", "1", "--max-epochs", "1"], "db", None),
    ("search-pos-label-3-classes-signal", ["search", "{three_tsv}", "--pos-label", "2",
                                           "--trials", "1", "--max-epochs", "1"], "db", None),
    ("search-pos-label-3-classes-tabular", ["search", "{three_csv}", "--pos-label", "b",
                                            "--trials", "1", "--max-epochs", "1"], "db", None),
    ("search-group-key-missing", ["search", "{data}", "--group-col", "patients"], "db", None),
    ("search-groups-file-missing", ["search", "{data}", "--groups", "{groups_missing}"], "db",
     None),
    ("search-plugin-missing", ["search", "{data}", "--plugin", "{root}/nope.py"], "db", None),
    ("search-resume-other-folds", ["search", "{data}", "--study", STUDY, "--folds", "3",
                                   "--trials", "1"], "db", None),
    ("search-artifacts-under-file", ["search", "{data}", "--artifacts", "{a_file}/models"],
     "db", None),
    # a resume that would change what is searched or what the scores mean (the study was
    # created with --arch cnn --max-epochs 1); Optuna could not change the family choices
    ("search-resume-other-arch", ["search", "{data}", "--study", STUDY, "--arch", "mlp",
                                  "--max-epochs", "1", "--trials", "1"], "db", None),
    ("search-resume-all-archs", ["search", "{data}", "--study", STUDY, "--max-epochs", "1",
                                 "--trials", "1"], "db", None),
    ("search-resume-other-max-epochs", ["search", "{data}", "--study", STUDY, "--arch", "cnn",
                                        "--max-epochs", "2", "--trials", "1"], "db", None),
    # a test set beside the file's own test split, or the training file as its own test set
    ("search-test-beside-own-split", ["search", "{data}", "--test", "{xy_npz}"], "db", None),
    ("search-test-is-training", ["search", "{xy_npz}", "--test", "{xy_npz}"], "db", None),
    # the label named as the group column: each class one group, grouped CV scored 0.0
    ("search-group-col-is-label-text", ["search", "{notes_csv}", "--label-col", "dx",
                                        "--group-col", "dx"], "db", None),
    ("search-group-col-is-label-npz", ["search", "{xy_npz}", "--group-col", "y"], "db", None),
    # an .npz's own groups key and a --groups file: which ids count?
    ("search-groups-over-npz-groups", ["search", "{grouped_npz}", "--groups", "{groups_file}"],
     "db", None),
    ("search-groups-and-group-col", ["search", "{data}", "--groups", "{groups_missing}",
                                     "--group-col", "patient"], "db", None),
    # outputs nothing can be written to (/proc takes no new files, even from root)
    ("search-artifacts-unwritable", ["search", "{data}", "--artifacts", "/proc/automed-art"],
     "db", None),
    # --results-db is for workers behind a proxy: with a database URL it would be ignored
    ("search-results-db-without-proxy", ["search", "{data}", "--workers", "0", "--results-db",
                                         "sqlite:///{root}/results.db"], "db", None),
    ("worker-results-db-without-proxy", ["worker", "--study", STUDY, "--results-db",
                                         "sqlite:///{root}/results.db", "--storage",
                                         "{storage}"], "db", None),
    # --trials-per-gpu on the CPU would do nothing (--gpus none / --device cpu: on any machine)
    ("search-trials-per-gpu-on-cpu", ["search", "{data}", "--gpus", "none", "--trials-per-gpu",
                                      "4", "--workers", "0"], "db", None),
    ("search-trials-per-gpu-device-cpu", ["search", "{data}", "--device", "cpu",
                                          "--trials-per-gpu", "2", "--workers", "0"], "db",
     None),
    ("worker-trials-per-gpu-on-cpu", ["worker", "--study", STUDY, "--gpus", "none",
                                      "--trials-per-gpu", "4", "--storage", "{storage}"], "db",
     None),
    # a worker of no processes (QA: --workers 0 ran one worker, the message spoke of creating
    # the study, which is the search's --workers 0)
    ("worker-no-workers", ["worker", "--study", STUDY, "--workers", "0", "--storage",
                           "{storage}"], "db", None),
    # search: data of every format
    ("data-missing", ["search", "{root}/no_such.npz"], "db", None),
    ("data-unknown-suffix", ["search", "{unknown_suffix}"], "db", None),
    ("data-empty-csv", ["search", "{empty_csv}"], "db", None),
    ("npz-not-zip", ["search", "{fake_npz}"], "db", None),
    ("npz-objects", ["search", "{objects_npz}"], "db", None),
    ("npz-nan", ["search", "{nan_npz}"], "db", None),
    ("npz-inf", ["search", "{inf_npz}"], "db", None),
    ("npz-neginf", ["search", "{neginf_npz}"], "db", None),
    ("npz-one-class", ["search", "{one_class_npz}"], "db", None),
    ("npz-no-labels", ["search", "{nolabels_npz}"], "db", None),
    # the npz loader refuses --label-col: the fix for float labels must not suggest it
    ("npz-float-labels", ["search", "{float_y_npz}"], "db", "--label-col"),
    ("npz-medmnist-float-labels", ["search", "{float_medmnist_npz}"], "db", "--label-col"),
    ("signal-nan", ["search", "{nan_tsv}"], "db", None),
    ("signal-inf", ["search", "{inf_tsv}"], "db", None),
    ("signal-word", ["search", "{word_tsv}"], "db", None),
    ("signal-ragged", ["search", "{ragged_tsv}"], "db", None),
    ("signal-one-class", ["search", "{one_class_tsv}"], "db", None),
    ("signal-label-col-range", ["search", "{nan_tsv}", "--label-col", "99"], "db", None),
    ("text-bad-json", ["search", "{bad_jsonl}"], "db", None),
    ("text-no-label", ["search", "{nolabel_jsonl}"], "db", None),
    ("text-empty-text", ["search", "{empty_text_jsonl}"], "db", None),
    ("fasta-no-label", ["search", "{nolabel_fasta}"], "db", None),
    ("fasta-no-header", ["search", "{headless_fasta}"], "db", None),
    # the fix for a column option names where these formats keep the label, not --groups
    ("fasta-label-col", ["search", "{nolabel_fasta}", "--label-col", "x"], "db", "--groups"),
    ("uci-fields", ["search", "{uci_bad}"], "db", None),
    ("uci-label-col", ["search", "{uci}", "--label-col", "0"], "db", "--groups"),
    ("tabular-dup-column", ["search", "{dup_tabular}", "--modality", "tabular"], "db", None),
    # --id-col promises unique ids, for records as for texts (--workers 0: only the study)
    ("tabular-duplicate-id", ["search", "{dup_id_tabular}", "--id-col", "rid", "--workers",
                              "0", "--folds", "2"], "db", None),
    # infinity is no missing value: refused at load, not diverging in every candidate
    ("tabular-inf", ["search", "{inf_tabular}", "--trials", "1", "--max-epochs", "1"], "db",
     "loss"),
    ("tabular-no-rows", ["search", "{nofeature_tabular}", "--modality", "tabular"], "db",
     None),
    ("images-empty-classes", ["search", "{empty_images}"], "db", None),
    ("images-corrupt", ["search", "{corrupt_images}"], "db", None),
    # storage
    ("search-storage-not-db", ["search", "{data}", "--storage", "{not_db}"], "not_db", None),
    ("search-storage-port", ["search", "{data}", "--storage",
                             "postgresql://user:SECRET@127.0.0.1:notaport/db"], "db", "SECRET"),
    ("search-storage-malformed", ["search", "{data}", "--storage",
                                  "postgresql:://user:PASSWORD@127.0.0.1/db"], "db", "PASSWORD"),
    ("search-storage-folder", ["search", "{data}", "--storage",
                               "sqlite:///{root}/no/such/dir/x.db"], "db", None),
    ("search-storage-newer-schema", ["search", "{data}", "--storage", "{newer_db}"], "newer_db",
     None),
    ("leaderboard-not-db", ["leaderboard", "--storage", "{not_db}"], "not_db", None),
    ("leaderboard-malformed", ["leaderboard", "--storage",
                               "postgresql:://user:PASSWORD@127.0.0.1/db"], "db", "PASSWORD"),
    ("leaderboard-newer-schema", ["leaderboard", "--storage", "{newer_db}"], "newer_db", None),
    ("db-upgrade-not-db", ["db", "upgrade", "--storage", "{not_db}"], "not_db", None),
    ("db-upgrade-newer", ["db", "upgrade", "--storage", "{newer_db}"], "newer_db", None),
    ("db-upgrade-port", ["db", "upgrade", "--storage",
                         "postgresql://u:SECRET@127.0.0.1:x/db"], "db", "SECRET"),
    # the proxy serves Optuna's storage, not a schema: the fix names the database URL
    ("db-current-proxy", ["db", "current", "--storage", "grpc://127.0.0.1:13999"], "db",
     "sqlalchemy"),
    ("db-upgrade-proxy", ["db", "upgrade", "--storage", "grpc://127.0.0.1:13999"], "db",
     "sqlalchemy"),
    ("db-current-not-db", ["db", "current", "--storage", "{not_db}"], "not_db", None),
    ("studies-not-db", ["studies", "--storage", "{not_db}"], "not_db", None),
    # a database that is not there: the commands that only read it must not create it
    ("leaderboard-no-database", ["leaderboard", "--storage", "{missing_db}"], "missing_db",
     None),
    ("leaderboard-no-default-database", ["leaderboard"], "default_db", None),
    ("studies-no-database", ["studies", "--storage", "sqlite:///{missing_db}"], "missing_db",
     None),
    ("show-no-database", ["show", STUDY, "--storage", "{missing_db}"], "missing_db", None),
    ("report-no-database", ["report", STUDY, "-o", "{root}/r.html", "--storage",
                            "{missing_db}"], "missing_db", None),
    ("export-no-database", ["export", "-o", "{root}/exp", "--storage", "{missing_db}"],
     "missing_db", None),
    ("predict-no-database", ["predict", "{data}", "--storage", "{missing_db}"], "missing_db",
     None),
    ("worker-no-database", ["worker", "--study", STUDY, "--storage", "{missing_db}"],
     "missing_db", None),
    ("db-current-no-database", ["db", "current", "--storage", "{missing_db}"], "missing_db",
     None),
    # an Optuna database without automed's tables: read commands add none
    ("leaderboard-optuna-db", ["leaderboard", "--storage", "{optuna_db}"], "optuna_db", None),
    ("studies-optuna-db", ["studies", "--storage", "{optuna_db}"], "optuna_db", None),
    ("show-optuna-db", ["show", "plain", "--storage", "{optuna_db}"], "optuna_db", None),
    ("report-optuna-db", ["report", "plain", "-o", "{root}/r.html", "--storage",
                          "{optuna_db}"], "optuna_db", None),
    ("export-optuna-db", ["export", "-o", "{root}/exp", "--storage", "{optuna_db}"],
     "optuna_db", None),
    ("worker-optuna-db", ["worker", "--study", "plain", "--storage", "{optuna_db}"],
     "optuna_db", None),
    # reading commands
    ("leaderboard-unknown-study", ["leaderboard", "--study", "nope", "--storage", "{storage}"],
     "db", None),
    ("leaderboard-metric", ["leaderboard", "--metric", "vibes", "--storage", "{storage}"], "db",
     None),
    ("leaderboard-sort", ["leaderboard", "--sort", "vibes", "--storage", "{storage}"], "db",
     None),
    ("leaderboard-dataset", ["leaderboard", "--dataset", "nope", "--storage", "{storage}"],
     "db", None),
    ("show-unknown-study", ["show", "nope", "--storage", "{storage}"], "db", None),
    ("show-unknown-candidate", ["show", STUDY, "999", "--storage", "{storage}"], "db", None),
    ("report-unknown-study", ["report", "nope", "-o", "{root}/r.html", "--storage",
                              "{storage}"], "db", None),
    ("report-missing-folder", ["report", STUDY, "-o", "{root}/no/such/r.html", "--storage",
                               "{storage}"], "db", None),
    ("report-under-file", ["report", STUDY, "-o", "{a_file}/r.html", "--storage", "{storage}"],
     "db", None),
    ("report-into-folder", ["report", STUDY, "-o", "{root}", "--storage", "{storage}"], "db",
     None),
    ("report-unwritable", ["report", STUDY, "-o", "/proc/automed-r.html", "--storage",
                           "{storage}"], "db", None),
    ("worker-unknown-study", ["worker", "--study", "nope", "--storage", "{storage}"], "db",
     None),
    ("worker-timeout-neg", ["worker", "--study", STUDY, "--timeout", "-1", "--storage",
                            "{storage}"], "db", None),
    ("worker-timeout-0", ["worker", "--study", STUDY, "--timeout", "0", "--storage",
                          "{storage}"], "db", None),
    ("worker-trials-per-gpu-0", ["worker", "--study", STUDY, "--trials-per-gpu", "0",
                                 "--storage", "{storage}"], "db", None),
    ("worker-device", ["worker", "--study", STUDY, "--device", "quantum", "--storage",
                       "{storage}"], "db", None),
    ("worker-storage-not-db", ["worker", "--study", STUDY, "--storage", "{not_db}"], "not_db",
     None),
    ("worker-workers-neg", ["worker", "--study", STUDY, "--workers", "-2", "--storage",
                            "{storage}"], "db", None),
    # predict
    ("predict-missing-folder", ["predict", "{data}", "--study", STUDY, "-o",
                                "{root}/no/such/p.csv", "--storage", "{storage}"], "db", None),
    ("predict-under-file", ["predict", "{data}", "--study", STUDY, "-o", "{a_file}/p.csv",
                            "--storage", "{storage}"], "db", None),
    ("predict-unknown-study", ["predict", "{data}", "--study", "nope", "--storage",
                               "{storage}"], "db", None),
    ("predict-unwritable", ["predict", "{data}", "--study", STUDY, "-o", "/proc/automed.csv",
                            "--storage", "{storage}"], "db", None),
    ("predict-storage-not-db", ["predict", "{data}", "--storage", "{not_db}"], "not_db", None),
    ("predict-wrong-modality", ["predict", "{text_for_signal}", "--model", "{model}"], "db",
     None),
    ("predict-nan", ["predict", "{nan_npz}", "--model", "{model}"], "db", None),
    ("predict-split-test-missing", ["predict", "{xy_npz}", "--model", "{model}", "--split",
                                    "test"], "db", "shape"),
    ("predict-unlabeled-split", ["predict", "{nolabels_npz}", "--model", "{model}",
                                 "--split", "train"], "db", None),
    ("predict-unlabeled-nan", ["predict", "{nan_x_npz}", "--model", "{model}"], "db", None),
    ("predict-objects-npz", ["predict", "{objects_npz}", "--model", "{model}"], "db", None),
    ("predict-not-zip", ["predict", "{fake_npz}", "--model", "{model}"], "db", None),
    ("predict-unlabeled-text-table", ["predict", "{nolabel_jsonl}", "--model", "{model}"],
     "db", None),
    ("model-invalid-json", ["predict", "{data}", "--model", "{m_json}"], "db", None),
    ("model-json-list", ["predict", "{data}", "--model", "{m_list_json}"], "db", None),
    ("model-edited-params", ["predict", "{data}", "--model", "{m_params}"], "db", None),
    ("model-params-type", ["predict", "{data}", "--model", "{m_params_type}"], "db", None),
    ("model-truncated-weights", ["predict", "{data}", "--model", "{m_truncated}"], "db", None),
    ("model-pickle-weights", ["predict", "{data}", "--model", "{m_pickle}"], "db", None),
    ("model-no-weights", ["predict", "{data}", "--model", "{m_no_weights}"], "db", None),
    ("model-no-spec", ["predict", "{data}", "--model", "{m_no_spec}"], "db", None),
    ("model-no-classes", ["predict", "{data}", "--model", "{m_no_classes}"], "db", None),
    ("model-no-preprocessing", ["predict", "{data}", "--model", "{m_no_pre}"], "db", None),
    ("model-3-classes", ["predict", "{data}", "--model", "{m_3_classes}"], "db", None),
    ("model-unknown-arch", ["predict", "{data}", "--model", "{m_bad_arch}"], "db", None),
    ("model-format", ["predict", "{data}", "--model", "{m_format}"], "db", None),
    ("model-preprocessor", ["predict", "{data}", "--model", "{m_bad_pre}"], "db", None),
    ("model-empty-folder", ["predict", "{data}", "--model", "{m_empty}"], "db", None),
    ("model-bag-damaged-fold", ["predict", "{data}", "--model", "{m_bag_fold}"], "db", None),
    ("model-bag-member-outside", ["predict", "{data}", "--model", "{m_bag_escape}"], "db",
     None),
    ("model-bag-3-classes", ["predict", "{data}", "--model", "{m_bag_classes}"], "db", None),
    ("model-bag-classes-swapped", ["predict", "{data}", "--model", "{m_bag_renamed}"], "db",
     None),
    # export, demo, plugins
    ("export-under-file", ["export", "--study", STUDY, "-o", "{a_file}/out", "--storage",
                           "{storage}"], "db", None),
    ("export-onto-file", ["export", "--study", STUDY, "-o", "{a_file}", "--storage",
                          "{storage}"], "db", None),
    ("export-unwritable", ["export", "--study", STUDY, "-o", "/proc/automed-exp",
                           "--storage", "{storage}"], "db", None),
    ("export-into-a-busy-folder", ["export", "--study", STUDY, "-o", "{busy_dir}",
                                   "--storage", "{storage}"], "db", None),
    ("export-unknown-study", ["export", "--study", "nope", "-o", "{root}/exp", "--storage",
                              "{storage}"], "db", None),
    ("demo-n-0", ["demo", "-n", "0", "-o", "{root}/d.npz"], "db", None),
    ("demo-n-neg", ["demo", "-n", "-5", "-o", "{root}/d.npz"], "db", None),
    # the old "n=3 is too small" named no option
    ("demo-n-3", ["demo", "-n", "3", "-o", "{root}/d.npz"], "db", "n=3"),
    ("demo-not-npz", ["demo", "-o", "{root}/out.txt"], "db", None),
    ("demo-missing-folder", ["demo", "-o", "{root}/no/such/d.npz"], "db", None),
    ("demo-under-file", ["demo", "-o", "{a_file}/d.npz"], "db", None),
    ("demo-into-folder", ["demo", "-o", "{root}"], "db", None),
    ("plugins-check-unknown", ["plugins", "check", "no-such-plugin"], "db", None),
    # what click itself refuses comes out as one line too
    ("search-trials-word", ["search", "{data}", "--trials", "abc"], "db", None),
    ("search-seed-word", ["search", "{data}", "--seed", "x"], "db", None),
    ("search-no-data", ["search"], "db", None),
    ("search-unknown-option", ["search", "{data}", "--colour", "red"], "db", None),
    ("unknown-command", ["serch", "{data}"], "db", None),
    ("leaderboard-top-0", ["leaderboard", "--top", "0", "--storage", "{storage}"], "db", None),
    ("leaderboard-top-neg", ["leaderboard", "--top", "-2", "--storage", "{storage}"], "db",
     None),
    ("leaderboard-json-and-csv", ["leaderboard", "--json", "--format", "csv", "--storage",
                                  "{storage}"], "db", None),
    ("report-top-0", ["report", STUDY, "-o", "{root}/top.html", "--top", "0", "--storage",
                      "{storage}"], "db", None),
    ("report-top-neg", ["report", STUDY, "-o", "{root}/top.html", "--top", "-1", "--storage",
                        "{storage}"], "db", None),
    ("leaderboard-top-word", ["leaderboard", "--top", "ten", "--storage", "{storage}"], "db",
     None),
    ("predict-over-its-data", ["predict", "{victim}", "--model", "{model}", "-o", "{victim}"],
     "db", None),
    ("predict-over-the-database", ["predict", "{data}", "--study", STUDY, "-o", "{db}",
                                   "--storage", "{storage}"], "db", None),
    ("report-over-the-database", ["report", STUDY, "-o", "{db}", "--storage", "{storage}"],
     "db", None),
    # options are checked before the data or the database is touched
    ("options-before-data", ["search", "{root}/no_such.npz", "--trials", "0"], "db", "no_such"),
    ("options-before-storage", ["search", "{data}", "--folds", "1", "--storage", "{not_db}"],
     "not_db", "not a database"),
    ("predict-data-missing", ["predict", "{root}/no_such.npz", "--model", "{model}"], "db",
     None),
]


def _argv(ws: dict, args: list[str]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in ws.items()}) for a in args]


def _storage_args(argv: list[str], ws: dict) -> list[str]:
    # search without --storage would use ./automed.db: point it at the workspace database.
    if argv[0] == "search" and "--storage" not in argv:
        return [*argv, "--storage", ws["storage"]]
    return argv


def _check(ws: dict, key: str, code, err: str, out: str, secret: str | None,
           before: str) -> None:
    assert code not in (0, None), f"exit {code}: {out}{err}"
    assert "Traceback" not in err + out, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert lines[0].strip() != "error:"
    if secret:
        assert secret not in err + out
    assert db_hash(Path(ws[key])) == before, "the database changed"


def test_there_are_enough_cases():
    commands = {args[0] for _, args, _, _ in CASES}
    assert len(CASES) >= 60
    assert {"search", "leaderboard", "studies", "show", "report", "worker", "predict",
            "export", "demo", "db", "plugins"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(ws, case, capsys, monkeypatch):
    _, args, key, secret = case
    argv = _storage_args(_argv(ws, args), ws)
    monkeypatch.chdir(ws["root"])
    before = db_hash(Path(ws[key]))
    data_before = hashlib.sha256(Path(ws["victim"]).read_bytes()).hexdigest()
    monkeypatch.setattr(sys, "argv", ["automed", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    captured = capsys.readouterr()
    _check(ws, key, exit_info.value.code, captured.err, captured.out, secret, before)
    assert hashlib.sha256(Path(ws["victim"]).read_bytes()).hexdigest() == data_before


SUBPROCESS = ["npz-nan", "model-pickle-weights", "search-storage-malformed",
              "db-upgrade-newer", "demo-n-0", "predict-under-file"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_bad_input_in_a_fresh_process(ws, name):
    _, args, key, secret = next(c for c in CASES if c[0] == name)
    argv = _storage_args(_argv(ws, args), ws)
    before = db_hash(Path(ws[key]))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("AUTOMED_STORAGE", None)
    run = subprocess.run([sys.executable, "-m", "automed.cli", *argv], capture_output=True,
                         text=True, cwd=ws["root"], env=env, timeout=300)
    _check(ws, key, run.returncode, run.stderr, run.stdout, secret, before)


def test_the_valid_controls_still_work(ws, tmp_path, capsys, monkeypatch):
    """The inputs beside the bad ones are fine: the refusals are about the bad part only."""
    monkeypatch.chdir(tmp_path)
    for argv in (["predict", str(ws["data"]), "--model", str(ws["model"]), "-o", "p.csv"],
                 ["predict", str(ws["nolabels_npz"]).replace("nolabels", "signal"),
                  "--study", STUDY, "--storage", ws["storage"]],
                 ["report", STUDY, "-o", "r.html", "--storage", ws["storage"]],
                 ["export", "--study", STUDY, "-o", "exp/nested", "--storage", ws["storage"]],
                 ["demo", "-n", "10", "-o", "d.npz"]):
        monkeypatch.setattr(sys, "argv", ["automed", *argv])
        try:
            cli_module.main()
        except SystemExit as exc:  # pragma: no cover - shown on failure
            pytest.fail(f"{argv}: exit {exc.code}: {capsys.readouterr().err}")
    assert (tmp_path / "p.csv").read_text().startswith("split,index,label,predicted")
    assert (tmp_path / "exp" / "nested" / "MODEL_CARD.md").is_file()


def test_a_refused_prediction_writes_nothing(ws, tmp_path, capsys, monkeypatch):
    # The samples fail only when the model reads them: no header-only CSV may be left behind
    # (it would read as an empty prediction), on a file or on stdout.
    monkeypatch.chdir(tmp_path)
    for argv in (["predict", ws["wrong_shape_npz"], "--model", str(ws["model"]), "-o", "p.csv"],
                 ["predict", ws["wrong_shape_npz"], "--model", str(ws["model"])]):
        monkeypatch.setattr(sys, "argv", ["automed", *argv])
        with pytest.raises(SystemExit) as exit_info:
            cli_module.main()
        captured = capsys.readouterr()
        assert exit_info.value.code not in (0, None)
        assert "shape" in captured.err and captured.out == ""
    assert not (tmp_path / "p.csv").exists()


def test_export_replaces_an_earlier_export_in_its_folder(ws, tmp_path, capsys, monkeypatch):
    # An earlier export of another model (here the single model of fold 0) is replaced whole:
    # none of its files is left beside the new answer's.
    out = tmp_path / "exported"
    shutil.copytree(ws["model"] / "fold-0", out)
    (out / "MODEL_CARD.md").write_text("the old card\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["automed", "export", "--study", STUDY, "-o", str(out),
                                      "--storage", ws["storage"]])
    cli_module.main()
    assert {p.name for p in out.iterdir()} == \
        {p.name for p in ws["model"].iterdir()} | {"MODEL_CARD.md"}
    assert "the old card" not in (out / "MODEL_CARD.md").read_text()



READERS = [["leaderboard"], ["studies"], ["show", STUDY], ["report", STUDY, "-o", "r.html"],
           ["export", "-o", "exp"], ["predict", "{data}"], ["worker", "--study", STUDY],
           ["db", "current"]]


@pytest.mark.parametrize("args", READERS, ids=[a[0] if a[0] != "db" else "db-current"
                                              for a in READERS])
def test_a_missing_database_is_named_not_created(ws, args, tmp_path, capsys, monkeypatch):
    # A mistyped --storage must not leave an empty database behind that later reads as "no
    # searches yet": the refusal names the path and what to do instead, and creates nothing.
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.db"
    monkeypatch.setattr(sys, "argv", ["automed", *_argv(ws, args), "--storage", str(missing)])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    assert f"error: no study database at {missing}; run `automed search" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", READERS, ids=[a[0] if a[0] != "db" else "db-current"
                                              for a in READERS])
def test_an_optuna_database_gets_no_automed_tables(ws, args, tmp_path, capsys, monkeypatch):
    # Someone else's Optuna study database: reading it must not stamp automed's schema into
    # it (`db current` would then call it up to date); the refusal says what it is.
    import optuna

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=url, study_name="plain")
    con = sqlite3.connect(tmp_path / "optuna.db")
    before = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    monkeypatch.setattr(sys, "argv", ["automed", *_argv(ws, args), "--storage", url])
    try:
        cli_module.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    con = sqlite3.connect(tmp_path / "optuna.db")
    after = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert after == before
    if args[0] == "db":  # only reports the revision: none
        assert code in (0, None)
        return
    assert code not in (0, None)
    assert f"error: {url} holds no automed searches" in err


def test_a_plain_optuna_study_of_the_same_name_is_not_taken_over(ws, tmp_path, capsys,
                                                                 monkeypatch):
    # QA: it was resumed as automed's, crashed the answer (KeyError: 'architecture') on every
    # run, and left a failed search row behind.
    import optuna

    db = tmp_path / "o.db"
    url = f"sqlite:///{db}"
    plain = optuna.create_study(storage=url, study_name="mine")
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    automed_tables = ("automed_searches", "automed_candidates")
    for _ in range(2):  # and again: nothing was left to trip over
        code, _, err = run_cli(monkeypatch, capsys, "search", str(ws["data"]), "--trials", "1",
                               "--folds", "2", "--max-epochs", "1", "--storage", url,
                               "--study", "mine")
        assert code not in (0, None)
        assert err == ("error: study 'mine' in this database was made by another Optuna "
                       "program, not by automed; give another --study name\n")
        con = sqlite3.connect(db)
        rows = [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in automed_tables
                if con.execute("SELECT 1 FROM sqlite_master WHERE name=?", (t,)).fetchone()]
        con.close()
        assert not any(rows)
    study = optuna.load_study(study_name="mine", storage=url)
    assert len(study.trials) == 2 and study.direction == optuna.study.StudyDirection.MINIMIZE


def test_the_same_search_started_at_once_is_no_foreign_optuna_study(ws, tmp_path, monkeypatch):
    # CI race: a twin search wrote its row and its Optuna study between this search's look for
    # the row (none yet) and its look for the study, which then read as another program's.
    from automed.errors import ConfigError
    from automed.storage import Store

    url = f"sqlite:///{tmp_path / 'twin.db'}"
    search(ws["data"], trials=1, folds=2, max_epochs=1, storage=url, study="twin", bootstrap=0,
           architectures=["cnn"])
    real, calls = Store.search, []

    def late(self, name):
        calls.append(name)
        if len(calls) == 1:  # the row is not there yet at the first look
            raise ConfigError(f"no study {name!r}")
        return real(self, name)

    monkeypatch.setattr(Store, "search", late)
    again = search(ws["data"], trials=1, folds=2, max_epochs=1, storage=url, study="twin",
                   bootstrap=0, architectures=["cnn"])
    assert again.resumed and len(calls) >= 2


def test_gpus_all_without_a_gpu_says_it_trains_on_the_cpu(ws, tmp_path, capsys, monkeypatch):
    # On a machine without a GPU, --gpus all falls back to the CPU with a line saying so (as
    # --help documents); --trials-per-gpu, which would do nothing there, is refused.
    from automed.searching import devices

    monkeypatch.setattr(devices, "visible_gpus", lambda: [])
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'gpus.db'}"
    base = ["automed", "search", str(ws["data"]), "--workers", "0", "--storage", storage]
    monkeypatch.setattr(sys, "argv", [*base, "--gpus", "all"])
    cli_module.main()
    assert "--gpus all: no GPU is visible; training on the CPU" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", [*base, "--study", "other", "--trials-per-gpu", "4"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    assert "error: --trials-per-gpu 4 needs a GPU, and no GPU is visible" in err


@pytest.mark.parametrize("command", ["search", "worker"])
def test_results_db_from_the_environment_is_refused_without_a_proxy(ws, command, capsys,
                                                                     monkeypatch):
    # $AUTOMED_RESULTS_DB is --results-db's default: on a database URL it was silently
    # ignored (the candidates went to --storage, not where the variable said).
    monkeypatch.setenv("AUTOMED_RESULTS_DB", f"sqlite:///{ws['root']}/results.db")
    argv = (["search", str(ws["data"]), "--workers", "0"] if command == "search"
            else ["worker", "--study", STUDY])
    before = db_hash(Path(ws["db"]))
    code, out, err = run_cli(monkeypatch, capsys, *argv, "--storage", ws["storage"])
    assert code not in (0, None)
    assert err.startswith("error: $AUTOMED_RESULTS_DB (set) applies to --storage "
                          "grpc://HOST:PORT") and "unset it" in err and len(err.splitlines()) == 1
    assert db_hash(Path(ws["db"])) == before
    assert not (Path(ws["root"]) / "results.db").exists()


@pytest.mark.parametrize("command", ["current", "upgrade"])
def test_db_commands_name_the_database_behind_a_proxy(command, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["automed", "db", command, "--storage",
                                      "grpc://127.0.0.1:13999"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    assert f"error: automed db {command} needs the database itself, not the proxy" in err
    assert "--storage DB_URL" in err


def test_demo_refuses_a_name_that_is_not_npz(tmp_path, capsys, monkeypatch):
    # npz bytes in out.txt would later be read as a text table ("not a UTF-8 text file").
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["automed", "demo", "-o", "out.txt", "-n", "20"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    assert "error: -o out.txt: the demo is a .npz archive" in err and "out.npz" in err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(sys, "argv", ["automed", "demo", "-n", "3", "-o", "d.npz"])
    with pytest.raises(SystemExit):
        cli_module.main()
    assert "error: -n/--samples 3 is too small" in capsys.readouterr().err


def test_demo_writes_over_only_its_own_file(tmp_path, capsys, monkeypatch):
    # QA: `automed demo -o ecg.npz` overwrote a searched study's data without a word
    from automed.demo import make_demo

    monkeypatch.chdir(tmp_path)
    first = make_demo("signal", "ecg.npz", n=20, seed=1).read_bytes()
    assert make_demo("signal", "ecg.npz", n=20, seed=1).read_bytes() == first  # a re-run
    monkeypatch.setattr(sys, "argv", ["automed", "demo", "--kind", "signal", "-o", "ecg.npz",
                                      "-n", "20", "--seed", "2"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    assert exit_info.value.code not in (0, None)
    assert "error: ecg.npz exists and holds other data; give another -o" in \
        capsys.readouterr().err
    assert (tmp_path / "ecg.npz").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ecg.npz"]  # no temporary left


def test_a_worker_names_the_groups_file_when_the_data_changed(tmp_path, capsys, monkeypatch):
    # The groups file changed after the study was created: the refusal named only the data
    # file, which had not changed.
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(24, 16)).astype("float32"),
             y=np.arange(24) % 2)
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"p{i // 2}\n" for i in range(24)))
    storage = f"sqlite:///{tmp_path / 'g.db'}"
    monkeypatch.setattr(sys, "argv", ["automed", "search", "d.npz", "--groups", str(ids),
                                      "--workers", "0", "--folds", "2", "--study", "g",
                                      "--storage", storage])
    cli_module.main()
    ids.write_text("".join(f"q{i}\n" for i in range(24)))  # other patients now
    monkeypatch.setattr(sys, "argv", ["automed", "worker", "--study", "g", "--storage",
                                      storage])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    line = next(ln for ln in err.splitlines() if ln.startswith("error:"))
    assert str(ids) in line and "do not give the data study 'g' was created with" in line
