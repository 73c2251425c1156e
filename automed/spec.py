"""What an architecture needs to know about the data, and nothing more."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODALITIES = ("image", "signal", "text", "biosequence", "tabular")


@dataclass(frozen=True)
class Spec:
    """The shape of the problem an architecture must solve.

    ``input_shape`` is the per-sample shape of the tensor the model receives, after
    preprocessing: ``(channels, height, width)`` for images, ``(channels, length)`` for signals,
    ``(length,)`` of token ids for text and biosequences, ``(features,)`` for tabular records.
    Token inputs are ``int64`` with 0 as padding; everything else is ``float32``.
    The model returns logits of shape ``(batch, n_classes)``.
    """

    modality: str
    input_shape: tuple[int, ...]
    n_classes: int
    vocab_size: int | None = None  # token modalities: ids are in [0, vocab_size), 0 = padding
    alphabet: str | None = None  # biosequences: "dna", "rna" or "protein"
    extra: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def length(self) -> int:
        """Sequence length for signals and token inputs."""
        return self.input_shape[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Spec:
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)
