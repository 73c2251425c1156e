"""Biological alphabets: detection (DNA, RNA, protein) and IUPAC ambiguity codes.

Symbols are listed in a fixed order; a sequence is encoded as ids ``1..len(symbols)`` in that
order, 0 being padding. Models learn about ambiguity from ``IUPAC`` (which bases a code means).
"""

from __future__ import annotations

from collections.abc import Sequence

from automed.errors import DataError

# Unambiguous bases first, then the IUPAC ambiguity codes, N (any base) last.
DNA = "ACGTRYSWKMBDHVN"
RNA = "ACGURYSWKMBDHVN"
# The 20 standard amino acids, then B (D/N), Z (E/Q), J (I/L), U (Sec), O (Pyl), X (any).
PROTEIN = "ACDEFGHIKLMNPQRSTVWYBZJUOX"
ALPHABETS = {"dna": DNA, "rna": RNA, "protein": PROTEIN}

IUPAC = {
    "A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "R": "AG", "Y": "CT", "S": "CG",
    "W": "AT", "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG",
    "N": "ACGT",
}
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "U": "A", "R": "Y", "Y": "R", "S": "S",
              "W": "W", "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D", "N": "N"}

_NUCLEOTIDE_CORE = set("ACGTUN")
_NUCLEOTIDE_CODES = set(DNA) | set(RNA)


def _looks_nucleotide(seq: str) -> bool:
    # Proteins use A, C, G, T and N too, so those letters prove nothing: a nucleotide sequence
    # uses only IUPAC nucleotide codes, mostly unambiguous bases. Letters such as E, F, L, P
    # or Q (or many ambiguity codes) mean protein.
    # Gaps, digits and '*' are judged later, as characters outside the alphabet.
    letters = [c for c in seq if c.isalpha()]
    return (all(c in _NUCLEOTIDE_CODES for c in letters)
            and sum(c in _NUCLEOTIDE_CORE for c in letters) >= 0.5 * len(letters))


# A protein this long never reads as DNA/RNA by chance (70 % of the amino acids' letters are
# nucleotide codes: 0.7 ** 30 < 3e-5); a short peptide often does (SCNNMCARS).
SURE_LENGTH = 30
NUCLEOTIDE_FILE = 0.9  # share of A, C, G, T, U, N among all letters of a DNA/RNA file


def _one_kind(seqs: Sequence[str], kinds: list[bool]) -> list[bool]:
    """One kind for a file whose sequences look like both, where its letters decide: DNA/RNA
    when nearly all of them are bases (then a stray protein letter is named as such), protein
    when every sequence that looks like DNA/RNA is too short to tell (QA: 500 random 9-mer
    epitopes were refused as mixed, 14 of the 20 amino acids' letters being nucleotide
    codes). Otherwise ``kinds`` as they are: a mixture."""
    letters = [c for s in seqs for c in s if c.isalpha()]
    if letters and sum(c in _NUCLEOTIDE_CORE for c in letters) >= NUCLEOTIDE_FILE * len(letters):
        return [True] * len(seqs)
    if all(len(s) < SURE_LENGTH for s, k in zip(seqs, kinds) if k):
        return [False] * len(seqs)
    return kinds


def detect_alphabet(seqs: Sequence[str], source: str, rows: Sequence[str] | None = None) -> str:
    """``"dna"``, ``"rna"`` or ``"protein"`` for upper-case ``seqs``; DataError on mixtures.

    ``rows`` names each sequence in error messages (``"line 12"``, ``"record seq7"``).
    """
    where = rows or [f"sequence {i + 1}" for i in range(len(seqs))]
    kinds = [_looks_nucleotide(s) for s in seqs]
    if any(kinds) and not all(kinds):
        kinds = _one_kind(seqs, kinds)
    if any(kinds) and not all(kinds):
        nuc = next(i for i, k in enumerate(kinds) if k and len(seqs[i]) >= SURE_LENGTH)
        prot = kinds.index(False)
        raise DataError(
            f"{source}: mixed alphabets: {where[nuc]} looks like DNA/RNA but {where[prot]} "
            "like protein; keep one kind of sequence per file"
        )
    if not kinds[0]:
        alphabet = "protein"
    else:
        t = next((i for i, s in enumerate(seqs) if "T" in s), None)
        u = next((i for i, s in enumerate(seqs) if "U" in s), None)
        if t is not None and u is not None:
            raise DataError(
                f"{source}: mixed alphabets: {where[t]} has T (DNA) but {where[u]} has U (RNA); "
                "convert U to T (or T to U) throughout"
            )
        alphabet = "rna" if u is not None else "dna"
    allowed = set(ALPHABETS[alphabet])
    for i, s in enumerate(seqs):
        bad = next((j for j, c in enumerate(s) if c not in allowed), None)
        if bad is not None:
            raise DataError(
                f"{source}: {where[i]}: character {s[bad]!r} at position {bad + 1} is not in the "
                f"{alphabet.upper()} alphabet ({ALPHABETS[alphabet]}); remove gaps and stray "
                "characters or use N/X for unknown residues"
            )
    return alphabet
