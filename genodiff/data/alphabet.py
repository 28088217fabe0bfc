"""Byte-level lookup tables for DNA (no torch import; shared by the tokenizer, FASTA scanner and cache).

All tables are 256-entry numpy arrays indexed by a byte (``uint8``) so that translation of a whole
buffer is one vectorized ``table[buffer]`` gather, never a per-character Python loop.

Conventions (see ``genodiff/data/vocab.py`` and DESIGN.md):

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

from .vocab import A_ID, C_ID, COMPLEMENT_MAP, G_ID, N_ID, T_ID, TOKENS, VOCAB_SIZE

#: every IUPAC nucleotide letter accepted in input (upper case; lower case is accepted too).
IUPAC_LETTERS = "ACGTURYSWKMBDHVN"
#: the ambiguity codes that collapse to N (N itself is not counted as "ambiguous").
AMBIGUITY_LETTERS = "RYSWKMBDHV"
#: marker for a byte that is not an IUPAC nucleotide letter.
INVALID = 255

BYTE_TO_ID = np.full(256, INVALID, dtype=np.uint8)
for _letter, _id in (("A", A_ID), ("C", C_ID), ("G", G_ID), ("T", T_ID), ("U", T_ID), ("N", N_ID)):
    BYTE_TO_ID[ord(_letter)] = _id
    BYTE_TO_ID[ord(_letter.lower())] = _id
for _letter in AMBIGUITY_LETTERS:
    BYTE_TO_ID[ord(_letter)] = N_ID
    BYTE_TO_ID[ord(_letter.lower())] = N_ID

#: True for the bytes of ambiguity codes (R Y S W K M B D H V, either case).
AMBIGUOUS_BYTES = np.zeros(256, dtype=bool)
for _letter in AMBIGUITY_LETTERS:
    AMBIGUOUS_BYTES[ord(_letter)] = True
    AMBIGUOUS_BYTES[ord(_letter.lower())] = True

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


def describe_byte(b: int) -> str:
    """Human-readable form of a byte for error messages (``'X'``, ``' '``, ``'\\t'``, ``byte 0x00``)."""
    if 32 <= b < 127 or b in (9, 10, 11, 12, 13):
        return repr(chr(b))
    return f"byte 0x{b:02x}"
