"""``automed export``: the artifact plus a model card a clinician or reviewer can read."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from automed.errors import ConfigError, DataError, visible
from automed.results.artifact import (
    CONFIG,
    PLUGINS,
    STAMP,
    WEIGHTS,
    LoadedModel,
    saved_answer,
)
from automed.results.describe import metric_labels, scoring_words

# Markdown punctuation that makes data into markup outside a code span: code spans, links
# and images, emphasis, table cells, and backslash escapes themselves.
_MARKDOWN = re.compile(r"([\\`*\[\]|])")


def _md(value: object, *, code: bool = False) -> str:
    """``value`` (a name, a path, a class list: anything from the data, the database or a
    plugin) as inert card text: the one place the card escapes what it inserts (QA: class
    names ``<script>alert(1)</script>``, a backtick in a study name, ``|`` and control
    characters reached MODEL_CARD.md raw, live HTML in GitHub, GitLab and Jupyter).

    Controls are shown as ``\\x1b`` / ``\\u202e``; outside a code span ``< > & "`` become
    HTML entities and Markdown punctuation is backslash-escaped; ``code=True`` wraps the text
    in a code span (literal in CommonMark) whose backtick fence is longer than any run of
    backticks in it."""
    text = visible(str(value))
    if not code:  # a code span is literal in CommonMark: entities there would show as such
        text = (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;"))
        return _MARKDOWN.sub(r"\\\1", text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _origin(c: dict) -> str:
    """Which plugin provided the architecture: what loading the model needs installed."""
    plugin = c.get("plugin")
    if not isinstance(plugin, dict):
        return "automed plugin"
    if plugin.get("distribution"):
        version = f" {_md(plugin['version'])}" if plugin.get("version") else ""
        return (f"plugin {_md(plugin.get('plugin'), code=True)} of the distribution "
                f"{_md(plugin['distribution'], code=True)}{version}: install it to load this "
                "model")
    return f"plugin {_md(plugin.get('source') or plugin.get('plugin'), code=True)}"


def _test_copies(c: dict) -> bool:
    """Whether the search found test samples that copy training samples (QA: the card said
    the test set was "never seen by the search" beside its own LEAKAGE warning)."""
    leak = (c.get("manifest") or {}).get("leakage") or {}
    return bool(leak.get("test_duplicates")
                or (leak.get("test_near_duplicates") or {}).get("leaky"))


def _columns(c: dict) -> list[str]:
    """A table's input columns, as the model reads them (QA: the card said only the encoded
    width, not which columns a new file must carry)."""
    state = (c.get("preprocessor") or {}).get("state") or {}
    data = c.get("data") or {}
    if data.get("text_col"):  # a text file's: what a new file must name its columns
        return ["- input column, found by name in a new file: text "
                f"{_md(data['text_col'], code=True)}"
                + (f"; label {_md(data['label_col'], code=True)}" if data.get("label_col")
                   else "")]
    columns = state.get("columns") if c.get("spec", {}).get("modality") == "tabular" else None
    if not columns:
        return []

    def levels(col: dict) -> str:
        shown = ", ".join(_md(level) for level in col.get("levels", [])[:6])
        more = f", ... {len(col['levels']) - 6} more" if len(col.get("levels", [])) > 6 else ""
        return f"{_md(col['name'], code=True)} ({shown}{more})"

    numeric = [_md(col["name"], code=True) for col in columns if col.get("kind") == "numeric"]
    other = [levels(col) for col in columns if col.get("kind") != "numeric"]
    label = (c.get("data") or {}).get("label") or (c.get("load_options") or {}).get("label_col")
    return ["- input columns, found by name in a new file: "
            + "; ".join(([f"numeric {', '.join(numeric)}"] if numeric else [])
                        + ([f"categorical {', '.join(other)}"] if other else []))
            + (f"; label {_md(label, code=True)}" if label is not None else "")]


def _names(values: Sequence) -> str:
    """Class names as code spans, one each (QA: the escaped repr of the list showed
    ``"quo\\'ted"`` for the class ``"quo'ted"``)."""
    return ", ".join(_md(v, code=True) for v in values)


def _counts(counts: object) -> str:
    if not isinstance(counts, dict):
        return _md(counts)
    return ", ".join(f"{_md(k, code=True)}: {_md(v)}" for k, v in counts.items())


def _averaging_note(c: dict) -> list[str]:
    """On two classes, what a macro (or weighted, micro) recall and specificity are: not the
    positive class's sensitivity and specificity, which a clinician reads them as (QA)."""
    average, classes = c.get("average"), c.get("classes") or []
    if len(classes) != 2 or average in (None, "binary"):
        return []
    return [f"- recall, precision, f1 and specificity are {_md(average)} averages over both "
            "classes (on two classes a macro recall and specificity both equal the balanced "
            "accuracy), not one class's sensitivity and specificity: search with "
            "`--average binary --pos-label CLASS` for those"]


def render_model_card(c: dict, plugins: list[str] | None = None) -> str:
    """Markdown from an artifact's config (see :func:`automed.results.artifact.save_artifact`);
    ``plugins``: the plugin files exported beside it (paths relative to the card)."""
    data, cv, test, man = c.get("data", {}), c.get("cv", {}), c.get("test") or {}, \
        c.get("manifest", {})
    ens = c.get("ensemble")
    refit = c.get("refit", True)  # artifacts written before fold-model answers were refit
    k = cv.get("folds")
    if ens and ens.get("kind") == "folds":
        model = [f"- architecture {_md(c['architecture'], code=True)} ({_origin(c)}), "
                 f"candidate #{_md(c.get('trial'))}",
                 f"- parameters: {_md(c['params'], code=True)}",
                 f"- the mean of the class probabilities of the {len(ens['members'])} models "
                 f"its {_md(k)}-fold cross-validation trained (`fold-0` ...), each on "
                 f"{_md(k - 1)}/{_md(k)} of the training data; not refit (AutoGluon's "
                 "bagging), so its out-of-fold predictions are exactly the ones the search ranked"]
    elif ens:
        what = "refit candidates" if refit else "candidates, each the bag of its fold models"
        model = [f"- a weighted average of the class probabilities of {len(ens['members'])} "
                 f"{what}, chosen by greedy ensemble selection (Caruana et al. 2004, "
                 "with replacement) on their out-of-fold predictions:",
                 *[f"  - {_md(m['folder'], code=True)}: candidate #{_md(m['trial'])}, "
                   f"{_md(m['architecture'], code=True)}, weight {m['weight']:.2f}, "
                   f"parameters {_md(m['params'], code=True)}"
                   for m in ens["members"]],
                 "- the cross-validation score below is measured on the out-of-fold "
                 "predictions the members were selected on (slightly optimistic); the test "
                 "score is the honest one"]
    else:
        bag = c.get("bag", 1)
        model = [f"- architecture {_md(c['architecture'], code=True)} ({_origin(c)}), "
                 f"candidate #{_md(c.get('trial'))}",
                 f"- parameters: {_md(c['params'], code=True)}",
                 *([f"- refit {_md(bag)} times on all training data with different seeds; the "
                    "model answers with the mean of their class probabilities (seed bagging)"]
                   if bag > 1 else [])]
    lines = [
        f"# Model card: {_md(c['architecture'])} from study {_md(c.get('study'), code=True)}",
        "",
        "## Model",
        *model,
        (f"- input: {_md(c['spec']['modality'])}, one string per sample (encoded by the "
         f"model's preprocessing to shape {_md(tuple(c['spec']['input_shape']))}); "
         if c["spec"]["modality"] in ("text", "biosequence") else  # QA: "text of shape"
         f"- input: {_md(c['spec']['modality'])} of shape "
         f"{_md(tuple(c['spec']['input_shape']))}; ")
        + f"output: probabilities of {len(c['classes'])} classes {_names(c['classes'])}",
        *_columns(c),
        f"- files: `{WEIGHTS}` (safetensors weights), `{CONFIG}` (architecture, "
        "preprocessing state, spec)" + (", in each sub-folder" if ens else "")
        + "; no pickle",
        *([f"- plugin file(s) the search was given: "
           f"{', '.join(_md(p, code=True) for p in plugins)}; give them again to load the "
           "model: "
           f"{_md(f'automed predict --model DIR --plugin DIR/{plugins[0]} ...', code=True)}"]
          if plugins else []), "",
        "## Data",
        *([f"- data file: {_md(data.get('source'), code=True)}, {_md(data['file_samples'])} "
           f"samples, fingerprint {_md(data.get('fingerprint'), code=True)}: "
           f"{_md(data.get('samples'))} for the search (training), {_md(test.get('size'))} "
           "held out as the locked test set",
           f"- class counts (training): {_counts(data.get('class_counts'))}", ""]
          if data.get("file_samples") else
          [f"- training data: {_md(data.get('source'), code=True)}, "
           f"{_md(data.get('samples'))} samples, "
           f"fingerprint {_md(data.get('fingerprint'), code=True)}",
           f"- class counts: {_counts(data.get('class_counts'))}", ""]),
        "## Split",
        f"- {_md(cv.get('folds'))}-fold {'grouped ' if cv.get('grouped') else ''}stratified "
        f"cross-validation for model selection (seed {_md(man.get('seeds', {}).get('cv'))})",
        f"- locked test set: {_md(test.get('how', 'none'))}"
        + (f", {_md(test.get('source'), code=True)}, {_md(test.get('size'))} samples, "
           + ("never trained on by the search (though some are copies of training samples: "
              "see Limitations); " if _test_copies(c) else "never seen by the search; ")
           + ("the selected candidate was refit on all training data and scored once"
              if refit else "the answer was scored once, with the models that cross-"
              "validation scored")
           if test else ""),
        "",
        "## Performance",
        f"- cross-validation {_md(c.get('metric'))}"
        f"{_md(scoring_words(c, str(c.get('metric')), list(c.get('classes') or [])))}: "
        f"{_num(cv.get('score_mean'))} ± {_num(cv.get('score_std'))} (mean ± std over folds)",
    ]
    labels = metric_labels(c, list(c.get("classes") or []))
    few = test.get("resampled") == "too few groups"
    if test.get("ci") and not few:
        lines += ["", f"Test set ({_md(test.get('size'))} samples), 95 % percentile bootstrap "
                  f"intervals ({_md(test.get('bootstrap'))} resamples"
                  + (" of whole groups: a patient's samples are drawn together"
                     if test.get("resampled") == "groups" else
                     # QA: grouped CV beside intervals that resampled one patient's rows
                     ", of single samples: samples of one patient count as independent, so "
                     "the interval is too narrow" if cv.get("grouped") else "")
                  + "):", "",
                  "| metric | value | 95 % CI |", "|---|---|---|"]
        lines += [f"| {_md(labels.get(m, m))} | {_num(v['value'])} | {_num(v['low'])} – "
                  f"{_num(v['high'])} |" for m, v in test["ci"].items()]
    elif test.get("scores") or test.get("ci"):
        # --bootstrap 0, or too few patients to resample: the scores stand without
        # intervals, not left out (QA: "intervals (1000 resamples; none drawn" and "- – -")
        why = (f"the test set holds {_md(test.get('groups'))} patients (groups), too few to "
               "resample" if few else "--bootstrap 0")
        values = test.get("scores") or {m: v["value"] for m, v in test["ci"].items()}
        lines += ["", f"Test set ({_md(test.get('size'))} samples), no bootstrap intervals "
                  f"({why}):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_md(labels.get(m, m))} | {_num(v)} |" for m, v in values.items()]
    warnings = c.get("leakage_warnings") or []
    lines += [
        "", "## Intended use",
        "Research and decision support on data like the training data (same modality, "
        "acquisition, population and preprocessing). Not a medical device; not for diagnosis "
        "without a clinician and a local validation.",
        "", "## Limitations",
        "- Scores come from the data above only; performance on other sites, devices or "
        "populations is unknown until measured there.",
        *(["- Small test sets give wide intervals: read the interval, not only the value."]
          if test else
          # QA: a card without a test set still spoke of test intervals
          ["- No locked test set: the only score is the selected candidate's own cross-"
           "validation score, which is optimistic (it was chosen for being the best of the "
           "candidates); measure it on held-out data before use (`automed predict`)."]),
        *_averaging_note(c),
        "- Probabilities are not calibrated unless checked on local data.",
        *[f"- {_md(w)}" for w in warnings],
        "", "## Reproducibility",
        f"- versions: {_md(man.get('versions'))}",
        f"- device: {_md(man.get('device'))}; platform: {_md(man.get('platform'))}; "
        f"deterministic: {_md(man.get('deterministic'))}",
        f"- created: {_md(man.get('created_at'))}", "",
    ]
    return "\n".join(lines)


def _clear_previous_export(out: Path) -> None:
    """An export goes into a new or empty folder, or replaces an earlier export there (its
    weights, config, stamp, card and member folders), so no stale model is left beside the
    new one; a folder with anything else in it is refused."""
    import json

    if not out.is_dir() or not any(out.iterdir()):
        return
    old = out / CONFIG
    try:
        members = (json.loads(old.read_text(encoding="utf-8")).get("ensemble") or {}).get(
            "members", [])
        folders = {str(m["folder"]) for m in members}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        folders = None
    ours = {WEIGHTS, CONFIG, STAMP, "MODEL_CARD.md", PLUGINS}
    if folders is None or any(p.name not in ours | folders for p in out.iterdir()):
        raise ConfigError(f"-o {out} is a folder with other files in it; give a new or empty "
                          "folder (or one an earlier export wrote)")
    for p in out.iterdir():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def export_model(store, study: str, out: str | Path, plugins: Sequence[str] = ()) -> Path:
    """Copy ``study``'s saved answer to ``out`` and write ``MODEL_CARD.md`` beside it."""
    info = store.search(study)
    source = saved_answer(store, info)  # the study's own, wherever the project now lies
    if not (source / CONFIG).is_file():
        raise DataError(f"{source}: the model of study {study!r} is missing; re-run the search")
    model = LoadedModel(source)  # proves the artifact loads before anything is written
    out = Path(out)
    if out.resolve() != source.resolve():
        _clear_previous_export(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, CONFIG, STAMP):  # the stamp: which study's answer it is
        if (source / name).is_file() and (out / name).resolve() != (source / name).resolve():
            shutil.copy2(source / name, out / name)
    for member in (model.config.get("ensemble") or {}).get("members", []):
        src, dst = source / member["folder"], out / member["folder"]
        if dst.resolve() != src.resolve():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
    copied = _copy_plugin_files(info, out, plugins, needed=_needs_plugin_file(model))
    card = {**model.config, "preprocessor": model.reading_config().get("preprocessor")}
    (out / "MODEL_CARD.md").write_text(render_model_card(card, plugins=copied),
                                       encoding="utf-8")
    return out


def _architectures(model: LoadedModel) -> set[str]:
    """The architectures ``model`` is built of: its own, or those of its members (an
    ensemble's candidates, a bag's fold models, however nested)."""
    if model.members:
        return set().union(*(_architectures(member) for _, member in model.members))
    return {str(model.config.get("architecture"))}


def _needs_plugin_file(model: LoadedModel) -> bool:
    """Whether loading ``model`` or reading its data needs a plugin file or module: its data
    was read by a plugin's loader, or one of its architectures is
    provided (in this process, where it loaded) by a plugin that is neither built in (the
    optional built-ins, ``hf``, included) nor an installed distribution, which the card names
    for ``pip install`` instead."""
    from automed.plugin_manager import OPTIONAL_PLUGINS, get_plugin_manager

    pm = get_plugin_manager()
    read_by = model.reading_config().get("loader_plugin")
    if isinstance(read_by, dict) and not read_by.get("distribution") \
            and read_by.get("source") not in OPTIONAL_PLUGINS.values():
        return True  # new data goes through the plugin's loader (QA: not exported)
    for name in _architectures(model):
        provider = pm.provider(name)  # None for a built-in
        if (provider is not None and not provider.get("distribution")
                and provider.get("source") not in OPTIONAL_PLUGINS.values()):
            return True
    return False


def _copy_plugin_files(info: dict, out: Path, given: Sequence[str] = (), *,
                       needed: bool = True) -> list[str]:
    """The plugin files the study was searched with (``search --plugin FILE.py``), copied to
    ``out/plugins/``: an exported model whose architecture one of them provides travels with
    it. A copy is the searched file byte for byte (its recorded sha256): the file given to
    ``export --plugin``, else the one at the searched path; a plugin whose file is gone or
    edited is left out with a warning. Copies are never imported unasked: predict names them,
    and ``--plugin`` loads them. Returns their paths relative to ``out``.

    Only ``.py`` files are copied, and only where the model ``needed`` a plugin file (see
    :func:`_needs_plugin_file`); else nothing is, and nothing is said (QA: a database edited
    to name ``/any/path/evil.py`` in the plan of a study of a built-in architecture made
    export bundle that file with instructions to load it)."""
    import warnings

    from automed.searching.plan import plugin_ref

    folder = out / PLUGINS
    shutil.rmtree(folder, ignore_errors=True)
    if not needed:
        return []
    plan = (info.get("config") or {}).get("plan") or {}
    refs = [r for r in plan.get("plugins") or [] if isinstance(r, dict) and r.get("sha256")
            and Path(str(r.get("source"))).suffix == ".py"]
    files = [Path(g) for g in given if str(g).endswith(".py")]
    copied = []
    for ref in refs:
        searched = Path(str(ref["source"]))
        match = next((f for f in [*files, searched]
                      if f.is_file() and plugin_ref(f)["sha256"] == ref["sha256"]), None)
        if match is None:
            warnings.warn(f"plugin file {searched} is not as the search had it (missing or "
                          "edited) and is not copied into the export; give the searched file "
                          f"with --plugin to copy it (sha256 {ref['sha256'][:12]}...)",
                          stacklevel=2)
            continue
        folder.mkdir(exist_ok=True)
        shutil.copy2(match, folder / searched.name)
        copied.append(f"{PLUGINS}/{searched.name}")
    return copied
