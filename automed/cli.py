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
        if self.quiet:
            return
        kind = e["event"]
        if kind == "start":
            self.total, self.n = e["trials"], e["done"]
            verb = "resuming" if e["resumed"] else "searching"
            click.echo(f"{verb} study {e['study']!r} in {e['storage']}", err=True)
            click.echo(f"  data: {e['dataset']}", err=True)
            click.echo(f"  {e['folds']}-fold CV by {e['metric']}; architectures: "
                       f"{', '.join(e['architectures'])}; device: {e['device']}"
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
    automed leaderboard          rank the stored candidates of a search
    automed plugins              list the architecture plugins and loaders
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
@click.option("--timeout", type=float, help="Stop starting new candidates after this many "
              "seconds.")
@click.option("--storage", help=STORAGE_HELP)
@click.option("--study", help="Study name (default: <data>-<metric>-cv<folds>). The same name "
              "and settings resume a search.")
@click.option("--arch", "architectures", multiple=True, help="Restrict to these architectures "
              "(repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed for CV splits, the sampler "
              "and model initialisation.")
@click.option("--format", "format_", help="Force a loader (see `automed plugins`).")
@click.option("--modality", help="Force the modality: image, signal, text, biosequence, "
              "tabular.")
@click.option("--label-col", help="Label column (name or index) for table formats.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--no-prune", is_flag=True, help="Run every fold of every candidate.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def search(data, test, metric, average, pos_label, folds, trials, timeout, storage, study,
           architectures, seed, format_, modality, label_col, device, no_prune, as_json,
           quiet) -> None:
    """Search architectures and hyperparameters for DATA; print the leaderboard.

    DATA is a .npz (MedMNIST layout or x/y), a folder of class sub-folders of images, or a
    signal table (.txt/.tsv/.csv, UCR style: label first).
    """
    from automed.leaderboard import format_table, format_test_scores
    from automed.search import search as run_search

    label = int(label_col) if label_col is not None and label_col.isdigit() else label_col
    result = run_search(
        data, test=test, metric=metric, average=average, pos_label=pos_label, folds=folds,
        trials=trials, timeout=timeout, storage=storage, study=study,
        architectures=list(architectures) or None, seed=seed, format=format_,
        modality=modality, label_col=label, device=device, prune=not no_prune,
        progress=_Progress(quiet or as_json))
    if as_json:
        click.echo(json.dumps({"study": result.study, "storage": result.storage,
                               "best": result.best, "test_scores": result.test_scores,
                               "test_size": result.test_size,
                               "leaderboard": result.leaderboard}, indent=2, default=str))
        return
    click.echo(f"\nleaderboard of {result.study!r} (top 10):")
    click.echo(format_table(result.leaderboard[:10]))
    if result.test_scores:
        click.echo(f"\nbest: #{result.best['trial']} {result.best['architecture']}; "
                   + format_test_scores(result.test_scores, result.test_size))


@cli.command()
@click.option("--study", help="Study to rank (default: the most recent one).")
@click.option("--top", type=int, help="Show only the best N.")
@click.option("--all", "show_all", is_flag=True, help="Include pruned and failed candidates "
              "with their errors.")
@click.option("--per-family", is_flag=True, help="Show each architecture family's best "
              "candidate and how far it trails the winner.")
@click.option("--storage", help=STORAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def leaderboard(study, top, show_all, per_family, storage, as_json) -> None:
    """Rank the stored candidates of a search by their mean CV score."""
    from automed.leaderboard import format_table, format_test_scores, to_json
    from automed.storage import Store

    store = Store(storage)
    if study is None:
        studies = store.studies()
        if not studies:
            raise AutomedError(f"no searches in {store.redacted} yet; run `automed search "
                               "DATA` first")
        study = studies[-1]["study"]
    states = ("complete", "pruned", "failed") if show_all else ("complete",)
    rows = store.leaderboard(study, top=top, states=states, best_per_family=per_family)
    if as_json:
        click.echo(to_json(rows))
        return
    info = store.search(study)
    click.echo(f"study {study!r} ({info['dataset']}, {info['modality']}, "
               f"{info['config'].get('folds')}-fold CV by {info['metric']}, {info['status']})")
    click.echo(format_table(rows, show_state=show_all))
    if info["test_scores"]:
        click.echo(f"\nrefit best #{info['best_trial']}: "
                   + format_test_scores(info["test_scores"], info["test_size"]))


@cli.group(invoke_without_command=True)
@click.pass_context
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(ctx, show_all, as_json) -> None:
    """List installed plugins, their hooks, architectures and loaders."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from automed.plugin_manager import get_plugin_manager

    pm = get_plugin_manager()
    archs, loaders = pm.architectures(), pm.loaders()
    infos = [p for p in pm.plugins.values() if show_all or not p.builtin]
    if as_json:
        out = []
        for p in infos:
            d = asdict(p)
            d["architectures"] = [{"name": a, "modalities": sorted(archs[a].modalities)}
                                  for a in p.architectures if a in archs]
            out.append(d)
        click.echo(json.dumps(out, indent=2))
        return
    if not infos:
        click.echo("no third-party plugins installed (use --all to see the built-ins)")
    for p in infos:
        tag = " (built-in)" if p.builtin else ""
        version = f" {p.version}" if p.version else ""
        click.echo(f"{p.name}{version}{tag}: {p.module}")
        if p.broken:
            click.echo(f"  BROKEN: {p.error}")
            continue
        click.echo(f"  hooks: {', '.join(p.hooks)}")
        for a in p.architectures:
            click.echo(f"  architecture {a}: {', '.join(sorted(archs[a].modalities))}")
        for lo in p.loaders:
            click.echo(f"  loader {lo}: {loaders[lo].description}")


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
