"""Caduceus-compatible DNA tokenizer (character level, vectorized with byte lookup tables).

Ids (``genodiff/data/genome/vocab.py``): ``[CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11``.

Policies:

* **Case**: input is uppercased (ids are case-insensitive). The soft-mask (lower case = repeats in
  UCSC/Ensembl FASTA) can be kept as a per-base weight: :meth:`DNATokenizer.softmask` /
  :meth:`DNATokenizer.softmask_weights`, or ``encode(..., return_softmask=True)``.
* **IUPAC ambiguity codes** ``R Y S W K M B D H V`` map to ``N``; they are counted
  (:meth:`DNATokenizer.count_ambiguous`, ``encode(..., return_stats=True)``) and a running total is
  kept in :attr:`DNATokenizer.ambiguous_counts` so callers can report them. ``U`` is read as ``T``.
* **Invalid characters** (anything else): ``on_invalid="raise"`` (default, :class:`InputError`),
  ``"unk"`` (-> ``[UNK]``) or ``"n"`` (-> ``N``).
* **Reverse complement**: :func:`reverse_complement` for strings (IUPAC-aware, case preserved) and
  :func:`reverse_complement_ids` for id arrays / tensors (lookup table on the last axis; specials map
  to themselves). Both are involutions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import torch

from genodiff.data.genome.alphabet import (
    BYTE_TO_ID,
    BYTES_COMPLEMENT,
    COMPLEMENT_IDS,
    ID_TO_BYTE,
    INVALID,
    IS_LOWER,
    STR_COMPLEMENT,
    count_ambiguous,
    describe_byte,
)
from genodiff.data.genome.vocab import N_ID, PAD_ID, SEP_ID, TOKENS, UNK_ID, VOCAB_SIZE
from genodiff.errors import InputError

SeqLike = Union[str, bytes, bytearray, memoryview, np.ndarray]

_COMPLEMENT_TORCH = torch.as_tensor(COMPLEMENT_IDS.astype(np.int64))


def _as_bytes(seq: SeqLike) -> np.ndarray:
    """View a sequence as np.uint8 ASCII bytes (no per-character Python)."""
    if isinstance(seq, str):
        try:
            b = seq.encode("ascii")
        except UnicodeEncodeError:
            bad = next(ch for ch in seq if ord(ch) > 127)
            raise InputError(f"non-DNA character {bad!r} in sequence (allowed: IUPAC nucleotide letters)") from None
        return np.frombuffer(b, dtype=np.uint8)
    if isinstance(seq, np.ndarray):
        if seq.dtype != np.uint8:
            raise TypeError(f"expected an np.uint8 byte array, got {seq.dtype}")
        return seq
    return np.frombuffer(bytes(seq), dtype=np.uint8)


@dataclass
class EncodeStats:
    """Counts from one encode call: ambiguity codes collapsed to N (upper-case code -> count),
    soft-masked (lower-case) bases and invalid characters replaced (when ``on_invalid != "raise"``)."""

    ambiguous: dict = field(default_factory=dict)
    lower: int = 0
    invalid: int = 0

    @property
    def n_ambiguous(self) -> int:
        return sum(self.ambiguous.values())


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (IUPAC-aware, case preserved, other characters kept)."""
    if isinstance(seq, (bytes, bytearray)):
        return bytes(seq).translate(BYTES_COMPLEMENT)[::-1]
    return seq.translate(STR_COMPLEMENT)[::-1]


def reverse_complement_ids(ids, dim: int = -1):
    """Reverse complement token ids along ``dim`` (default: last axis).

    Works on np.ndarray (any integer dtype, returns the same dtype) and torch tensors (same dtype and
    device). Specials ([PAD], [MASK], ...) map to themselves, so for a right-padded batch the padding
    moves to the front: RC each sequence before padding, or use :func:`reverse_complement_padded`.
    """
    if isinstance(ids, torch.Tensor):
        table = _COMPLEMENT_TORCH.to(ids.device)
        out = table[ids.long()].flip(dim)
        return out.to(ids.dtype)
    arr = np.asarray(ids)
    out = COMPLEMENT_IDS[arr] if arr.dtype == np.uint8 else COMPLEMENT_IDS[arr].astype(arr.dtype)
    return np.flip(out, axis=dim).copy()


def reverse_complement_padded(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse complement of the first ``lengths[b]`` tokens of each row of a right-padded batch [B, L].

    The padding stays at the end, unchanged; same dtype and device as ``ids``. Vectorized (one gather).
    """
    B, L = ids.shape
    pos = torch.arange(L, device=ids.device).expand(B, L)
    n = lengths.to(ids.device).long().view(B, 1)
    real = pos < n
    src = torch.where(real, n - 1 - pos, pos)
    rc = _COMPLEMENT_TORCH.to(ids.device)[ids.gather(1, src).long()].to(ids.dtype)
    return torch.where(real, rc, ids)


class DNATokenizer:
    """Character-level DNA tokenizer with Caduceus ids.

    Args:
        on_invalid: what to do with characters that are not IUPAC nucleotide letters:
            ``"raise"`` (InputError), ``"unk"`` (map to [UNK]) or ``"n"`` (map to N).
        add_special_tokens: if True, :meth:`encode_batch` appends ``[SEP]`` to every sequence
            (the Caduceus/HyenaDNA character tokenizer convention); default False.
    """

    vocab_size = VOCAB_SIZE
    pad_id = PAD_ID

    def __init__(self, on_invalid: str = "raise", add_special_tokens: bool = False):
        if on_invalid not in ("raise", "unk", "n"):
            raise ValueError(f"on_invalid must be 'raise', 'unk' or 'n', got {on_invalid!r}")
        self.on_invalid = on_invalid
        self.add_special_tokens = add_special_tokens
        self._lut = BYTE_TO_ID.copy()
        #: running totals of ambiguity codes collapsed to N by this tokenizer instance.
        self.ambiguous_counts: Counter = Counter()

    # ------------------------------------------------------------------ encode
    def _encode_bytes(self, b: np.ndarray, stats: Optional[EncodeStats]) -> np.ndarray:
        ids = self._lut[b]
        bad = ids == INVALID
        if bad.any():
            if self.on_invalid == "raise":
                pos = int(np.flatnonzero(bad)[0])
                raise InputError(f"non-DNA character {describe_byte(int(b[pos]))} at position {pos} of a sequence "
                                 f"(allowed: IUPAC nucleotide letters ACGTURYSWKMBDHVN)")
            ids = ids.copy()
            ids[bad] = UNK_ID if self.on_invalid == "unk" else N_ID
            if stats is not None:
                stats.invalid += int(bad.sum())
        for key, c in count_ambiguous(b).items():
            self.ambiguous_counts[key] += c
            if stats is not None:
                stats.ambiguous[key] = stats.ambiguous.get(key, 0) + c
        if stats is not None:
            stats.lower += int(np.count_nonzero(IS_LOWER[b]))
        return ids

    def encode(self, seq: SeqLike, *, return_tensors: Optional[str] = None, return_softmask: bool = False,
               return_stats: bool = False):
        """Encode one sequence.

        Args:
            seq: str / bytes / np.uint8 ASCII array.
            return_tensors: None -> np.uint8 [L]; ``"pt"`` -> torch.LongTensor [L].
            return_softmask: also return the soft-mask, np.bool_ / torch.bool [L] (True = lower case).
            return_stats: also return an :class:`EncodeStats`.
        Returns:
            ``ids`` or a tuple ``(ids, [softmask], [stats])`` in that order.
        """
        b = _as_bytes(seq)
        stats = EncodeStats() if return_stats else None
        ids = self._encode_bytes(b, stats)
        if return_tensors == "pt":
            ids = torch.from_numpy(ids.astype(np.int64))
        elif return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {return_tensors!r}")
        if not (return_softmask or return_stats):
            return ids
        out = [ids]
        if return_softmask:
            m = IS_LOWER[b]
            out.append(torch.from_numpy(m.copy()) if return_tensors == "pt" else m)
        if return_stats:
            out.append(stats)
        return tuple(out)

    __call__ = encode

    def softmask(self, seq: SeqLike) -> np.ndarray:
        """np.bool_ [L]: True where the base is lower case (soft-masked)."""
        return IS_LOWER[_as_bytes(seq)]

    def softmask_weights(self, seq: SeqLike, lower_weight: float = 0.5, upper_weight: float = 1.0) -> np.ndarray:
        """Per-base weights, np.float32 [L]: ``lower_weight`` for soft-masked bases, else ``upper_weight``."""
        m = self.softmask(seq)
        return np.where(m, np.float32(lower_weight), np.float32(upper_weight)).astype(np.float32)

    def count_ambiguous(self, seq: SeqLike) -> dict:
        """``{code: count}`` of IUPAC ambiguity codes (upper case, N excluded) in ``seq``."""
        return count_ambiguous(_as_bytes(seq))

    def encode_batch(self, seqs: Sequence[SeqLike], max_length: Optional[int] = None, pad: bool = True,
                     truncation: bool = True):
        """Encode a batch, right-padded with [PAD].

        Args:
            seqs: B sequences.
            max_length: pad/truncate to this length L; None -> the longest sequence.
            pad: if False, all encoded lengths must be equal (ValueError otherwise).
            truncation: if False, a sequence longer than ``max_length`` raises ValueError.
        Returns:
            ``(ids, attention_mask)``: torch.LongTensor [B, L] and torch.BoolTensor [B, L]
            (True on real tokens, False on padding).
        """
        encoded = []
        for s in seqs:
            ids = self._encode_bytes(_as_bytes(s), None)
            if self.add_special_tokens:
                ids = np.concatenate([ids, np.array([SEP_ID], np.uint8)])
            encoded.append(ids)
        lengths = [e.size for e in encoded]
        if not pad and len(set(lengths)) > 1:
            raise ValueError(f"pad=False but sequences have different lengths ({min(lengths)}..{max(lengths)})")
        L = max(lengths, default=0) if max_length is None else int(max_length)
        if not truncation and any(n > L for n in lengths):
            raise ValueError(f"a sequence of length {max(lengths)} exceeds max_length={L}")
        ids = np.full((len(encoded), L), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(encoded), L), dtype=bool)
        for i, e in enumerate(encoded):
            n = min(e.size, L)
            ids[i, :n] = e[:n]
            mask[i, :n] = True
        return torch.from_numpy(ids), torch.from_numpy(mask)

    # ------------------------------------------------------------------ decode
    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids (sequence of ints, np array or tensor, 1-D) -> string. Specials are written as ``[PAD]``
        etc. unless ``skip_special_tokens``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        arr = np.asarray(ids).astype(np.int64).ravel()
        if arr.size and (arr.min() < 0 or arr.max() >= VOCAB_SIZE):
            raise ValueError(f"token id out of range [0, {VOCAB_SIZE})")
        special = arr < 7
        if not special.any():
            return ID_TO_BYTE[arr].tobytes().decode("ascii")
        if skip_special_tokens:
            return ID_TO_BYTE[arr[~special]].tobytes().decode("ascii")
        return "".join(TOKENS[i] for i in arr.tolist())

    def decode_batch(self, ids, attention_mask=None, skip_special_tokens: bool = True) -> list:
        """Decode [B, L] ids; positions where ``attention_mask`` is False are dropped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        if attention_mask is not None and isinstance(attention_mask, torch.Tensor):
            attention_mask = attention_mask.detach().cpu().numpy()
        out = []
        for i in range(len(ids)):
            row = np.asarray(ids[i])
            if attention_mask is not None:
                row = row[np.asarray(attention_mask[i], dtype=bool)]
            out.append(self.decode(row, skip_special_tokens=skip_special_tokens))
        return out

    # ------------------------------------------------------------------ reverse complement
    reverse_complement = staticmethod(reverse_complement)
    reverse_complement_ids = staticmethod(reverse_complement_ids)

    def reverse_complement_batch(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """RC each row of a right-padded batch [B, L] in place of its real tokens; padding stays at the end."""
        return reverse_complement_padded(ids, attention_mask.sum(dim=-1))

    def convert_ids_to_tokens(self, ids) -> list:
        return [TOKENS[int(i)] for i in ids]

    def convert_tokens_to_ids(self, tokens) -> list:
        index = {t: i for i, t in enumerate(TOKENS)}
        out = []
        for t in tokens:
            if t in index:
                out.append(index[t])
            elif len(t) == 1 and ord(t) < 256 and BYTE_TO_ID[ord(t)] != INVALID:
                out.append(int(BYTE_TO_ID[ord(t)]))
            else:
                out.append(UNK_ID)
        return out
