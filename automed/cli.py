"""The command line: parse, call the Python API, print. No logic lives here."""

from __future__ import annotations

import json
import sys

import click

from automed.errors import AutomedError
from automed.metrics import ALIASES, AVERAGES, METRICS

STORAGE_HELP = "Database URL (default: $AUTOMED_STORAGE, else sqlite:///automed.db)."


class _Progress:
    """One line per candidate, so long searches show where they are."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.best: float | None = None
        self.n = 0
        self.total: int | None = None

    def __call__(self, e: dict) -> None:
        kind = e["event"]
        if kind == "warning":  # leakage: loud even with --quiet or --json
            click.secho(f"WARNING: {e['message']}", err=True, fg="red", bold=True)
            return
        if self.quiet:
            return
        if kind == "start":
            self.total, self.n = e["trials"], e["done"]
            verb = "resuming" if e["resumed"] else "searching"
            click.echo(f"{verb} study {e['study']!r} in {e['storage']}", err=True)
            click.echo(f"  data: {e['dataset']}", err=True)
            click.echo(f"  {e['folds']}-fold CV by {e['metric']}; architectures: "
                       f"{', '.join(e['architectures'])}; device: {e['device']}"
                       + (f" ({e['workers']} workers)" if e.get("workers", 1) > 1 else "")
                       + (f"; {e['done']} candidate(s) already done" if e["done"] else ""),
                       err=True)
        elif kind == "candidate":
            self.n += 1
            total = f"/{self.total}" if self.total else ""
            mean = e["score_mean"]
            if e["state"] == "complete" and (self.best is None or mean > self.best):
                self.best = mean
            score = "-" if mean is None else f"{mean:.4f} ± {e['score_std']:.4f}"
            what = {"complete": "", "pruned": f"pruned after fold {e['folds_done']}",
                    "failed": f"FAILED: {e['error']}"}[e["state"]]
            best = "-" if self.best is None else f"{self.best:.4f}"
            click.echo(f"[{self.n:>3}{total}] #{e['trial']:<3} {e['architecture']:<12} {score:<17}"
                       f" {e['duration_s']:6.1f}s  best {best}  {what}".rstrip(), err=True)
        elif kind == "refit":
            target = "and scoring it on the test set" if e["test"] else "(no test set given)"
            click.echo(f"refitting #{e['trial']} ({e['architecture']}) on all training data "
                       f"{target}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="automed")
def cli() -> None:
    """automed: find the best deep-learning model for a labeled medical dataset.

    \b
    automed search DATA          search architectures and hyperparameters, print a leaderboard
    automed leaderboard          rank the stored candidates of a search (or across searches)
    automed studies              list the searches in the database
    automed show STUDY [N]       one study, or one candidate: params, folds, timing, errors
    automed report STUDY -o F    a self-contained HTML report with plots
    automed worker --study S     join a search from this machine (PostgreSQL for many nodes)
    automed predict DATA         class probabilities from a search's refit model
    automed export -o DIR        the refit model and its model card
    automed db upgrade           migrate the database after upgrading automed
    automed plugins [list]       list the architecture plugins and loaders
    automed plugins check NAME   run the conformance suite on a plugin (name, file, module)
    automed demo                 write a small generated dataset to try automed on
    """


@cli.command()
@click.argument("data", type=click.Path())
@click.option("--test", "test", type=click.Path(), help="A locked test file, scored once by the "
              "refit best (a .npz with test_* keys brings its own).")
@click.option("--metric", default="accuracy", show_default=True,
              help=f"Objective: {', '.join(METRICS)} (aliases {', '.join(ALIASES)}).")
@click.option("--average", type=click.Choice(AVERAGES), default="macro", show_default=True,
              help="Averaging for recall/precision/f1/specificity; binary scores --pos-label.")
@click.option("--pos-label", help="Positive class for --average binary (default: the second "
              "class).")
@click.option("--folds", default=5, show_default=True, help="Stratified CV folds.")
@click.option("--trials", type=int, help="Candidates to evaluate in total (default 20 when no "
              "--timeout).")
@click.option("--timeout", type=float, help="Search time limit in seconds: candidates still "
              "training then are stopped, except the first (a search always returns a model).")
@click.option("--storage", help=STORAGE_HELP)
@click.option("--study", help="Study name (default: <data>-<metric>-cv<folds>). The same name "
              "and settings resume a search.")
@click.option("--arch", "architectures", multiple=True, help="Restrict to these architectures "
              "(repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed for CV splits, the sampler "
              "and model initialisation.")
@click.option("--plugin", "plugin_sources", multiple=True, help="Also load this plugin: a .py "
              "file or a module name (repeatable; or $AUTOMED_PLUGINS_PATH).")
@click.option("--format", "format_", help="Force a loader (see `automed plugins`).")
@click.option("--modality", help="Force the modality: image, signal, text, biosequence, "
              "tabular.")
@click.option("--label-col", help="Label column (name or index) for table formats.")
@click.option("--text-col", "text_cols", multiple=True, help="Text field(s) of .jsonl/.csv "
              "text; repeat to join fields in order (--text-col title --text-col abstract).")
@click.option("--id-col", help="Record id field of text data: ids must be unique.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N "
              "(one worker).")
@click.option("--gpus", help="GPUs to use: all, none, or indices like 0,2 (default: all "
              "visible).")
@click.option("--trials-per-gpu", default=1, show_default=True, help="Worker processes sharing "
              "each GPU.")
@click.option("--workers", type=int, help="CPU worker processes (CPU cores are divided); 0 only "
              "creates the study for `automed worker` processes to join.")
@click.option("--heartbeat", default=10.0, show_default=True, help="Seconds between a running "
              "candidate's heartbeats; a silent worker's candidate is retried.")
@click.option("--no-prune", is_flag=True, help="Run every fold of every candidate.")
@click.option("--max-epochs", type=int, help="Cap every candidate's training epochs (quick runs).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--group-col", help="Patient/study id column (tables) or npz key: grouped CV and "
              "test split.")
@click.option("--groups", "groups_file", type=click.Path(), help="Text file with one group id "
              "per training sample, in loading order.")
@click.option("--test-fraction", type=float, help="Hold out this stratified (and grouped) "
              "fraction as the locked test set before the search.")
@click.option("--artifacts", type=click.Path(), help="Folder for the refit model (default: "
              "automed_models/ beside the SQLite file).")
@click.option("--bootstrap", default=1000, show_default=True, help="Resamples for the test "
              "set's 95% intervals (0: none).")
@click.option("--deterministic", is_flag=True, help="Deterministic kernels (with --seed and "
              "one worker the same search gives the same leaderboard).")
def search(data, test, metric, average, pos_label, folds, trials, timeout, storage, study,
           architectures, seed, plugin_sources, format_, modality, label_col, device, gpus,
           trials_per_gpu, workers, heartbeat, no_prune, max_epochs, as_json, quiet, group_col,
           groups_file, test_fraction, artifacts, bootstrap, deterministic, text_cols,
           id_col) -> None:
    """Search architectures and hyperparameters for DATA; print the leaderboard.

    DATA is a .npz (MedMNIST layout or x/y), a folder of class sub-folders of images, or a
    signal table (.txt/.tsv/.csv, UCR style: label first).
    """
    from automed.leaderboard import format_table, format_test_ci, format_test_scores
    from automed.searcher import search as run_search

    label = int(label_col) if label_col is not None and label_col.isdigit() else label_col
    result = run_search(
        data, test=test, metric=metric, average=average, pos_label=pos_label, folds=folds,
        trials=trials, timeout=timeout, storage=storage, study=study,
        architectures=list(architectures) or None, seed=seed, format=format_,
        modality=modality, label_col=label, device=device, prune=not no_prune,
        max_epochs=max_epochs, gpus=gpus, trials_per_gpu=trials_per_gpu, workers=workers,
        heartbeat=heartbeat, progress=_Progress(quiet or as_json), plugins=list(plugin_sources),
        group_col=group_col, groups=groups_file, test_fraction=test_fraction,
        artifacts=artifacts, bootstrap=bootstrap, deterministic=deterministic,
        text_col=list(text_cols) or None, id_col=id_col)
    if workers == 0:
        click.echo(f"created study {result.study!r}; join it with: automed worker --study "
                   f"{result.study} --storage {result.storage}")
        return
    if as_json:
        click.echo(json.dumps({"study": result.study, "storage": result.storage,
                               "best": result.best, "test_scores": result.test_scores,
                               "test_size": result.test_size, "test_ci": result.test_ci,
                               "artifact": result.artifact, "manifest": result.manifest,
                               "warnings": result.warnings,
                               "leaderboard": result.leaderboard}, indent=2, default=str))
        return
    click.echo(f"\nleaderboard of {result.study!r} (top 10):")
    click.echo(format_table(result.leaderboard[:10]))
    if result.test_scores:
        click.echo(f"\nbest: #{result.best['trial']} {result.best['architecture']}; "
                   + format_test_scores(result.test_scores, result.test_size))
    if result.test_ci:
        click.echo(format_test_ci(result.test_ci))
    if result.artifact:
        click.echo(f"model saved to {result.artifact} (automed predict/export --study "
                   f"{result.study})")


@cli.command()
@click.option("--study", required=True, help="The study to join (see `automed leaderboard`).")
@click.option("--storage", help=STORAGE_HELP)
@click.option("--gpus", help="GPUs to use: all, none, or indices like 0,2.")
@click.option("--trials-per-gpu", default=1, show_default=True)
@click.option("--workers", type=int, help="CPU worker processes on this machine.")
@click.option("--device", default="auto", show_default=True)
@click.option("--timeout", type=float, help="Stop starting new candidates after this many "
              "seconds.")
@click.option("--heartbeat", default=10.0, show_default=True)
@click.option("-q", "--quiet", is_flag=True)
def worker(study, storage, gpus, trials_per_gpu, workers, device, timeout, heartbeat,
           quiet) -> None:
    """Join an existing search from this machine; stop when its trial budget is used.

    The data must be readable at the path the search was started with. Run one per node
    against the same PostgreSQL URL to spread a search over machines.
    """
    from automed.devices import plan_slots
    from automed.storage import Store
    from automed.workers import run_local_workers, worker_main

    store = Store(storage)
    info = store.search(study)
    slots = plan_slots(gpus, trials_per_gpu, workers, device)
    progress = _Progress(quiet)
    progress({"event": "start", "study": study, "storage": store.redacted,
              "dataset": info["dataset"], "architectures": info["config"]["architectures"],
              "folds": info["config"]["folds"], "metric": info["metric"],
              "trials": info["config"].get("trials"), "done": 0, "resumed": True,
              "device": ", ".join(sorted({s.device for s in slots})), "workers": len(slots)})
    if len(slots) == 1:
        worker_main(store.url, study, slots[0], timeout=timeout, heartbeat=heartbeat)
        rows = store.candidates(study)
        click.echo(f"worker done: the study has {len(rows)} candidate(s)", err=True)
    else:
        run_local_workers(store, study, slots, timeout=timeout, heartbeat=heartbeat,
                          progress=progress)


@cli.command()
@click.option("--study", "studies", multiple=True, help="Study to rank (repeatable; default: "
              "the most recent one).")
@click.option("--all-studies", is_flag=True, help="Rank across every study in the database.")
@click.option("--dataset", "datasets", multiple=True, help="Only searches on this dataset "
              "(name or fingerprint; repeatable; implies all studies).")
@click.option("--arch", "architectures", multiple=True, help="Only this architecture family "
              "(repeatable).")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["complete", "pruned", "failed", "interrupted"]),
              help="Candidate states to include (repeatable; default complete).")
@click.option("--metric", "metrics", multiple=True, help="Only searches optimising this "
              "metric (repeatable; implies all studies).")
@click.option("--sort", help="Rank by a stored metric (e.g. auroc, f1) or duration instead of "
              "each search's objective.")
@click.option("--top", type=int, help="Show only the best N.")
@click.option("--per-family", is_flag=True, help="Keep the best candidate of each family.")
@click.option("--all", "show_all", is_flag=True, help="Include pruned and failed candidates "
              "with their errors.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--storage", help=STORAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def leaderboard(studies, all_studies, datasets, architectures, states, metrics, sort, top,
                per_family, show_all, fmt, storage, as_json) -> None:
    """Rank stored candidates by their mean CV score, in one study or across studies."""
    from automed.leaderboard import format_manifest, format_test_ci, format_test_scores, render
    from automed.metrics import resolve_metric
    from automed.storage import Store
    from automed.storage.ranking import STATES, sort_key

    store = Store(storage)
    fmt = "json" if as_json else fmt
    if not studies and not (all_studies or datasets or metrics):
        known = store.studies()
        if not known:
            raise AutomedError(f"no searches in {store.redacted} yet; run `automed search "
                               "DATA` first")
        studies = (known[-1]["study"],)
    states = states or (STATES if show_all else ("complete",))
    key = sort_key(sort)[0] if sort else None
    rows = store.leaderboard(list(studies) or None, top=top, states=states,
                             dataset=list(datasets) or None,
                             architecture=list(architectures) or None,
                             metric=[resolve_metric(m) for m in metrics] or None,
                             sort=sort, best_per_family=per_family)
    if fmt != "table":
        click.echo(render(rows, fmt))
        return
    if len(studies) == 1:
        info = store.search(studies[0])
        click.echo(f"study {studies[0]!r} ({info['dataset']}, {info['modality']}, "
                   f"{info['config'].get('folds')}-fold CV by {info['metric']}, "
                   f"{info['status']})")
    else:
        click.echo(f"{len(rows)} candidate(s) from {len({r['study'] for r in rows})} study(ies)")
    click.echo(render(rows, "table", show_state=show_all or set(states) != {"complete"},
                      sort=key))
    if len(studies) != 1:
        return
    if info["test_scores"]:
        click.echo(f"\nrefit best #{info['best_trial']}: "
                   + format_test_scores(info["test_scores"], info["test_size"]))
    config = info["config"] or {}
    if config.get("test_ci"):
        click.echo(format_test_ci(config["test_ci"]))
    for warning in config.get("leakage_warnings") or []:
        click.secho(f"WARNING: {warning}", err=True, fg="red", bold=True)
    if config.get("manifest"):
        click.echo(format_manifest(config["manifest"]))


@cli.command()
@click.option("--storage", help=STORAGE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def studies(storage, fmt) -> None:
    """List the searches in the database, oldest first."""
    from automed.leaderboard import format_studies
    from automed.storage import Store

    rows = Store(storage).studies()
    click.echo(json.dumps(rows, indent=2, default=str) if fmt == "json"
               else format_studies(rows))


@cli.command()
@click.argument("study")
@click.argument("candidate", type=int, required=False)
@click.option("--storage", help=STORAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(study, candidate, storage, as_json) -> None:
    """Show a study (settings, counts, families, test scores) or one CANDIDATE (trial number):
    params, per-fold scores, timing, device and error."""
    from automed.describe import format_candidate, format_study, study_summary
    from automed.storage import Store

    store = Store(storage)
    if candidate is None:
        out = study_summary(store.search(study), store.candidates(study))
        click.echo(json.dumps(out, indent=2, default=str) if as_json else format_study(out))
    else:
        row = store.candidate(study, candidate)
        click.echo(json.dumps(row, indent=2, default=str) if as_json
                   else format_candidate(row))


@cli.command()
@click.argument("study")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The HTML file to write.")
@click.option("--top", default=20, show_default=True, help="Leaderboard rows in the report.")
@click.option("--storage", help=STORAGE_HELP)
def report(study, output, top, storage) -> None:
    """Write one self-contained HTML page about STUDY: leaderboard, history, importances,
    families, and the refit best's confusion matrix, ROC and precision-recall curves."""
    from automed.report import write_report
    from automed.storage import Store

    path = write_report(Store(storage), study, output, top=top)
    click.echo(str(path))


@cli.group()
def db() -> None:
    """The study database's schema: `automed db upgrade` after upgrading automed."""


@db.command("upgrade")
@click.option("--storage", help=STORAGE_HELP)
def db_upgrade(storage) -> None:
    """Migrate automed's tables to this version's schema (Optuna's are left alone)."""
    from automed.storage import redact_url, resolve_url, upgrade_database

    before, after = upgrade_database(storage)
    where = redact_url(resolve_url(storage))
    click.echo(f"{where}: automed schema {before or 'empty'} -> {after}" if before != after
               else f"{where}: automed schema already at {after}")


@db.command("current")
@click.option("--storage", help=STORAGE_HELP)
def db_current(storage) -> None:
    """Print the schema revision of automed's tables and the one this automed needs."""
    from automed.storage import redact_url, resolve_url, schema_revision

    current, head = schema_revision(storage)
    state = "up to date" if current == head else \
        "empty" if current is None else "behind: run `automed db upgrade`"
    click.echo(f"{redact_url(resolve_url(storage))}: automed schema {current or '-'}, "
               f"this automed needs {head} ({state})")


def _artifact_of(store, study: str | None) -> str:
    if study is None:
        studies = store.studies()
        if not studies:
            raise AutomedError(f"no searches in {store.redacted} yet; run `automed search "
                               "DATA` first")
        study = studies[-1]["study"]
    path = (store.search(study)["config"] or {}).get("artifact")
    if not path:
        raise AutomedError(f"study {study!r} has no saved model; let the search finish "
                           "(it refits and saves the best)")
    return path


@cli.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("--study", help="Study whose refit model predicts (default: the most recent).")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False),
              help="An exported model folder instead of --study.")
@click.option("-o", "--output", type=click.Path(), help="CSV to write (default: stdout).")
@click.option("--split", type=click.Choice(["all", "train", "test"]), default="all",
              show_default=True, help="Which part of DATA to predict.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--storage", help=STORAGE_HELP)
def predict(data, study, model_dir, output, split, device, storage) -> None:
    """Write per-sample class probabilities for DATA (one CSV row per sample)."""
    from automed.predict import predict_file

    if model_dir is None:
        from automed.storage import Store

        model_dir = _artifact_of(Store(storage, create=False), study)
    rows = predict_file(model_dir, data, output, split=split, device=device)
    if output:
        click.echo(f"{rows} predictions written to {output}", err=True)


@cli.command()
@click.option("--study", help="Study to export (default: the most recent).")
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True,
              help="Folder for the weights, config and MODEL_CARD.md.")
@click.option("--storage", help=STORAGE_HELP)
def export(study, output, storage) -> None:
    """Write the refit model (safetensors + JSON) and a model card to a folder."""
    from automed.model_card import export_model
    from automed.storage import Store

    store = Store(storage, create=False)
    if study is None:
        studies = store.studies()
        if not studies:
            raise AutomedError(f"no searches in {store.redacted} yet")
        study = studies[-1]["study"]
    click.echo(str(export_model(store, study, output)))


@cli.group(invoke_without_command=True)
@click.pass_context
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(ctx, show_all, as_json) -> None:
    """List plugins (the default), or check one against the architecture contract."""
    if ctx.invoked_subcommand is None:
        _list_plugins(show_all, as_json)


@plugins.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_list(show_all, as_json) -> None:
    """List plugins: name, version, hooks, architectures (with modalities) and loaders."""
    _list_plugins(show_all, as_json)


def _list_plugins(show_all: bool, as_json: bool) -> None:
    from automed.plugin_manager import get_plugin_manager

    infos = get_plugin_manager().describe(include_builtin=show_all)
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    if not infos:
        click.echo("no third-party plugins installed (use --all to see the built-ins)")
    for p in infos:
        tag = " (built-in)" if p["builtin"] else ""
        version = f" {p['version']}" if p["version"] else ""
        click.echo(f"{p['name']}{version}{tag}: {p['module']}")
        if p["error"]:
            click.echo(f"  BROKEN: {p['error']}")
            continue
        click.echo(f"  hooks: {', '.join(p['hooks'])}")
        for a in p["architectures"]:
            click.echo(f"  architecture {a['name']}: {', '.join(a['modalities'])}")
        for lo in p["loaders"]:
            click.echo(f"  loader {lo['name']}: {lo['description']}")


@plugins.command("check")
@click.argument("target")
@click.option("--samples", default=3, show_default=True, help="Parameter sets drawn from each "
              "search space (plus the defaults).")
def plugins_check(target, samples) -> None:
    """Run the conformance suite on TARGET's architectures; non-zero exit on any failure.

    TARGET is a plugin name, an architecture name, a .py file or an importable module.
    """
    from automed.errors import PluginError
    from automed.testing import check_plugin

    results = check_plugin(target, n_samples=samples)
    for name, failures in results.items():
        click.echo(f"{'FAIL' if failures else 'ok  '}  {name}")
        for failure in failures:
            click.echo(f"      {failure.modality} {failure.check}: {failure.message}")
    failed = sum(len(f) for f in results.values())
    if failed:
        raise PluginError(f"{target}: {failed} conformance check(s) failed; fix them, then run "
                          f"`automed plugins check {target}` again")


@cli.command()
@click.option("--kind", type=click.Choice(["image", "signal"]), default="image",
              show_default=True)
@click.option("-o", "--output", type=click.Path(), help="Where to write the .npz.")
@click.option("-n", "--samples", default=600, show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo(kind, output, samples, seed) -> None:
    """Write a small generated medical-style dataset (MedMNIST .npz layout)."""
    from automed.demo import make_demo

    path = make_demo(kind, output, n=samples, seed=seed)
    click.echo(str(path))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except AutomedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; run the same command again to resume the search", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
