"""The command line: parse, call the Python API, print. No logic lives here.

Why one module of ~620 lines: it is every command's options and help text, which click wants
declared next to each other; each command body only calls one function of the API and prints
its answer. Heavy imports happen inside the commands, so ``automed --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

import click

from automed.errors import AutomedError, ConfigError, DataWarning, PluginWarning, visible
from automed.evaluation.names import ALIASES, AVERAGES, METRIC_NAMES
from automed.results.outputs import BIG_FILE, output_dir, output_file, sqlite_file
from automed.searching.plan import DEFAULT_BAG

STORAGE_HELP = "Database URL (default: $AUTOMED_STORAGE, else sqlite:///automed.db)."
RESULTS_HELP = ("With --storage grpc://HOST:PORT (an `automed proxy`): write automed's own "
                "tables to this database URL directly instead of through the proxy (default: "
                "$AUTOMED_RESULTS_DB).")


def _say_queued_retries(store, study: str) -> None:
    """Candidates an interruption or a lost worker queued again (QA: `leaderboard --all`
    listed the interrupted candidate but not that it runs again)."""
    import optuna

    from automed.searching.study import _retried, waiting_retries

    try:
        ostudy = optuna.load_study(study_name=study, storage=store.optuna_storage())
    except (KeyError, AutomedError):
        return
    queued = sorted(n for n in map(_retried, waiting_retries(ostudy)) if n is not None)
    if queued:
        click.echo(f"queued: {', '.join(f'#{t}' for t in queued)} again, when the search "
                   "resumes (the same command) or a worker joins")


def _gpus_all_on_cpu(gpus: str | None) -> None:
    """--gpus all on a machine without a GPU trains on the CPU: said, never silent."""
    if gpus == "all":
        from automed.searching.devices import visible_gpus

        if not visible_gpus():
            click.echo("--gpus all: no GPU is visible; training on the CPU", err=True)


class _Progress:
    """One line per candidate, so long searches show where they are."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.best: float | None = None
        self.n = 0
        self.total: int | None = None

    def __call__(self, e: dict) -> None:
        try:
            self._show(e)
        except BrokenPipeError:
            # QA: `automed search ... 2>&1 | head` failed the study at the first line after
            # the reader left (BrokenPipeError); the search goes on, unprinted.
            _silence(sys.stderr)
            self.quiet = True

    def _show(self, e: dict) -> None:
        kind = e["event"]
        if kind == "warning":  # leakage: loud even with --quiet or --json
            click.secho(f"WARNING: {e['message']}", err=True, fg="red", bold=True)
            return
        if self.quiet:
            return
        if kind == "start":
            self.total, self.n = e["trials"], e["done"]
            self.best = e.get("best")  # a resumed study's best candidate so far
            verb = "resuming" if e["resumed"] else "searching"
            click.echo(f"{verb} study {e['study']!r} in {e['storage']}", err=True)
            read = e.get("read_s") or 0
            click.echo(f"  data: {e['dataset']}"
                       + (f"; {e['reason']}" if e.get("reason") else "")
                       + (f" (read and checked in {read:.0f} s)" if read >= 10 else ""),
                       err=True)
            click.echo(f"  {e.get('objective') or str(e['folds']) + '-fold CV by ' + e['metric']}"
                       "; architectures: "
                       f"{', '.join(e['architectures'])}; device: {e['device']}"
                       + (f" ({e['workers']} workers)" if e.get("workers", 1) > 1 else "")
                       + (f"; {e['done']} candidate(s) already done" if e["done"] else ""),
                       err=True)
        elif kind == "candidate":
            # Only candidates that use budget count (an interrupted or lost one is retried),
            # and the count never reads past the budget (extra workers may finish one more).
            # An uncounted line shows "-" (QA: it repeated the previous candidate's number).
            error = e.get("error") or ""
            counted = e["state"] in ("complete", "pruned", "collapsed", "failed") and \
                not error.startswith("WorkerLost")
            self.n += counted
            total = f"/{self.total}" if self.total and self.n <= self.total else ""
            number = self.n if counted else "-"
            mean = e["score_mean"]
            if e["state"] == "complete" and (self.best is None or mean > self.best):
                self.best = mean
            # one fold has no spread: "± -" as the leaderboard says it (QA: "± 0.0000")
            spread = f"{e['score_std']:.4f}" if e.get("folds_done", 2) > 1 else "-"
            score = "-" if mean is None else f"{mean:.4f} ± {spread}"
            what = {"complete": "", "failed": f"FAILED: {e['error']}",
                    "interrupted": "interrupted (a resume runs it again)"}.get(e["state"])
            if what is None:  # pruned / collapsed: the reason says where and why
                what = f"{e['state']}: " + (e.get("error") or f"after fold {e['folds_done']}")
            best = "-" if self.best is None else f"{self.best:.4f}"
            click.echo(f"[{number:>3}{total}] #{e['trial']:<3} {e['architecture']:<12} {score:<17}"
                       f" {e['duration_s']:6.1f}s  best {best}  {what}".rstrip(), err=True)
        elif kind == "epoch":  # a slow candidate's epoch (objective.FOLD_PROGRESS_S)
            inside = (f", step {e['step']}/{e['steps']}" if e.get("step") is not None else
                      " done")  # within an epoch that runs long, or at its end
            click.echo(f"      #{e['trial']:<3} {e['architecture']:<12} fold {e['fold']}/"
                       f"{e['folds']}, epoch {e['epoch']}/{e['epochs']}{inside} "
                       f"({e['elapsed_s']:.0f} s so far)", err=True)
        elif kind == "note":  # how long work goes (not a data warning)
            click.echo(e["message"], err=True)
        elif kind == "fold":  # a slow candidate's finished fold (objective.FOLD_PROGRESS_S)
            click.echo(f"      #{e['trial']:<3} {e['architecture']:<12} fold {e['fold']}/"
                       f"{e['folds']}: {e['score']:.4f} ({e['elapsed_s']:.0f} s so far)", err=True)
        elif kind == "sized":  # the first candidate, fitted to --timeout (objective.FIRST_SHARE)
            click.echo(f"      #{e['trial']:<3} {e['architecture']:<12} {e['reason']}", err=True)
        elif kind == "refit":
            target = "and scoring it on the test set" if e["test"] else "(no test set given)"
            seeds = e.get("seeds", 1)
            bag = f" with {seeds} seeds (averaged)" if seeds > 1 else ""
            click.echo(f"refitting #{e['trial']} ({e['architecture']}) on all training data"
                       f"{bag} {target}", err=True)
        elif kind == "answer":
            target = "scoring it on the test set" if e["test"] else "no test set given"
            what = (f"#{e['trial']}" if len(e["members"]) == 1 else
                    "the ensemble of " + ", ".join(f"#{t}" for t in e["members"]))
            # QA: an ensemble's line said "the 2 models of its cross-validation"
            how = (f"the {e['folds']} models of its cross-validation, averaged" if
                   len(e["members"]) == 1 else f"each member the {e['folds']} models of its "
                   "cross-validation, blended by the ensemble's weights")
            click.echo(f"answering with {what}: {how} (no refit); {target}", err=True)
        elif kind == "choice":
            kept = e["answer"] == e["leader"]
            # the leader by mean fold score may trail on the pooled predictions (QA: "leads
            # ... by -0.0413")
            if e["diff"] <= 0:
                click.echo(f"#{e['leader']} (first by its mean fold score) "
                           + (f"trails the first portfolio start #{e['incumbent']} by "
                              f"{-e['diff']:.4f}" if e["diff"] < 0 else
                              f"is level with the first portfolio start #{e['incumbent']}")
                           + f" on their pooled out-of-fold predictions: #{e['incumbent']} "
                           "answers", err=True)
                return
            click.echo(f"#{e['leader']} leads the first portfolio start #{e['incumbent']} "
                       f"by {e['diff']:+.4f} out-of-fold"
                       + (f", but {e['note']}: #{e['incumbent']} answers" if e.get("note") else
                          f", in {e['p_better']:.0%} of paired resamples"
                          + (": it answers" if kept else
                             f" (under {e['confidence']:.1%}, within chance for the best of "
                             f"{e.get('challengers', 1)}): #{e['incumbent']} answers")),
                       err=True)
        elif kind == "ensemble":
            single = f"#{e['against']}" if e.get("against") is not None else "the best single"
            from automed.results.describe import ensemble_verdict

            verdict = ensemble_verdict(e, single)
            what, sign = e.get("objective") or "score", 1.0
            if what == "log_loss":  # selection maximises minus the log-loss
                what, sign = "log-loss", -1.0
            click.echo(f"{e['label']}: out-of-fold {what} {sign * e['score']:.4f} vs {single} "
                       f"{sign * e['single']:.4f} (noise {e.get('margin', 0.0):.4f}), "
                       f"{verdict}", err=True)
        elif kind == "done" and e.get("timing"):
            click.echo(format_timing(e["timing"]), err=True)


def format_timing(t: dict) -> str:
    """Wall time per phase against --timeout, so an overrun is visible, never hidden."""
    parts = [f"search {t['search_s']:.0f} s"]
    parts += [f"{name} {t[key]:.0f} s" for name, key in (("answer", "answer_s"),
                                                          ("refit", "refit_s"),
                                                          ("ensemble", "ensemble_s"))
              if t.get(key) is not None]
    line = f"wall time: {' + '.join(parts)} = {t.get('total_s', t['search_s']):.0f} s"
    if t.get("timeout"):
        over = t.get("total_s", t["search_s"]) - t["timeout"]
        # The search runs over when the limit falls inside a candidate's epoch (it stops at
        # the epoch's end) or inside the first candidate (never stopped: a search always
        # answers); else the time past the limit went to the answer.
        where = ("the search: a candidate stops at the end of its epoch, the first one not "
                 "at all" if t["search_s"] > t["timeout"] else "the answer")
        line += (f" (--timeout {t['timeout']:g} s; {over:.0f} s over it, spent on {where})"
                 if over > 0 else f" (within --timeout {t['timeout']:g} s)")
    return line


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
    automed proxy --storage URL  serve the database to hundreds of workers (gRPC)
    automed predict DATA         class probabilities from a search's saved answer
    automed export -o DIR        the saved answer and its model card
    automed db current|upgrade   the database's schema version; migrate it after upgrading
    automed plugins [list]       list the architecture plugins and loaders
    automed plugins check NAME   run the conformance suite on a plugin (name, file, module)
    automed demo                 write a small generated dataset to try automed on
    """


@cli.command()
@click.argument("data", type=click.Path())
@click.option("--test", "test", type=click.Path(), help="A locked test file, scored once by the "
              "answer (a .npz with test_* keys brings its own).")
@click.option("--metric", default="accuracy", show_default=True,
              help=f"Objective: {', '.join(METRIC_NAMES)} (aliases {', '.join(ALIASES)}).")
@click.option("--average", type=click.Choice(AVERAGES), default="macro", show_default=True,
              help="Averaging for recall/precision/f1/specificity, and for auroc/auprc of more "
              "than two classes (one-vs-rest; micro pools them); binary scores --pos-label.")
@click.option("--pos-label", help="Positive class of two-class data (default: the second "
              "class): the one --average binary scores, and the one auprc and the report's "
              "ROC/PR curves rank under any --average. Refused with more classes.")
@click.option("--folds", default=5, show_default=True, help="Stratified CV folds.")
@click.option("--trials", type=int, help="Candidates to evaluate in total (default 20 when no "
              "--timeout).")
@click.option("--timeout", type=float, help="Search time limit in seconds: candidates still "
              "training then are stopped, except the first (a search always returns a model).")
@click.option("--storage", help=STORAGE_HELP)
@click.option("--results-db", help=RESULTS_HELP)
@click.option("--study", help="Study name (default: <data file>-<metric>-cv<folds>, e.g. "
              "demo.npz-accuracy-cv5). The same name and settings resume a search.")
@click.option("--arch", "architectures", multiple=True, help="Restrict to these architectures "
              "(repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed for CV splits, the sampler "
              "and model initialisation.")
@click.option("--plugin", "plugin_sources", multiple=True, help="Also load this plugin: a .py "
              "file or a module name (repeatable; or $AUTOMED_PLUGINS_PATH).")
@click.option("--format", "format_", help="Force a loader (see `automed plugins --all`).")
@click.option("--modality", help="Force the modality: image, signal, text, biosequence, "
              "tabular.")
@click.option("--label-col", help="Label column (name or index) for table formats.")
@click.option("--text-col", "text_cols", multiple=True, help="Text field(s) of .jsonl/.csv "
              "text; repeat to join fields in order (--text-col title --text-col abstract).")
@click.option("--sequence-col", help="Sequence column (name or index) of a .csv/.tsv of "
              "DNA/RNA/protein sequences (default: sequence, seq, dna, ...).")
@click.option("--id-col", help="Record id column of text, tabular or sequence-table data "
              "(never a feature): ids must be unique.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N "
              "(one worker).")
@click.option("--gpus", help="GPUs to use: all (every visible one; with none visible, the CPU, "
              "said in a line), none, or indices like 0,2 (default: all visible).")
@click.option("--trials-per-gpu", default=1, show_default=True, help="Worker processes sharing "
              "each GPU (more than 1 is refused without a GPU).")
@click.option("--workers", type=int, help="CPU worker processes (CPU cores are divided); 0 only "
              "creates the study for `automed worker` processes to join.")
@click.option("--heartbeat", default=10.0, show_default=True, help="Seconds between a running "
              "candidate's heartbeats; a silent worker's candidate is retried.")
@click.option("--no-prune", is_flag=True, help="Run every fold of every candidate: no "
              "pruning at epoch or fold steps, no stopping of collapsed candidates.")
@click.option("--no-ensemble", is_flag=True, help="Answer with the best single candidate; "
              "build no ensemble of the best candidates.")
@click.option("--max-epochs", type=int, help="Cap every candidate's training epochs (quick runs).")
@click.option("--refit-full", is_flag=True, help="Refit the answer on all training data "
              "instead of answering with the k models its cross-validation trained (the "
              "default: no refit, AutoGluon's bagging).")
@click.option("--bag", type=int, help="With --refit-full: refit with this many seeds and "
              f"average their probabilities (default {DEFAULT_BAG}; 1: a single refit); under "
              "--timeout, seeds that would end past the limit are skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--group-col", help="Patient/study id column (tables) or npz key: grouped CV and "
              "test split.")
@click.option("--groups", "groups_file", type=click.Path(), help="Group (patient) ids for data "
              "without a group column: lines ID,GROUP naming each sample as `automed predict` "
              "does (an image's path in the folder, a FASTA id), test samples too; or one id "
              "per training sample, in loading order.")
@click.option("--test-fraction", type=float, help="Hold out this stratified (and grouped) "
              "fraction as the locked test set before the search.")
@click.option("--artifacts", type=click.Path(), help="Folder for the answer's model (default: "
              "automed_models/ beside the SQLite file; with a server database, "
              "./automed_models in the working directory).")
@click.option("--bootstrap", default=1000, show_default=True, help="Resamples for the test "
              "set's 95% intervals (0: none).")
@click.option("--deterministic", is_flag=True, help="Deterministic kernels (with --seed and "
              "one worker the same search gives the same leaderboard).")
def search(data, test, metric, average, pos_label, folds, trials, timeout, storage, results_db,
           study,
           architectures, seed, plugin_sources, format_, modality, label_col, device, gpus,
           trials_per_gpu, workers, heartbeat, no_prune, no_ensemble, max_epochs, as_json,
           quiet, group_col, groups_file, test_fraction, artifacts, bootstrap, deterministic,
           text_cols, sequence_col, id_col, refit_full, bag) -> None:
    """Search architectures and hyperparameters for DATA; print the leaderboard.

    DATA is images (a .npz in MedMNIST layout or x/y, or a folder of class sub-folders), a
    signal table (.txt/.tsv/.csv, UCR style), text (.jsonl, or .csv/.tsv with a text column),
    DNA/RNA/protein sequences (FASTA, a .csv/.tsv with a sequence column, UCI splice.data) or
    tabular records (.csv/.tsv with named columns). The first lines of the search say how it
    was read; `automed plugins --all` lists every loader.
    """
    global _ON_INTERRUPT
    _ON_INTERRUPT = RESUME_SEARCH
    from automed.results.leaderboard import format_table, format_test_ci, format_test_scores
    from automed.searching.runner import search as run_search
    from automed.searching.workers import sigterm_as_interrupt
    from automed.storage import redact_url

    _gpus_all_on_cpu(gpus)
    # With --json stdout is the JSON alone: plugin code that prints writes to stderr (QA)
    quiet_stdout = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with warnings.catch_warnings(), sigterm_as_interrupt(), quiet_stdout:
        # Data warnings (leakage, ...) reach the terminal once, as progress lines (even with
        # --quiet).
        warnings.filterwarnings("ignore", category=DataWarning)
        warnings.filterwarnings("ignore", category=PluginWarning)  # progress lines too
        warnings.filterwarnings("ignore", message="--gpus all: no GPU")  # said above
        result = run_search(
            data, test=test, metric=metric, average=average, pos_label=pos_label, folds=folds,
            trials=trials, timeout=timeout, storage=storage, results_db=results_db,
            study=study, architectures=list(architectures) or None, seed=seed, format=format_,
            modality=modality, label_col=label_col, device=device, prune=not no_prune,
            max_epochs=max_epochs, gpus=gpus, trials_per_gpu=trials_per_gpu, workers=workers,
            heartbeat=heartbeat, progress=_Progress(quiet or as_json),
            plugins=list(plugin_sources),
            group_col=group_col, groups=groups_file, test_fraction=test_fraction,
            artifacts=artifacts, bootstrap=bootstrap, deterministic=deterministic,
            ensemble=not no_ensemble, text_col=list(text_cols) or None,
            sequence_col=sequence_col, id_col=id_col,
            refit_full=refit_full, bag=bag)
    if workers == 0:
        # everything a worker needs: the study's plugins too (QA: the hint left them out,
        # and the worker it printed was refused)
        plugins_given = "".join(f" --plugin {shlex.quote(str(Path(p).resolve()))}"
                                if str(p).endswith(".py") else f" --plugin {shlex.quote(p)}"
                                for p in plugin_sources)
        env = os.environ.get("AUTOMED_PLUGINS_PATH")
        click.echo(f"created study {result.study!r}; join it with: "
                   + (f"AUTOMED_PLUGINS_PATH={shlex.quote(env)} " if env else "")
                   + f"automed worker --study {shlex.quote(result.study)} --storage "
                   f"{result.storage}{plugins_given}"
                   + (f" --results-db {redact_url(results_db)}" if results_db else ""))
        return
    if as_json:
        click.echo(json.dumps({"study": result.study, "storage": result.storage,
                               "best": result.best, "test_scores": result.test_scores,
                               "test_size": result.test_size, "test_ci": result.test_ci,
                               "test_intervals": result.test_intervals,
                               "artifact": result.artifact, "manifest": result.manifest,
                               "warnings": result.warnings, "ensemble": result.ensemble,
                               "answer": result.answer,
                               "best_test_scores": result.best_test_scores,
                               "timing": result.timing,
                               "leaderboard": result.leaderboard}, indent=2, default=str))
        return
    click.echo(f"\nleaderboard of {result.study!r} (top 10):")
    click.echo(format_table(result.leaderboard[:10]))
    if result.test_scores:
        what = (result.ensemble["label"] if result.ensemble else
                f"#{result.best['trial']} {result.best['architecture']}")
        click.echo(f"\nanswer: {what}; " + format_test_scores(
            result.test_scores, result.test_size, result.metric_labels))
    if result.test_ci:
        click.echo(format_test_ci(result.test_ci, result.metric_labels, result.test_intervals))
    if result.artifact:
        click.echo(f"model saved to {result.artifact} (automed predict/export --study "
                   f"{shlex.quote(result.study)})")


@cli.command()
@click.option("--study", required=True, help="The study to join (see `automed leaderboard`).")
@click.option("--storage", help=STORAGE_HELP + " grpc://HOST:PORT joins through `automed proxy`.")
@click.option("--results-db", help=RESULTS_HELP)
@click.option("--gpus", help="GPUs to use: all (every visible one; with none visible, the CPU, "
              "said in a line), none, or indices like 0,2.")
@click.option("--trials-per-gpu", default=1, show_default=True, help="Worker processes sharing "
              "each GPU (more than 1 is refused without a GPU).")
@click.option("--workers", type=click.IntRange(min=1), help="CPU worker processes on this "
              "machine when it trains on the CPU (default: 1; with GPUs, --trials-per-gpu "
              "sets the processes).")
@click.option("--threads", type=int, help="Torch threads per worker process (default: the "
              "machine's cores divided among all automed workers running on it; "
              "OMP_NUM_THREADS also fixes it).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N "
              "(as for search).")
@click.option("--timeout", type=float, help="Stop starting new candidates after this many "
              "seconds.")
@click.option("--plugin", "plugin_sources", multiple=True, help="Allow this plugin file or "
              "module, which the study needs (a file must be identical to the study's).")
@click.option("--index", type=int, help="This worker's number in a fleet (the Slurm array "
              "index, the Kubernetes completion index): names the worker, which seeds its "
              "sampler (default: host name and process id).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def worker(study, storage, results_db, gpus, trials_per_gpu, workers, threads, device, timeout,
           plugin_sources, index, quiet) -> None:
    """Join an existing search from this machine; stop when its trial budget is used.

    The data must be readable at the path the search was started with. Run one per node
    against the same PostgreSQL URL to spread a search over machines.
    """
    global _ON_INTERRUPT
    _ON_INTERRUPT = "interrupted; run the same command again to rejoin the search"
    from automed.searching.workers import join, sigterm_as_interrupt
    from automed.storage import Store
    from automed.storage.fleet import results_db_env

    with results_db_env(results_db, storage):
        _gpus_all_on_cpu(gpus)
        with sigterm_as_interrupt():
            n = join(study, storage=storage, gpus=gpus, trials_per_gpu=trials_per_gpu,
                     workers=workers, device=device, timeout=timeout,
                     plugins=list(plugin_sources), progress=_Progress(quiet),
                     identity=None if index is None else f"index-{index}", threads=threads)
        searched = Store(storage, existing=True).search(study)["status"] == "searched"
    click.echo(f"worker done: the study has {n} candidate(s)"
               + ("; its --trials budget is used: the `automed search` command that created it, "
                  "without --workers 0, answers and scores the test set" if searched else ""),
               err=True)


@cli.command()
@click.option("--study", "studies", multiple=True, help="Study to rank (repeatable; default: "
              "the most recent one).")
@click.option("--all-studies", is_flag=True, help="Rank across every study in the database.")
@click.option("--dataset", "datasets", multiple=True, help="Only searches on this dataset "
              "(name or fingerprint; repeatable; implies all studies).")
@click.option("--arch", "architectures", multiple=True, help="Only this architecture family "
              "(repeatable).")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["complete", "ensemble", "pruned", "collapsed", "failed",
                                 "interrupted", "running"]),
              help="Candidate states to include (repeatable; default complete and ensemble).")
@click.option("--metric", "metrics", multiple=True, help="Only searches optimising this "
              "metric (repeatable; implies all studies).")
@click.option("--sort", help="Rank by a stored metric (e.g. auroc, f1), duration, or score "
              "(each search's objective, the default).")
@click.option("--top", type=click.IntRange(min=1), help="Show only the best N.")
@click.option("--per-family", is_flag=True, help="Keep the best candidate of each family (at "
              "each objective, across searches of several metrics).")
@click.option("--all", "show_all", is_flag=True, help="Include pruned, collapsed, failed, "
              "interrupted and running candidates, with their errors, ranked below the "
              "complete ones.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--storage", help=STORAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def leaderboard(studies, all_studies, datasets, architectures, states, metrics, sort, top,
                per_family, show_all, fmt, storage, as_json) -> None:
    """Rank stored candidates by their mean CV score, in one study or across studies."""
    from automed.evaluation.names import METRIC_NAMES, resolve_metric
    from automed.results.describe import (
        answer_label,
        averaging_note,
        choice_words,
        effective_status,
        metric_labels,
        objective_words,
    )
    from automed.results.leaderboard import (
        SHOWN_METRICS,
        format_manifest,
        format_test_ci,
        format_test_scores,
        render,
    )
    from automed.storage import Store
    from automed.storage.ranking import STATES, sort_key

    source = click.get_current_context().get_parameter_source("fmt")
    if as_json and fmt != "json" and source is not click.core.ParameterSource.DEFAULT:
        raise ConfigError(f"--json and --format {fmt} ask for two formats; give one of them")
    store = Store(storage, existing=True)
    fmt = "json" if as_json else fmt
    if not studies and not (all_studies or datasets or metrics):
        studies = (store.latest_study(),)
    states = states or (STATES if show_all else ("complete", "ensemble"))
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
        n = len(store.candidates(studies[0])) if info["status"] == "created" else None
        # with its averaging and positive class, as show says it (QA: "3-fold CV by recall"
        # of a binary recall of class 'neg')
        click.echo(f"study {studies[0]!r} ({info['dataset']}, {info['modality']}, "
                   f"{objective_words(info['config'] or {}, info['metric'], info['classes'])}, "
                   f"{effective_status(info, n)})")
    else:
        click.echo(f"{len(rows)} candidate(s) from {len({r['study'] for r in rows})} study(ies)")
    plain = set(states) <= {"complete", "ensemble"}
    click.echo(render(rows, "table", show_state=show_all or not plain, sort=key))
    if show_all and len(studies) == 1:
        _say_queued_retries(store, studies[0])
    objectives = sorted({r["metric"] for r in rows})
    if len(studies) != 1 and top is not None and len(rows) >= top and not per_family:
        # the rows --top cut off may optimise other metrics (QA: the top 5, of one metric,
        # hid a second search's and its note); each family's best row spans them cheaply
        objectives = sorted({*objectives, *(r["metric"] for r in store.leaderboard(
            list(studies) or None, states=states, dataset=list(datasets) or None,
            architecture=list(architectures) or None,
            metric=[resolve_metric(m) for m in metrics] or None, best_per_family=True))})
    if len({r["study"] for r in rows}) > 1:
        shown = [*objectives, *SHOWN_METRICS, *([key] if key in METRIC_NAMES else [])]
        note = averaging_note([store.search(name) for name in dict.fromkeys(
            r["study"] for r in rows)], shown)
        if note:
            click.echo(note)
    if len(objectives) > 1 and not sort:
        click.echo(f"note: these searches optimise different metrics ({', '.join(objectives)}):"
                   " scores compare only within one; add --metric NAME, or --sort METRIC to "
                   "rank all by one stored metric")
    if len(studies) != 1:
        return
    config = info["config"] or {}
    answer = answer_label(info)
    if answer is not None:
        # which row answers, and why when it is not the first (QA: the leaderboard ranked #7
        # first and never said #0 answered)
        why = choice_words(config.get("choice")) if config.get("answer") != "ensemble" else ""
        click.echo(f"\nanswer {answer}" + (f" ({why})" if why else "")
                   + (": " + format_test_scores(info["test_scores"], info["test_size"],
                                                metric_labels(config, info["classes"]))
                      if info["test_scores"] else " (no test set)"))
    if config.get("test_ci"):
        click.echo(format_test_ci(config["test_ci"], metric_labels(config, info["classes"]),
                                  config.get("test_intervals")))
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
    from automed.results.describe import answer_label, effective_status
    from automed.results.leaderboard import format_studies
    from automed.storage import Store

    # "running" from a search whose process is gone says so, as show and leaderboard do
    rows = [dict(r, status=effective_status(r), answer=answer_label(r))
            for r in Store(storage, existing=True).studies()]
    click.echo(json.dumps(rows, indent=2, default=str) if fmt == "json"
               else format_studies(rows))


# ignore_unknown_options: the ensemble's row is trial -1, which click would take for an option
@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("study")
@click.argument("candidate", type=int, required=False)
@click.option("--storage", help=STORAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(study, candidate, storage, as_json) -> None:
    """Show a study (settings, counts, families, test scores) or one CANDIDATE (trial number;
    an answering ensemble's row is -1): params, per-fold scores, timing, device and error."""
    from automed.results.describe import format_candidate, format_study, study_summary
    from automed.storage import Store

    store = Store(storage, existing=True)
    if candidate is None:
        out = study_summary(store.search(study), store.candidates(study))
        click.echo(json.dumps(out, indent=2, default=str) if as_json else format_study(out))
    else:
        row = store.candidate(study, candidate)
        row.update(_retry_links(store, study, candidate))
        click.echo(json.dumps(row, indent=2, default=str) if as_json
                   else format_candidate(row))


def _retry_links(store, study: str, number: int) -> dict:
    """``retry_of``: the candidate this one re-runs; ``retried_as``: the candidates that re-run
    this one (QA: `show` of a retry did not say whose seeds and place it took)."""
    import optuna

    from automed.searching.study import _retried

    try:
        trials = optuna.load_study(study_name=study, storage=store.optuna_storage()) \
            .get_trials(deepcopy=False)
    except (KeyError, AutomedError):
        return {}
    me = next((t for t in trials if t.number == number), None)
    links = {"retry_of": None if me is None else _retried(me),
             "retried_as": [t.number for t in trials if t.number != number
                            and _retried(t) == number]}
    return {k: v for k, v in links.items() if v not in (None, [])}


@cli.command()
@click.argument("study")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              required=True, help="The HTML file to write (-: standard output).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Leaderboard rows in the report.")
@click.option("--storage", help=STORAGE_HELP)
def report(study, output, top, storage) -> None:
    """Write one self-contained HTML page about STUDY: leaderboard, history, importances,
    families, and the answer's confusion matrix, ROC and precision-recall curves."""
    from automed.results.report import build_report, write_report
    from automed.storage import Store

    if output == "-":  # QA: wrote a file named "-"
        click.echo(build_report(Store(storage, existing=True), study, top=top), nl=False)
        return
    output_file(output, protect=(sqlite_file(storage),))
    path = write_report(Store(storage, existing=True), study, output, top=top)
    click.echo(str(path))


@cli.command()
@click.option("--storage", help=STORAGE_HELP + " The database the proxy serves.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on "
              "(0.0.0.0: every interface; the proxy has no authentication: keep it inside the "
              "cluster network).")
@click.option("--port", default=13000, show_default=True, help="Port to listen on.")
@click.option("--threads", default=10, show_default=True, help="Server threads; the proxy "
              "opens at most twice as many database connections, whatever the number of "
              "workers.")
def proxy(storage, host, port, threads) -> None:
    """Serve the study database to many workers through Optuna's gRPC storage proxy.

    \b
    Workers then use:  --storage grpc://HOST:PORT
    (automed's own tables go through the proxy too; --results-db DB_URL writes them directly).
    """
    from automed.storage import redact_url
    from automed.storage.fleet import make_proxy_server

    server, store = make_proxy_server(storage, host=host, port=port, threads=threads)
    server.start()
    click.echo(f"automed proxy serving {redact_url(store.url)} at grpc://{host}:{port} "
               f"({threads} threads; at most {2 * threads} database connections)", err=True)
    click.echo(f"workers: automed worker --study STUDY --storage grpc://{host}:{port}",
               err=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=5)


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
    from automed.results.artifact import saved_answer

    return str(saved_answer(store, store.search(study or store.latest_study())))


MODEL_PLUGIN_HELP = ("Load this plugin file or module, which the model's architecture comes "
                     "from (what `automed search --plugin` was given).")


def _model_plugins(sources: tuple[str, ...]) -> None:
    """Load plugins a saved model needs; a broken one is refused in one line, as by search."""
    from automed.plugin_manager import get_plugin_manager

    for source in sources:
        get_plugin_manager().add_source(source, required=True)


class _NamingStudyPlugins:
    """Turn "no plugin provides the architecture" into the study's own --plugin to give: the
    plan records them. They are never loaded from the database unasked (an edited database
    must not make automed import code, as `automed worker` holds too)."""

    def __init__(self, store, study: str) -> None:
        self.store, self.study = store, study

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> None:
        from automed.errors import DataError
        from automed.results.artifact import MissingArchitecture

        unread = (isinstance(exc, DataError) and "unknown data format" in str(exc)) or (
            isinstance(exc, ConfigError) and str(exc).startswith("unknown format "))
        if not isinstance(exc, MissingArchitecture) and not unread:
            return
        try:
            plan = (self.store.search(self.study).get("config") or {}).get("plan") or {}
            sources = [str(r["source"]) for r in plan.get("plugins") or []]
        except (AutomedError, KeyError, TypeError, AttributeError):
            return
        if sources and unread:  # QA: a loader plugin's study said "unknown data format"
            raise DataError(f"{str(exc).split(';')[0]}; study {self.study!r} was searched "
                            "with --plugin " + " --plugin ".join(map(shlex.quote, sources))
                            + ", whose loader may read it: give it again") from None
        if sources:
            raise MissingArchitecture(exc.architecture, exc.installed, sources) from None


@cli.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("--study", help="Study whose saved answer predicts (default: the most recent).")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False),
              help="An exported model folder instead of --study.")
@click.option("-o", "--output", type=click.Path(allow_dash=True),
              help="CSV to write (default or -: standard output).")
@click.option("--split", type=click.Choice(["all", "train", "test"]), default="all",
              show_default=True,
              help="Which part of DATA to predict: test is its own test split, or on the "
                   "file a --test-fraction search split, the rows that search held out.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--plugin", "plugin_sources", multiple=True, help=MODEL_PLUGIN_HELP)
@click.option("--storage", help=STORAGE_HELP)
def predict(data, study, model_dir, output, split, device, plugin_sources, storage) -> None:
    """Write per-sample class probabilities for DATA (one CSV row per sample)."""
    if output == "-":  # QA: wrote a file named '-', as report -o - once did
        output = None
    if output:
        output_file(output, protect=(data, sqlite_file(storage)))
    size = Path(data).stat().st_size if Path(data).is_file() else 0
    if size > BIG_FILE:  # QA: 200,000 rows were predicted for 41 s without a word
        click.echo(f"reading {Path(data).name} ({size / 1e6:.0f} MB) and predicting ...",
                   err=True)
    # Without -o stdout is the CSV alone: plugin code that prints writes to stderr (QA)
    table = sys.stdout
    with contextlib.redirect_stdout(sys.stderr if not output else sys.stdout), \
            warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", DataWarning)
        warnings.simplefilter("always", PluginWarning)
        rows = _predict(data, study, model_dir, output, split, device, plugin_sources,
                        storage, table)
    for warning in said:  # what the data (or the plugin code) made of them, one line each
        if issubclass(warning.category, (DataWarning, PluginWarning)):
            click.echo(f"warning: {warning.message}", err=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    if output:
        click.echo(f"{rows} predictions written to {output}", err=True)


def _predict(data, study, model_dir, output, split, device, plugin_sources, storage,
             table) -> int:
    from contextlib import nullcontext

    from automed.results.predict import predict_file

    _model_plugins(plugin_sources)
    naming = nullcontext()
    if model_dir is None:
        from automed.storage import Store

        store = Store(storage, create=False, existing=True)
        study = study or store.latest_study()
        model_dir = _artifact_of(store, study)
        naming = _NamingStudyPlugins(store, study)
    if output:
        output_file(output, inside=(model_dir,))
    with naming:
        return predict_file(model_dir, data, output, split=split, device=device, stream=table)


@cli.command()
@click.option("--study", help="Study to export (default: the most recent).")
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True,
              help="Folder for the weights, config and MODEL_CARD.md.")
@click.option("--plugin", "plugin_sources", multiple=True, help=MODEL_PLUGIN_HELP)
@click.option("--storage", help=STORAGE_HELP)
def export(study, output, plugin_sources, storage) -> None:
    """Write the search's answer (safetensors + JSON) and a model card to a folder."""
    from automed.results.model_card import export_model
    from automed.storage import Store

    output_dir(output)
    _model_plugins(plugin_sources)
    store = Store(storage, create=False, existing=True)
    study = study or store.latest_study()
    with _NamingStudyPlugins(store, study), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        folder = export_model(store, study, output, plugin_sources)
    for w in said:
        click.echo(f"warning: {w.message}", err=True)
    click.echo(str(folder))


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
    from automed.plugin_manager import OPTIONAL_PLUGINS, get_plugin_manager

    # plugin code that prints while it loads writes to stderr where stdout carries the JSON
    # (QA: "IMPORT NOISE ON STDOUT" made `plugins list --json` unparseable)
    with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
        infos = get_plugin_manager().describe(include_builtin=show_all)
    loaded = {p["module"] for p in infos}
    # Optional built-ins (hf) register only when a search names them: listed, not imported.
    optional = [{"name": n, "module": m, "builtin": True, "optional": True,
                 "note": f"loaded when named (--arch {n})"}
                for n, m in OPTIONAL_PLUGINS.items() if show_all and m not in loaded]
    if as_json:
        click.echo(json.dumps(infos + optional, indent=2))
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
    for p in optional:
        click.echo(f"{p['name']} (built-in, optional): {p['module']}")
        click.echo(f"  architecture {p['name']}: {p['note']}")


@plugins.command("check")
@click.argument("target")
@click.option("--samples", default=3, show_default=True, help="Parameter sets drawn from each "
              "search space (plus the defaults).")
@click.option("--data", "data", type=click.Path(exists=True),
              help="A file or folder for TARGET's loaders to read, as a search would.")
def plugins_check(target, samples, data) -> None:
    """Run the conformance suite on TARGET's architectures and loaders; non-zero exit on any
    failure.

    TARGET is a plugin name, an architecture name, a .py file or an importable module. A
    loader is checked for what it declares, and with --data by reading that file.
    """
    from automed.errors import PluginError
    from automed.testing import check_plugin

    results = check_plugin(target, n_samples=samples, data=data)
    for name, failures in results.items():
        read = (f" (read {data})" if data else " (give --data FILE to read a file with it)"
                ) if name.startswith("loader ") and not failures else ""
        click.echo(f"{'FAIL' if failures else 'ok  '}  {name}{read}")
        for failure in failures:
            click.echo(f"      {failure.modality} {failure.check}: {failure.message}")
    failed = sum(len(f) for f in results.values())
    if failed:
        raise PluginError(f"{target}: {failed} conformance check(s) failed; fix them, then run "
                          f"`automed plugins check {target}` again")


@cli.command()
@click.option("--kind", type=click.Choice(["image", "signal"]), default="image",
              show_default=True, help="image: 28x28 X-ray-like images; signal: ECG-like beats.")
@click.option("-o", "--output", type=click.Path(), help="Where to write the .npz (a name "
              "ending in .npz; default: automed_demo_KIND.npz here). An existing file is "
              "refused unless it is this very demo.")
@click.option("-n", "--samples", default=600, show_default=True, help="Samples to generate "
              "(at least 10).")
@click.option("--seed", default=0, show_default=True, help="Seed of the generator: the "
              "same seed writes the same file.")
def demo(kind, output, samples, seed) -> None:
    """Write a small generated medical-style dataset (MedMNIST .npz layout)."""
    from pathlib import Path

    from automed.demo import make_demo

    if samples < 10:
        raise ConfigError(f"-n/--samples {samples} is too small for train/val/test splits; "
                          "use at least 10")
    if output and Path(output).suffix.lower() != ".npz":
        raise ConfigError(f"-o {output}: the demo is a .npz archive, which automed reads by "
                          f"its suffix; name it {Path(output).stem}.npz")
    if output:
        output_file(output)
    path = make_demo(kind, output, n=samples, seed=seed)
    click.echo(str(path))


# What a Ctrl-C says: only a command that stores a search offers to resume one (QA: a Ctrl-C
# while a search read its data, or during predict, offered "to resume" what was never stored).
RESUME_SEARCH = "interrupted; run the same command again to resume the search"
_ON_INTERRUPT = "interrupted"


def _interrupted_words(exc: BaseException | None) -> str:
    if getattr(exc, "nothing_stored", False):
        return "interrupted before the search began; nothing was stored or changed"
    return _ON_INTERRUPT


def _interrupted_code(exc: BaseException | None) -> int:
    """128 + the signal: 143 for SIGTERM (handled like Ctrl-C, see searching.workers), else 130."""
    from automed.errors import Terminated

    return 143 if isinstance(exc, Terminated) else 130


def _silence(stream) -> None:
    """Point a stream whose reader has gone (a closed pipe) at /dev/null, so later writes,
    and Python's flush at exit, do not raise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main() -> None:
    try:
        # prog_name: "automed" however it was started (python -m automed said "python -m")
        cli.main(standalone_mode=False, prog_name="automed")  # a closed stdout: exits 1
    except AutomedError as exc:
        message = visible(str(exc), keep="\n")  # a name from the data may hold an ESC
        click.echo(f"error: {message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        click.echo(_interrupted_words(exc.__cause__), err=True)
        sys.exit(_interrupted_code(exc.__cause__))
    except KeyboardInterrupt as exc:
        click.echo("\n" + _interrupted_words(exc), err=True)
        sys.exit(_interrupted_code(exc))
    except click.UsageError as exc:
        # One line like every other refusal; the usage is one --help away.
        names, ctx = [], exc.ctx
        while ctx is not None and ctx.parent is not None:
            names.append(ctx.info_name)
            ctx = ctx.parent
        where = " ".join(["automed", *reversed(names)])
        click.echo(f"error: {exc.format_message().rstrip('.')}; see `{where} --help`",
                   err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        damage = _damaged_database(exc)
        if damage is None:
            raise
        click.echo(f"error: {damage}", err=True)
        sys.exit(2)


# SQLite's words for a file whose pages are damaged (a crash mid-write on a disk that lies
# about syncing, a copy taken while a search wrote it)
DAMAGED = ("database disk image is malformed", "database corruption")


def _damaged_database(exc: BaseException) -> str | None:
    """One line for an error whose cause is a damaged SQLite file, else None. QA: damaged
    pages surfaced as Optuna's "An exception is raised during the commit ... exceeding max
    length" at the end of a traceback, the real cause in its middle."""
    seen = 0
    while exc is not None and seen < 20:
        if any(d in str(exc) for d in DAMAGED):
            from automed.storage.store import resolve_url, sqlite_file

            argv = sys.argv[1:]

            def named(flag: str, argv: list[str] = argv) -> str | None:
                return next((a.split("=", 1)[1] for a in argv if a.startswith(f"{flag}=")),
                            None) or next((argv[i + 1] for i, a in enumerate(argv[:-1])
                                           if a == flag), None)

            files = []
            for flag in ("--storage", "--results-db"):
                given = named(flag)
                if flag == "--results-db" and given is None:
                    continue
                try:
                    db = sqlite_file(resolve_url(given))
                except Exception:  # noqa: BLE001 - the path is only named, never needed
                    db = None
                if db is not None:
                    files.append(str(db))
            # either may be the damaged one (review: --results-db's damage named --storage's)
            where = " or ".join(files) if files else "the study database"
            return (f"{where} is damaged ({next(d for d in DAMAGED if d in str(exc))}); "
                    "restore it from a backup, or salvage its rows with `sqlite3 FILE "
                    "'.recover' | sqlite3 NEW.db` and give --storage the new file")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


if __name__ == "__main__":
    main()
