"""Pretrained Hugging Face ``transformers`` encoders for text, fine-tuned or frozen.

An optional built-in: ``pip install "automed[hf]"``, then ``--architectures hf`` (or
``--plugin automed.plugins.hf``). It is never part of a default search.

The family reads the raw strings through the model's own tokenizer: it declares a
preprocessor of its own (:class:`HFTokens`), which the search fits per fold, caches for every
trial of the family and saves with the model, as it does the shared word vocabulary of the
other text families. The model is a pretrained encoder with a dropout + linear head on the
``[CLS]`` position or the mean of the real tokens; ``freeze`` trains the head alone.

Models load offline only (``local_files_only``, ``HF_HUB_OFFLINE=1``): from a local folder, or
from the Hugging Face cache. ``AUTOMED_HF_MODEL`` names the model (default
:data:`DEFAULT_MODEL`); ``AUTOMED_HF_MAX_LENGTH`` caps the tokens per text (default 256).
A saved model carries the tokenizer (its ``tokenizer.json``) and the encoder's config, and its
weights are the fine-tuned ones, so predicting needs ``transformers`` but no download or cache.
Another model is another family: ``register(HFEncoder("pubmedbert", model="/models/pubmedbert"))``
in a plugin of your own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from automed.architecture import Architecture
from automed.data.preprocess import Preprocessor
from automed.errors import ConfigError
from automed.hookspecs import hookimpl
from automed.spec import Spec

DEFAULT_MODEL = "distilbert-base-uncased"
MODEL_ENV = "AUTOMED_HF_MODEL"
LENGTH_ENV = "AUTOMED_HF_MAX_LENGTH"
MAX_LENGTH = 256  # tokens per text, unless AUTOMED_HF_MAX_LENGTH says otherwise
EVAL_CHUNK = 64  # texts per forward pass when predicting
INSTALL = 'the hf family needs Hugging Face transformers; install it with pip install "automed[hf]"'


def _transformers() -> Any:
    """The ``transformers`` module, offline; a one-line ConfigError when it is missing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network from a search
    try:
        import transformers
    except ImportError:
        raise ConfigError(INSTALL) from None
    # automed reports progress itself; a progress bar per loaded checkpoint is noise.
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(INSTALL) from None
    return tokenizers


def _missing(model: str, what: str, exc: BaseException) -> ConfigError:
    """One line: which model, what is missing, and the two fixes."""
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    folder = "a local folder holding config.json, the weights and the tokenizer"
    path = Path(model).expanduser()
    if path.is_dir():
        return ConfigError(f"hf model folder {model!r} has no usable {what} ({first}); give "
                           f"{MODEL_ENV} {folder} (save_pretrained writes one)")
    if path.is_absolute() or model.startswith((".", "~")):
        return ConfigError(f"hf model folder {model!r} does not exist; set {MODEL_ENV} to "
                           f"{folder}, or to a hub name downloaded with `hf download NAME`")
    return ConfigError(
        f"hf model {model!r}: no {what} in the Hugging Face cache, and automed loads models "
        f"offline only; download it once with `hf download {model}` (or `huggingface-cli "
        f"download {model}`), or set {MODEL_ENV} to {folder}")


def resolve_model(model: str) -> str:
    """A local folder as an absolute path (so every process agrees); a hub name unchanged."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def load_tokenizer(model: str) -> Any:
    tf = _transformers()
    try:
        tok = tf.AutoTokenizer.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise _missing(model, "tokenizer", exc) from None
    if getattr(tok, "backend_tokenizer", None) is None:
        raise ConfigError(f"hf model {model!r} has no fast (tokenizer.json) tokenizer, which "
                          "the hf family needs; pick a model that ships one")
    if tok.pad_token_id is None:
        raise ConfigError(f"hf model {model!r}: its tokenizer has no padding token; pick an "
                          "encoder model (BERT, RoBERTa, DeBERTa, ...)")
    return tok


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def check_weights(model: str) -> None:
    """Fail before the search starts, not in every candidate, when the weights are missing."""
    path = Path(model)
    if path.is_dir():
        found = any((path / name).is_file() for name in WEIGHT_FILES)
    else:
        from huggingface_hub import try_to_load_from_cache

        found = any(isinstance(try_to_load_from_cache(model, name), str)
                    for name in WEIGHT_FILES)
    if not found:
        raise _missing(model, "weights", FileNotFoundError(
            f"none of {', '.join(WEIGHT_FILES)}"))


def load_config(model: str) -> Any:
    tf = _transformers()
    try:
        return tf.AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise _missing(model, "config", exc) from None


def _length_cap() -> int:
    raw = os.environ.get(LENGTH_ENV, "")
    try:
        cap = int(raw) if raw else MAX_LENGTH
    except ValueError:
        cap = 0
    if cap < 8:
        raise ConfigError(f"{LENGTH_ENV}={raw!r} is not a whole number of tokens >= 8")
    return cap


class HFTokens(Preprocessor):
    """Raw strings -> the model's token ids ``(n, length)``, right-padded with its pad id.

    Nothing is fitted per fold (the tokenizer is pretrained); the padded length (95th
    percentile of the training texts' token counts, capped by the model's positions and
    ``AUTOMED_HF_MAX_LENGTH``) is decided once per dataset, like the word vocabulary's.
    """

    modality = "text"

    def __init__(self, model: str = "") -> None:
        self.model = model
        self.length = 0
        self.pad_id = 0
        self.tokenizer_json = ""
        self._backend: Any = None

    @property
    def key(self) -> str:
        return f"hf:{self.model}"

    def _layout(self, dataset: Any) -> dict:
        slot = f"hf_layout:{self.model}"
        if slot not in dataset.meta:
            tok = load_tokenizer(self.model)
            config = load_config(self.model)
            check_weights(self.model)
            counts = [len(ids) for ids in tok(list(map(str, dataset.x)))["input_ids"]]
            positions = int(getattr(config, "max_position_embeddings", 0) or 0)
            # RoBERTa-style models number positions after the padding id: 514 for 512 tokens.
            cap = min(_length_cap(), positions - 2 if positions > 512 else positions or 10**6)
            want = -(-int(np.percentile(counts, 95)) // 8) * 8
            dataset.meta[slot] = {
                "length": int(max(8, min(cap, want))), "vocab_size": len(tok),
                "pad_id": int(tok.pad_token_id), "config": config.to_dict(),
                "tokenizer": tok.backend_tokenizer.to_str()}
        return dataset.meta[slot]

    def spec(self, dataset: Any) -> Spec:
        lay = self._layout(dataset)
        return Spec("text", (lay["length"],), dataset.n_classes, vocab_size=lay["vocab_size"],
                    extra={"hf_model": self.model, "hf_config": lay["config"],
                           "pad_id": lay["pad_id"]})

    def fit(self, dataset: Any) -> HFTokens:
        lay = self._layout(dataset)
        self.length, self.pad_id = lay["length"], lay["pad_id"]
        self.tokenizer_json = lay["tokenizer"]
        self._backend = None
        return self

    def _tokenizer(self) -> Any:
        if self._backend is None:
            backend = _tokenizers().Tokenizer.from_str(self.tokenizer_json)
            backend.enable_truncation(max_length=self.length)
            pad = backend.id_to_token(self.pad_id) or "[PAD]"
            backend.enable_padding(length=self.length, pad_id=self.pad_id, pad_token=pad)
            self._backend = backend
        return self._backend

    def transform(self, x: Any) -> torch.Tensor:
        encoded = self._tokenizer().encode_batch([str(t) for t in x])
        ids = np.array([e.ids for e in encoded], dtype=np.int64).reshape(-1, self.length)
        return torch.from_numpy(ids)

    def state(self) -> dict:
        return {"model": self.model, "length": self.length, "pad_id": self.pad_id,
                "tokenizer": self.tokenizer_json}

    @classmethod
    def from_state(cls, state: dict) -> HFTokens:
        obj = cls(str(state["model"]))
        obj.length, obj.pad_id = int(state["length"]), int(state["pad_id"])
        obj.tokenizer_json = str(state["tokenizer"])
        return obj


class HFClassifierModel(nn.Module):
    """A pretrained encoder, a pooling of its last hidden states, dropout and a linear head."""

    def __init__(self, encoder: nn.Module, params: dict[str, Any], spec: Spec) -> None:
        super().__init__()
        self.encoder = encoder
        self.pad_id = int(spec.extra.get("pad_id", 0))
        self.pooling = str(params.get("pooling", "cls"))
        self.frozen = bool(params.get("freeze", False))
        if self.frozen:
            self.encoder.requires_grad_(False)
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Sequential(nn.Dropout(float(params.get("dropout", 0.1))),
                                  nn.Linear(hidden, spec.n_classes))

    def train(self, mode: bool = True) -> HFClassifierModel:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # a frozen encoder is a fixed feature extractor: no dropout
        return self

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and len(ids) > EVAL_CHUNK:
            # automed predicts 1024 samples at a time, too many for a transformer's attention
            return torch.cat([self(part) for part in ids.split(EVAL_CHUNK)])
        ids = ids.long()
        mask = (ids != self.pad_id).long()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        else:
            pooled = hidden[:, 0]
        return self.head(pooled.float())


class HFEncoder(Architecture):
    """A pretrained Hugging Face encoder; ``model`` is a hub name or a local folder (default:
    ``AUTOMED_HF_MODEL``, else :data:`DEFAULT_MODEL`)."""

    modalities = frozenset({"text"})

    def __init__(self, name: str = "hf", model: str | None = None) -> None:
        self.name = name
        self._model = model
        self.description = ("pretrained Hugging Face transformers encoder (offline: a local "
                            f"folder or the HF cache; {MODEL_ENV}), fine-tuned or frozen, "
                            "CLS or mean pooling")

    @property
    def model(self) -> str:
        return resolve_model(self._model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL)

    def preprocessor(self, modality: str) -> HFTokens:
        return HFTokens(self.model)

    def search_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        return {
            "freeze": trial.suggest_categorical("freeze", [False, True]),
            "pooling": trial.suggest_categorical("pooling", ["cls", "mean"]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        }

    def training_space(self, trial: Any, spec: Spec) -> dict[str, Any]:
        # Asking for "freeze" again returns the value search_space drew for this trial: a
        # frozen encoder trains its head alone, at head-sized learning rates and for longer.
        frozen = trial.suggest_categorical("freeze", [False, True])
        return {
            "optimizer": "adamw",
            "lr": (trial.suggest_float("lr", 3e-4, 1e-2, log=True) if frozen
                   else trial.suggest_float("lr", 1e-5, 2e-4, log=True)),
            "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 0.01]),
            "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
            "epochs": (trial.suggest_int("epochs", 4, 20) if frozen
                       else trial.suggest_int("epochs", 2, 6)),
            "label_smoothing": trial.suggest_categorical("label_smoothing", [0.0, 0.1]),
            "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
            "sampler": "shuffle",
        }

    def default_params(self, spec: Spec) -> dict[str, Any]:
        # The usual fine-tuning recipe (Devlin et al. 2019): a few epochs at 2e-5 .. 5e-5.
        return {"freeze": False, "pooling": "cls", "dropout": 0.1, "optimizer": "adamw",
                "lr": 5e-5, "weight_decay": 0.01, "batch_size": 16, "epochs": 3,
                "label_smoothing": 0.0, "class_weight": "none", "sampler": "shuffle"}

    def priority(self, spec: Spec) -> int:
        return 60  # the slowest text family by far

    def _encoder_name(self, spec: Spec) -> str:
        return str(spec.extra.get("hf_model") or self.model)

    def build(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        tf = _transformers()
        model = self._encoder_name(spec)
        try:
            encoder = tf.AutoModel.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise _missing(model, "weights", exc) from None
        return HFClassifierModel(encoder, params, spec)

    def rebuild(self, params: dict[str, Any], spec: Spec) -> nn.Module:
        # The saved config, not the pretrained weights: the artifact's weights replace them.
        tf = _transformers()
        config = dict(spec.extra["hf_config"])
        encoder = tf.AutoModel.from_config(tf.AutoConfig.for_model(**config))
        return HFClassifierModel(encoder, params, spec)


@hookimpl
def register_architectures(register):
    register(HFEncoder())
