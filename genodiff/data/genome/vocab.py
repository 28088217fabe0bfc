"""Caduceus-compatible DNA vocabulary (see DESIGN.md).

Token ids: ``[CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11``.
Complement: A<->T, C<->G, N->N, special tokens map to themselves.
"""

from __future__ import annotations

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
NUCLEOTIDES = ("A", "C", "G", "T", "N")
TOKENS = SPECIAL_TOKENS + NUCLEOTIDES
VOCAB_SIZE = len(TOKENS)  # 12

CLS_ID, SEP_ID, BOS_ID, MASK_ID, PAD_ID, RESERVED_ID, UNK_ID = range(7)
A_ID, C_ID, G_ID, T_ID, N_ID = 7, 8, 9, 10, 11

#: ids a DNA denoiser may put mass on (never [MASK] or specials).
DNA_IDS = (A_ID, C_ID, G_ID, T_ID)
#: DNA ids including the ambiguity code N.
DNA_IDS_WITH_N = (A_ID, C_ID, G_ID, T_ID, N_ID)

#: complement_map[i] is the id of the complement of token i.
COMPLEMENT_MAP = tuple({A_ID: T_ID, T_ID: A_ID, C_ID: G_ID, G_ID: C_ID}.get(i, i) for i in range(VOCAB_SIZE))
