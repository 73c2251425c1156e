"""The cluster recipes run: Slurm scripts against a fake srun/sbatch, Kubernetes manifests
against the Kubernetes schema, and every automed command they hold against automed's own CLI."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from automed.cli import cli

HERE = Path(__file__).parent
SLURM = HERE / "slurm"
K8S = HERE / "kubernetes"


def _parse(argv: list[str]) -> tuple[str, dict]:
    """What automed's CLI makes of ``automed <command> ...``: the command and its options."""
    assert argv[0] == "automed", argv
    command = cli.commands[argv[1]]
    ctx = command.make_context(argv[1], list(argv[2:]))
    return argv[1], ctx.params


# -- Slurm -----------------------------------------------------------------------------------
FAKE = """#!/usr/bin/env bash
# records one call per line: the program name, then its arguments, NUL-separated
{ printf '%s\\0' "$(basename "$0")" "$@"; printf '\\n'; } >> "$FAKE_LOG"
printf '%s\\n' "${AUTOMED_RESULTS_DB-<unset>}" >> "$FAKE_LOG.env"  # what each call inherits
if [[ "$(basename "$0")" == sbatch && "$*" == *proxy.sbatch* ]]; then
  echo grpc://node7:13000 > "$AUTOMED_PROXY_FILE"
fi
echo 4242
"""


@pytest.fixture
def fake_slurm(tmp_path):
    """A PATH whose srun, sbatch and automed only record how they were called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "sbatch", "automed"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"

    def run(script: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SLURM_", "AUTOMED", "STUDY", "CUDA_"))}
        full = dict(base, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_LOG=str(log), **env)
        done = subprocess.run(["bash", str(SLURM / script), *args], env=full, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        calls = [line.rstrip("\0").split("\0") for line in log.read_text().splitlines()] \
            if log.exists() else []
        log.unlink(missing_ok=True)
        return done, calls

    run.log = log
    return run


ARRAY_TASK = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_JOB_ID": "123", "SLURM_JOB_ID": "130",
              "SLURM_CPUS_PER_TASK": "4", "CUDA_VISIBLE_DEVICES": "2", "STUDY": "chest"}


def test_array_task_runs_one_worker_on_its_gpu_through_the_proxy(fake_slurm):
    done, calls = fake_slurm("worker.sbatch", **ARRAY_TASK,
                             AUTOMED_STORAGE="grpc://proxyhost:13000")
    assert done.returncode == 0, done.stderr
    [(srun, *argv)] = calls
    assert srun == "srun" and argv[:2] == ["--ntasks=1", "--cpus-per-task=4"]
    command, opts = _parse(argv[2:])
    assert command == "worker"
    assert opts["study"] == "chest" and opts["storage"] == "grpc://proxyhost:13000"
    assert opts["results_db"] is None  # automed's rows go through the proxy too
    # Slurm's CUDA_VISIBLE_DEVICES leaves the task one GPU: index 0 inside, one worker on it.
    assert opts["gpus"] == "0" and opts["trials_per_gpu"] == 1
    assert opts["index"] == 7  # seeds the sampler: tasks do not repeat each other's draws
    assert "123_7" in done.stderr and "GPU 2" in done.stderr


def test_array_task_direct_to_postgres(fake_slurm):
    done, calls = fake_slurm("worker.sbatch", **ARRAY_TASK, AUTOMED_TIMEOUT="3600",
                             AUTOMED_STORAGE="postgresql://automed@dbhost/automed",
                             AUTOMED_RESULTS_DB="postgresql://ignored@dbhost/automed")
    assert done.returncode == 0, done.stderr
    _, opts = _parse(calls[0][3:])
    assert opts["storage"] == "postgresql://automed@dbhost/automed"
    assert opts["results_db"] is None and opts["timeout"] == 3600.0
    # nor in its environment: automed refuses $AUTOMED_RESULTS_DB without a grpc:// storage
    assert _inherited(fake_slurm) == ["<unset>"]


def _inherited(fake_slurm) -> list[str]:
    """$AUTOMED_RESULTS_DB as each recorded call saw it, in order (then forgotten)."""
    log = fake_slurm.log.with_name(fake_slurm.log.name + ".env")
    seen = log.read_text().splitlines()
    log.unlink()
    return seen


def test_array_task_with_results_db_writes_automeds_rows_directly(fake_slurm):
    done, calls = fake_slurm("worker.sbatch", **ARRAY_TASK,
                             AUTOMED_STORAGE="grpc://proxyhost:13000",
                             AUTOMED_RESULTS_DB="postgresql://automed@dbhost/automed")
    assert done.returncode == 0, done.stderr
    assert _parse(calls[0][3:])[1]["results_db"] == "postgresql://automed@dbhost/automed"


@pytest.mark.parametrize("missing,message", [
    ("STUDY", "set STUDY"),
    ("SLURM_ARRAY_TASK_ID", "sbatch --array"),
    ("AUTOMED_STORAGE", "set AUTOMED_STORAGE"),
])
def test_array_task_refuses_to_start_half_configured(fake_slurm, missing, message):
    env = dict(ARRAY_TASK, AUTOMED_STORAGE="grpc://proxyhost:13000")
    del env[missing]
    done, calls = fake_slurm("worker.sbatch", **env)
    assert done.returncode != 0 and message in done.stderr and calls == []


def test_submit_creates_the_study_once_then_starts_one_task_per_gpu(fake_slurm):
    done, calls = fake_slurm("submit.sh", "--metric", "auroc", GPUS="64", DATA="/shared/x.npz",
                             STUDY="chest", AUTOMED_DB="postgresql://automed@dbhost/automed")
    assert done.returncode == 0, done.stderr
    [create, submit] = calls
    command, opts = _parse(create)
    assert command == "search" and opts["workers"] == 0 and opts["study"] == "chest"
    assert opts["storage"] == "postgresql://automed@dbhost/automed" and opts["metric"] == "auroc"
    assert submit[0] == "sbatch" and submit[1] == "--array=0-63"
    assert submit[-1] == str(SLURM / "worker.sbatch")
    assert "AUTOMED_STORAGE=postgresql://automed@dbhost/automed" in submit[2]


def test_submit_keeps_results_db_from_the_create_step_and_hands_it_to_the_workers(fake_slurm):
    # A QA read of the README: exported before submit.sh, $AUTOMED_RESULTS_DB made the create
    # step (--storage $AUTOMED_DB, no proxy) fail: automed refuses it without grpc://.
    done, calls = fake_slurm("submit.sh", GPUS="2", DATA="/shared/x.npz", STUDY="chest",
                             AUTOMED_DB="postgresql://automed@dbhost/automed",
                             AUTOMED_RESULTS_DB="postgresql://automed@dbhost/automed")
    assert done.returncode == 0, done.stderr
    assert [c[0] for c in calls] == ["automed", "sbatch"]
    assert _inherited(fake_slurm) == ["<unset>", "postgresql://automed@dbhost/automed"]


def test_submit_with_proxy_routes_the_workers_through_it(fake_slurm, tmp_path):
    done, calls = fake_slurm("submit.sh", GPUS="256", DATA="/shared/x.npz", STUDY="chest",
                             AUTOMED_DB="postgresql://automed@dbhost/automed", USE_PROXY="1")
    assert done.returncode == 0, done.stderr
    [proxy, create, submit] = calls
    assert proxy[0] == "sbatch" and proxy[-1] == str(SLURM / "proxy.sbatch")
    assert _parse(create)[1]["workers"] == 0  # created directly on the database, once
    assert submit[1] == "--array=0-255"
    exported = dict(item.split("=", 1) for item in submit[2].removeprefix("--export=")
                    .split(",")[1:])
    assert exported == {"STUDY": "chest", "AUTOMED_STORAGE": "grpc://node7:13000"}


def test_proxy_job_serves_the_database_and_publishes_its_address(fake_slurm, tmp_path):
    url_file = tmp_path / "proxy.url"
    done, calls = fake_slurm("proxy.sbatch", AUTOMED_DB="postgresql://automed@dbhost/automed",
                             AUTOMED_PROXY_FILE=str(url_file), AUTOMED_PROXY_THREADS="12")
    assert done.returncode == 0, done.stderr
    command, opts = _parse(calls[0][2:])
    assert command == "proxy" and opts["storage"] == "postgresql://automed@dbhost/automed"
    assert opts["host"] == "0.0.0.0" and opts["threads"] == 12
    assert re.fullmatch(r"grpc://\S+:13000", url_file.read_text().strip())


# -- Kubernetes ------------------------------------------------------------------------------
def _docs() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def _validate(doc: dict) -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="pip install kubernetes-validate (in automed[test])")
    kv.validate(doc, kv.latest_version(), strict=True)


@pytest.mark.parametrize("key", sorted(_docs()), ids=lambda k: f"{k[0]}/{k[1]}")
def test_manifest_is_valid_kubernetes(key):
    _validate(_docs()[key])


def test_the_validator_rejects_a_broken_manifest():
    kv = pytest.importorskip("kubernetes_validate")
    job = _docs()[("Job", "automed-workers")]
    broken = yaml.safe_load(yaml.safe_dump(job))
    broken["spec"]["completions"] = "sixty-four"
    with pytest.raises(kv.ValidationError):
        _validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(job))
    broken["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1  # not a field
    with pytest.raises(kv.ValidationError):
        _validate(broken)


def _argv(container: dict) -> list[str]:
    # Kubernetes expands $(VAR) from the container's env: stand in a value for each.
    return [re.sub(r"\$\((\w+)\)", lambda m: {"JOB_COMPLETION_INDEX": "5"}.get(
        m.group(1), f"<{m.group(1)}>"), arg) for arg in container["command"]]


def _service(docs: dict, url: str) -> dict:
    parts = urlsplit(url)
    service = docs[("Service", parts.hostname)]
    assert parts.port in [p["port"] for p in service["spec"]["ports"]], url
    return service


def test_workers_are_an_indexed_job_one_worker_per_gpu_through_the_proxy():
    docs = _docs()
    job = docs[("Job", "automed-workers")]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"]
    pod = job["spec"]["template"]["spec"]
    [worker] = pod["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    command, opts = _parse(_argv(worker))
    assert command == "worker" and opts["gpus"] == "0" and opts["trials_per_gpu"] == 1
    assert opts["index"] == 5  # the pod's completion index
    index_env = {e["name"]: e for e in worker["env"]}["JOB_COMPLETION_INDEX"]
    assert "job-completion-index" in index_env["valueFrom"]["fieldRef"]["fieldPath"]
    proxy_service = _service(docs, opts["storage"])  # grpc://automed-proxy:13000 exists
    proxy = docs[("Deployment", "automed-proxy")]
    assert proxy_service["spec"]["selector"] == proxy["spec"]["template"]["metadata"]["labels"]
    _, proxy_opts = _parse(_argv(proxy["spec"]["template"]["spec"]["containers"][0]))
    assert proxy_opts["port"] == proxy_service["spec"]["ports"][0]["targetPort"]
    assert proxy_opts["host"] == "0.0.0.0"
    # Workers wait for the study instead of creating it, and know only the proxy.
    [wait] = pod["initContainers"]
    assert f"automed show \"$STUDY\" --storage {opts['storage']}" in wait["command"][-1]
    assert opts["results_db"] is None and "AUTOMED_DB" not in str(pod)


def test_database_url_names_the_postgres_service_and_every_reference_resolves():
    docs = _docs()
    secret = docs[("Secret", "automed-db")]["stringData"]
    db = _service(docs, secret["AUTOMED_DB"])
    postgres = docs[("StatefulSet", "postgres")]
    assert db["spec"]["selector"] == postgres["spec"]["template"]["metadata"]["labels"]
    assert f"{secret['POSTGRES_USER']}:{secret['POSTGRES_PASSWORD']}@" in secret["AUTOMED_DB"]
    _, create = _parse(_argv(docs[("Job", "automed-create-study")]["spec"]["template"]["spec"]
                             ["containers"][0]))
    assert create["workers"] == 0 and create["storage"] == "<AUTOMED_DB>"
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    for kind, ref in (("Secret", r"secretKeyRef: \{name: ([\w-]+)"),
                      ("Secret", r"secretRef: \{name: ([\w-]+)"),
                      ("ConfigMap", r"configMapRef: \{name: ([\w-]+)"),
                      ("PersistentVolumeClaim", r"claimName: ([\w-]+)")):
        for name in re.findall(ref, text):
            assert (kind, name) in docs, f"{kind} {name} is referenced but not defined"
