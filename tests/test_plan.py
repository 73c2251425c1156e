"""One search plan: groups and locked test rows are honoured on every path (one worker, local
worker processes, `automed worker`), options are never silently ignored, and a stored plan
this version cannot honour is refused."""

from __future__ import annotations

import numpy as np
import pytest

from automed.errors import ConfigError, PluginError
from automed.evaluation.leakage import sample_hashes
from automed.searching.plan import DataPlan, SearchPlan
from automed.searching.prepare import prepare
from automed.searching.runner import search
from automed.searching.workers import join, objective_from_store
from automed.storage import Store
from tests.cohort import FORMATS, write

QUICK = dict(trials=2, folds=3, max_epochs=3, bootstrap=0, save_model=False)
GROUP_COL = {"npz": "groups"}
LABEL_COL = {"signal": "label"}  # a UCR-style table's label is column 0 unless named


def _best_cv(storage: str, study: str) -> float:
    rows = [r for r in Store(storage).leaderboard(study) if r["state"] == "complete"]
    assert rows, "no candidate completed"
    return max(r["score_mean"] for r in rows)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_grouped_cohort_scores_chance_with_one_worker(fmt, tmp_path):
    path = write(fmt, tmp_path)
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    result = search(path, format=FORMATS[fmt], group_col=GROUP_COL.get(fmt, "patient"),
                    label_col=LABEL_COL.get(fmt), storage=storage, study="g", refit=False,
                    **QUICK)
    assert Store(storage).search("g")["config"]["grouped"] is True
    assert _best_cv(storage, "g") < 0.7, result.leaderboard


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_grouped_cohort_scores_chance_with_two_workers_and_automed_worker(fmt, tmp_path):
    path = write(fmt, tmp_path)
    storage = f"sqlite:///{tmp_path / 'b.db'}"
    opts = dict(format=FORMATS[fmt], group_col=GROUP_COL.get(fmt, "patient"),
                label_col=LABEL_COL.get(fmt), storage=storage)
    search(path, study="two", workers=2, refit=False, **opts, **QUICK)
    assert _best_cv(storage, "two") < 0.7
    # Created here, run by a joining worker that knows only the database.
    search(path, study="joined", workers=0, **opts, **QUICK)
    assert join("joined", storage=storage, workers=1) >= 1
    assert _best_cv(storage, "joined") < 0.7


def test_ungrouped_cohort_leaks_which_is_why_groups_matter(tmp_path):
    path = write("tabular", tmp_path)
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    search(path, storage=storage, study="leaky", refit=False, **QUICK)
    assert _best_cv(storage, "leaky") > 0.9  # the patient memorised: a confident wrong answer


def test_workers_rebuild_the_same_folds_without_the_test_rows(tmp_path):
    path = write("tabular", tmp_path)
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    search(path, group_col="patient", test_fraction=0.2, study="t", workers=0,
           storage=storage, **QUICK)
    store = Store(storage)
    worker_side = objective_from_store(store, "t", "cpu", allowed_plugins=[]).p
    plan = SearchPlan.from_dict(store.search("t")["config"]["plan"])
    main_side = prepare(plan)
    test_hashes = set(sample_hashes(main_side.test.x).tolist())
    assert test_hashes
    train_hashes = sample_hashes(worker_side.train.x)
    for tr, va in worker_side.splits:
        fold_rows = set(train_hashes[np.concatenate([tr, va])].tolist())
        assert not fold_rows & test_hashes  # no locked test row in any CV fold
    assert not set(map(str, worker_side.train.groups)) & set(map(str, main_side.test.groups))
    assert worker_side.identity() == main_side.identity()


@pytest.mark.slow
def test_two_workers_with_test_fraction_complete(tmp_path):
    path = write("tabular", tmp_path)
    storage = f"sqlite:///{tmp_path / 'e.db'}"
    result = search(path, group_col="patient", test_fraction=0.2, study="t2", workers=2,
                    storage=storage, **QUICK)
    assert result.test_size and result.test_size < 600 * 0.3
    assert _best_cv(storage, "t2") < 0.7


@pytest.mark.parametrize("fmt,option,value", [
    ("npz", "label_col", "y"),
    ("npz", "text_col", "x"),
    ("tabular", "text_col", "f0"),
    ("signal", "id_col", "patient"),
])
def test_an_option_the_loader_does_not_support_is_refused(fmt, option, value, tmp_path):
    path = write(fmt, tmp_path)
    with pytest.raises(ConfigError, match=f"loader does not support --{option[:-4]}-col"):
        prepare(SearchPlan(data=DataPlan(path=str(path), format=FORMATS[fmt],
                                         options={option: value}), folds=3))


def test_every_loader_option_is_a_search_flag():
    # A loader's refusal lists the options it supports by flag ("it supports: --group-col,
    # --id-col, --label-col, --sequence-col"): each must be a flag `automed search` takes.
    from automed.cli import search as search_command
    from automed.data.loaders import FLAGS
    from automed.searching.plan import LOADER_OPTIONS

    flags = {opt for p in search_command.params for opt in p.opts}
    assert {FLAGS[o] for o in LOADER_OPTIONS} <= flags


def test_sequence_col_reaches_the_plan_and_the_loader(tmp_path):
    from click.testing import CliRunner

    from automed.cli import cli

    path = tmp_path / "reads.csv"
    path.write_text("id,seq,masked,label\n" + "".join(
        f"r{i},NNNNNNNNNN,{'ACGTTGCA'[i % 4:]}GATTACA,{'ab'[i % 2]}\n" for i in range(12)))
    storage = f"sqlite:///{tmp_path / 's.db'}"
    out = CliRunner().invoke(cli, ["search", str(path), "--sequence-col", "masked",
                                   "--workers", "0", "--folds", "3", "--study", "q",
                                   "--storage", storage])
    assert out.exit_code == 0, out.output
    plan = SearchPlan.from_dict(Store(storage).search("q")["config"]["plan"])
    assert plan.data.options["sequence_col"] == "masked"
    assert prepare(plan).train.x[0] == "ACGTTGCAGATTACA"  # not the seq column's Ns


def test_group_column_is_never_a_feature(tmp_path):
    path = write("tabular", tmp_path)
    p = prepare(SearchPlan(data=DataPlan(path=str(path), options={"group_col": "patient"}),
                           folds=3))
    assert "patient" not in p.train.meta["feature_names"]
    assert p.train.groups is not None and len(set(p.train.groups)) == 60


def test_fasta_refuses_a_group_column(tmp_path):
    fasta = tmp_path / "s.fasta"
    fasta.write_text("".join(f">s{i} {'AB'[i % 2]}\nACGTACGTAC\n" for i in range(12)))
    with pytest.raises(Exception, match="FASTA file has no columns"):
        prepare(SearchPlan(data=DataPlan(path=str(fasta), options={"group_col": "x"}),
                           folds=3))


def test_a_plan_from_a_newer_automed_is_refused():
    raw = SearchPlan(data=DataPlan(path="/x.csv")).to_dict()
    assert SearchPlan.from_dict(raw).to_dict() == raw  # round trip
    with pytest.raises(ConfigError, match="cannot honour"):
        SearchPlan.from_dict({**raw, "version": 99}, "s")
    with pytest.raises(ConfigError, match="does not know"):
        SearchPlan.from_dict({**raw, "new_setting": 1}, "s")


@pytest.mark.parametrize("kwargs,match", [
    (dict(folds=1), "--folds"), (dict(trials=0), "--trials"), (dict(timeout=0), "--timeout"),
    (dict(timeout=float("nan")), "--timeout"), (dict(max_epochs=0), "--max-epochs"),
    (dict(heartbeat=0), "--heartbeat"), (dict(bootstrap=-5), "--bootstrap"),
    (dict(workers=-1), "--workers"), (dict(trials_per_gpu=0), "--trials-per-gpu"),
])
def test_plan_refuses_values_no_search_can_honour(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SearchPlan(data=DataPlan(path="/x.csv"), **kwargs)


def test_worker_refuses_a_plugin_file_it_was_not_given(tmp_path):
    path = write("tabular", tmp_path)
    storage = f"sqlite:///{tmp_path / 'f.db'}"
    search(path, study="p", workers=0, storage=storage, **QUICK)
    store = Store(storage)
    rogue = tmp_path / "rogue.py"
    rogue.write_text("raise SystemExit('imported!')\n")
    rec = store.search("p")
    plan = dict(rec["config"]["plan"])
    plan["plugins"] = [{"source": str(rogue), "sha256": "0" * 64}]
    store.update_search_config(rec["id"], plan=plan)  # someone edits the database
    with pytest.raises(PluginError, match="was not given"):
        objective_from_store(store, "p", "cpu", allowed_plugins=[])


def test_study_names_map_to_distinct_folders_inside_the_artifacts_dir(tmp_path):
    from automed.results.artifact import default_dir

    names = ["..", ".", "p q", "p_q", "p/q", "a" * 100]
    folders = [default_dir("sqlite:///x.db", n, tmp_path) for n in names]
    assert len(set(folders)) == len(names)
    assert all(f.parent == tmp_path.resolve() for f in folders)


def test_a_resume_refused_for_a_data_option_says_it_was_not_given():
    # QA: "read its data with test-fraction=0.25, not None": None is no option anyone gave.
    stored = SearchPlan(data=DataPlan(path="/d/tab.csv", test_fraction=0.25))
    again = SearchPlan(data=DataPlan(path="/d/tab.csv"))
    with pytest.raises(ConfigError, match=r"read its data with test-fraction=0\.25, not no "
                                          r"test-fraction; use the same"):
        again.check_resumable(stored, "tab")
    with pytest.raises(ConfigError, match=r"with no test-fraction, not test-fraction=0\.25"):
        stored.check_resumable(again, "tab")


def test_a_resume_refused_for_data_options_names_each_that_differs():
    # QA: a --test study resumed with --test-fraction instead: "with test='t.csv', not no
    # test", which hid the --test-fraction given.
    stored = SearchPlan(data=DataPlan(path="/d/tab.csv", test="/d/t.csv"))
    again = SearchPlan(data=DataPlan(path="/d/tab.csv", test_fraction=0.25))
    with pytest.raises(ConfigError, match=r"read its data with test='/d/t\.csv' and no "
                                          r"test-fraction, not no test and test-fraction=0\.25;"):
        again.check_resumable(stored, "tab")


def test_a_deterministic_studys_workers_switch_deterministic_kernels_on(tmp_path):
    # QA (reproducibility): only the leader called enable_determinism; the manifest of a
    # --workers 2 --deterministic search said "deterministic" of workers that were not.
    import torch

    path = write("tabular", tmp_path)
    storage = f"sqlite:///{tmp_path / 'det.db'}"
    search(path, group_col="patient", study="det", workers=0, deterministic=True,
           storage=storage, **QUICK)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        objective_from_store(Store(storage), "det", "cpu", allowed_plugins=[])
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
