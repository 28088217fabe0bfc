"""Byte-level lookup tables for DNA (no torch import; shared by the tokenizer, FASTA scanner and cache).

All tables are 256-entry numpy arrays indexed by a byte (``uint8``) so that translation of a whole
buffer is one vectorized ``table[buffer]`` gather, never a per-character Python loop.

Conventions (see ``genodiff/data/genome/vocab.py`` and DESIGN.md):

* ``A C G T`` (either case) -> ids ``7 8 9 10``; ``N`` -> ``11``.
* ``U`` (RNA uracil) is read as ``T``.
* IUPAC ambiguity codes ``R Y S W K M B D H V`` (either case) -> ``N`` (11); they are *counted* by the
  callers (see :data:`AMBIGUOUS_BYTES`) so the user can be told how many bases were collapsed.
* Any other byte is invalid: :data:`BYTE_TO_ID` maps it to :data:`INVALID` (255).
* Lower case (UCSC/Ensembl soft-masking, i.e. repeats) is uppercased by default; :data:`IS_LOWER`
  flags it so the soft-mask can be kept as a per-base weight.
"""

from __future__ import annotations

import numpy as np

from genodiff.data.genome.vocab import A_ID, C_ID, COMPLEMENT_MAP, G_ID, N_ID, T_ID, TOKENS, VOCAB_SIZE

#: every IUPAC nucleotide letter accepted in input (upper case; lower case is accepted too).
IUPAC_LETTERS = "ACGTURYSWKMBDHVN"
#: the ambiguity codes that collapse to N (N itself is not counted as "ambiguous").
AMBIGUITY_LETTERS = "RYSWKMBDHV"
#: marker for a byte that is not an IUPAC nucleotide letter.
INVALID = 255


def _either_case(table: np.ndarray, letters: str, values) -> np.ndarray:
    """Set ``table[byte] = value`` for the upper- and lower-case byte of each letter; returns ``table``."""
    for letter, value in zip(letters, values):
        table[ord(letter.upper())] = table[ord(letter.lower())] = value
    return table


#: ASCII byte -> token id (A C G T U N and the ambiguity codes in either case); :data:`INVALID` otherwise.
BYTE_TO_ID = _either_case(np.full(256, INVALID, dtype=np.uint8), "ACGTUN" + AMBIGUITY_LETTERS,
                          (A_ID, C_ID, G_ID, T_ID, T_ID, N_ID) + (N_ID,) * len(AMBIGUITY_LETTERS))

#: True for the bytes of ambiguity codes (R Y S W K M B D H V, either case).
AMBIGUOUS_BYTES = _either_case(np.zeros(256, dtype=bool), AMBIGUITY_LETTERS, [True] * len(AMBIGUITY_LETTERS))

#: True for lower-case (soft-masked) nucleotide letters.
IS_LOWER = np.zeros(256, dtype=bool)
for _letter in IUPAC_LETTERS:
    IS_LOWER[ord(_letter.lower())] = True

#: complement of a token id, extended to 256 entries (ids >= VOCAB_SIZE map to themselves).
COMPLEMENT_IDS = np.arange(256, dtype=np.uint8)
COMPLEMENT_IDS[:VOCAB_SIZE] = np.asarray(COMPLEMENT_MAP, dtype=np.uint8)

#: id -> ASCII byte for the nucleotide ids (specials map to '?', use the tokenizer to decode them).
ID_TO_BYTE = np.full(256, ord("?"), dtype=np.uint8)
for _i, _tok in enumerate(TOKENS):
    if len(_tok) == 1:
        ID_TO_BYTE[_i] = ord(_tok)

_COMPLEMENT_PAIRS = {
    "A": "T", "T": "A", "U": "A", "C": "G", "G": "C", "R": "Y", "Y": "R", "S": "S", "W": "W",
    "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D", "N": "N",
}
_comp_from = "".join(_COMPLEMENT_PAIRS) + "".join(_COMPLEMENT_PAIRS).lower()
_comp_to = "".join(_COMPLEMENT_PAIRS.values()) + "".join(_COMPLEMENT_PAIRS.values()).lower()
#: ``str.translate`` table: IUPAC complement, case preserved; other characters unchanged.
STR_COMPLEMENT = str.maketrans(_comp_from, _comp_to)
#: ``bytes.translate`` table with the same mapping.
BYTES_COMPLEMENT = bytes.maketrans(_comp_from.encode(), _comp_to.encode())

# ------------------------------------------------------------------------------------ 2-bit base codes
# Statistics (k-mer spectra, Markov chains) use 2-bit codes A0 C1 G2 T3, with -1 for anything else; a
# k-mer's index is ``sum_i code_i 4^(k-1-i)`` (first base most significant).

#: the four bases in code order.
BASES = "ACGT"
#: code -> upper-case ASCII byte (``BASE4_TO_BYTE[code] | 0x20`` is the lower-case letter).
BASE4_TO_BYTE = ID_TO_BYTE[A_ID:T_ID + 1].copy()
#: ASCII byte -> code: ``A C G T`` in either case -> 0..3; every other byte (``U``, ``N``, IUPAC codes) -> -1.
BYTE_TO_BASE4 = _either_case(np.full(256, -1, dtype=np.int8), BASES, range(4))


def ids_to_base4(ids: np.ndarray) -> np.ndarray:
    """Token ids (any integer dtype and shape) -> int8 codes: A7 C8 G9 T10 -> 0..3, anything else -> -1."""
    ids = np.asarray(ids)
    codes = ids.astype(np.int16) - A_ID
    codes[(ids < A_ID) | (ids > T_ID)] = -1
    return codes.astype(np.int8)


def reverse_complement_base4(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of a run of codes (``3 - code``; -1 stays -1), a new array of the same dtype."""
    codes = np.asarray(codes)
    return np.where(codes >= 0, 3 - codes, codes).astype(codes.dtype, copy=False)[::-1].copy()


def kmer_index(codes: np.ndarray, k: int, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 index of every k-mer along the last axis of ``codes`` (2-bit codes, -1 = not A/C/G/T).

    Returns ``(index, valid)``, both of shape ``(..., L - k + 1)`` (empty when ``L < k``): ``index`` in
    ``dtype`` (k-mers touching a -1 get an index computed with 0 in its place), ``valid`` True where all
    ``k`` codes are A/C/G/T.
    """
    codes = np.asarray(codes)
    n = codes.shape[-1] - k + 1
    if n <= 0:
        shape = codes.shape[:-1] + (0,)
        return np.zeros(shape, dtype), np.zeros(shape, bool)
    index = np.zeros(codes.shape[:-1] + (n,), dtype)
    valid = np.ones(codes.shape[:-1] + (n,), bool)
    for j in range(k):
        window = codes[..., j:j + n]
        ok = window >= 0
        valid &= ok
        index = index * 4 + np.where(ok, window, 0)
    return index, valid


def count_ambiguous(raw: np.ndarray) -> dict:
    """``{code: count}`` of the IUPAC ambiguity codes (upper case; N excluded) in ``raw`` (np.uint8 bytes)."""
    amb = AMBIGUOUS_BYTES[raw]
    if not amb.any():
        return {}
    vals, counts = np.unique(raw[amb], return_counts=True)
    out: dict = {}
    for v, c in zip(vals.tolist(), counts.tolist()):
        out[chr(v).upper()] = out.get(chr(v).upper(), 0) + int(c)
    return out


def describe_byte(b: int) -> str:
    """Human-readable form of a byte for error messages (``'X'``, ``' '``, ``'\\t'``, ``byte 0x00``)."""
    if 32 <= b < 127 or b in (9, 10, 11, 12, 13):
        return repr(chr(b))
    return f"byte 0x{b:02x}"
