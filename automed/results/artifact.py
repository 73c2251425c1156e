"""The model artifact: weights without pickle, plus what rebuilds and feeds the model.

A folder holding ``model.safetensors`` (the state dict) and ``automed_model.json`` (format
version, architecture name and params, spec, classes, fitted preprocessing state, the loader
options the data was read with, and the search's scores and manifest). Loading rebuilds the
architecture through the plugin manager by name, so the plugin must be installed, and never
unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy.engine import make_url

from automed.data.preprocess import PREPROCESSORS, Preprocessor
from automed.errors import DataError, PluginError
from automed.spec import Spec

FORMAT = "automed-model/1"
WEIGHTS = "model.safetensors"
CONFIG = "automed_model.json"


def artifact_folder_name(study: str) -> str:
    """A folder name of its own for every study name, always one path component.

    Readable part plus a hash of the exact name: ``"p q"`` and ``"p_q"`` get different
    folders, and ``..`` or ``.`` can never point outside the artifacts directory.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", study).strip("_")[:60] or "study"
    digest = hashlib.blake2b(study.encode("utf-8"), digest_size=4).hexdigest()
    return f"{slug}-{digest}"


def default_dir(storage_url: str, study: str, root: str | Path | None = None) -> Path:
    """``root/<study>``; without ``root``, ``automed_models/<study>`` beside a SQLite file."""
    safe = artifact_folder_name(study)
    if root is not None:
        return Path(root).expanduser().resolve() / safe
    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).expanduser().resolve().parent / "automed_models" / safe
    return Path.cwd() / "automed_models" / safe


def save_artifact(folder: Path, model: torch.nn.Module, preprocessor: Preprocessor,
                  info: dict) -> Path:
    """Write weights and config to ``folder``; ``info`` holds architecture, params, spec, ..."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    # save_model (not save_file) de-duplicates tied weights, which safetensors refuses.
    save_model(model.cpu(), str(folder / WEIGHTS))
    config = {"format": FORMAT, **info,
              "preprocessor": {"modality": preprocessor.modality,
                               "state": preprocessor.state()}}
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    return folder


class LoadedModel:
    """A rebuilt model with its preprocessing: ``predict_proba(x)`` on raw samples."""

    def __init__(self, folder: str | Path) -> None:
        from safetensors.torch import load_model

        from automed.plugin_manager import get_plugin_manager

        self.folder = Path(folder)
        path = self.folder / CONFIG
        if not path.is_file():
            raise DataError(f"{self.folder}: no {CONFIG}; not an automed model folder")
        self.config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if self.config.get("format") != FORMAT:
            raise DataError(f"{path}: format {self.config.get('format')!r}, expected {FORMAT}")
        self.spec = Spec.from_dict(self.config["spec"])
        self.classes: list[str] = self.config["classes"]
        self.members: list[tuple[float, LoadedModel]] = []
        if self.config.get("ensemble"):
            # An ensemble: each member is a complete artifact in its own sub-folder.
            for m in self.config["ensemble"]["members"]:
                sub = (self.folder / m["folder"]).resolve()
                if sub.parent != self.folder.resolve():
                    raise DataError(f"{path}: member folder {m['folder']!r} is not inside "
                                    "the model folder; the artifact was edited")
                self.members.append((float(m["weight"]), LoadedModel(sub)))
            self.model = self.preprocessor = None
            return
        name = self.config["architecture"]
        archs = get_plugin_manager().architectures()
        if name not in archs:
            raise PluginError(
                f"the model needs architecture {name!r}, which no installed plugin provides "
                f"(installed: {', '.join(sorted(archs))})"
            )
        self.model = archs[name].build(self.config["params"], self.spec)
        load_model(self.model, str(self.folder / WEIGHTS), strict=True)
        self.model.eval()
        pre = self.config["preprocessor"]
        self.preprocessor = PREPROCESSORS[pre["modality"]].from_state(pre["state"])

    def predict_proba(self, x: Any, device: str | torch.device = "cpu") -> np.ndarray:
        from automed.searching.training import predict_proba

        if self.members:
            return sum(w * m.predict_proba(x, device=device) for w, m in self.members)

        shape = getattr(x, "shape", None)
        if shape is not None and tuple(shape[1:]) != tuple(self.spec.input_shape):
            raise DataError(
                f"samples have shape {tuple(shape[1:])} but the model expects "
                f"{tuple(self.spec.input_shape)}; resize the data like the training data"
            )
        return predict_proba(self.model, self.preprocessor.transform(x), device=device)
