"""The real thing: automed's wheel and the example plugin installed into a fresh environment.

The venv sees the system's site-packages (torch, optuna, setuptools) but not this checkout:
automed is installed from a wheel built here, the plugin package from ``examples/``.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from automed.demo import make_demo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# Folders the wheel installs under another name (pyproject's package-dir).
PACKAGE_DIRS = {"automed": "automed", "plugins": "automed.plugins", "storage": "automed.storage"}
SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                              "*.db", ".pytest_cache", ".ruff_cache")


def _run(args: list, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTOMED_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("fresh")
    # No pip of its own: this interpreter's pip and setuptools (>= 70, bdist_wheel built in)
    # serve. The new env sees the site-packages of the interpreter running the tests, not the
    # base interpreter's (system_site_packages would): in a fresh venv made as the README says,
    # the base interpreter has an old setuptools without bdist_wheel, and no torch.
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(tmp / "env")
    python = tmp / "env" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "_parent_site.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n")
    # Build from copies: an in-tree build leaves build/ folders whose stale files leak.
    src = shutil.copytree(REPO, tmp / "automed-src", ignore=shutil.ignore_patterns(
        "examples", ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "*.db",
        ".pytest_cache", ".ruff_cache", "tests", "benchmarks"))
    plugin = shutil.copytree(REPO / "examples" / "automed-tcn", tmp / "automed-tcn",
                             ignore=SKIP)
    _run([python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", tmp / "wheels", src], cwd=tmp)
    [wheel] = (tmp / "wheels").glob("automed-*.whl")
    # --ignore-installed: an automed of the same version in the parent site-packages (a
    # non-editable install) made pip skip the wheel (QA: no env/bin/automed); nothing there
    # is uninstalled.
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
          "--ignore-installed", "-q", wheel, plugin], cwd=tmp)
    return {"tmp": tmp, "python": python, "bin": tmp / "env" / "bin", "wheel": wheel}


def test_wheel_contains_every_package_and_file(env):
    names = set(zipfile.ZipFile(env["wheel"]).namelist())
    for folder, package in PACKAGE_DIRS.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(REPO / folder).as_posix()
            assert f"{package.replace('.', '/')}/{relative}" in names, f"{path} not in wheel"


def test_installed_plugin_is_listed_and_competes(env):
    tmp, bin_ = env["tmp"], env["bin"]
    listing = json.loads(_run([bin_ / "automed", "plugins", "list", "--json"], cwd=tmp).stdout)
    [tcn] = [p for p in listing if p["name"] == "tcn"]
    assert tcn["version"] == "0.1.0" and tcn["error"] is None
    assert tcn["module"] == "automed_tcn"  # the entry point, not a path into this checkout
    assert tcn["architectures"][0]["name"] == "tcn"
    assert tcn["architectures"][0]["modalities"] == ["signal"]

    make_demo("signal", tmp / "d.npz", n=80)  # what `automed demo` writes; saves a process
    storage = f"sqlite:///{tmp / 'runs.db'}"
    out = _run([bin_ / "automed", "search", tmp / "d.npz", "--arch", "tcn", "--trials", "2",
                "--folds", "2", "--no-prune", "--storage", storage, "--json", "-q"],
               cwd=tmp).stdout  # --no-prune: both candidates complete and are listed
    board = json.loads(out)["leaderboard"]
    assert len(board) == 2 and {row["architecture"] for row in board} == {"tcn"}
