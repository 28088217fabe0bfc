"""Chromosome name aliases (``chr1`` / ``1`` / ``NC_000001.11``).

A :class:`ChromAliases` resolves a user-supplied name to the name a genome actually uses:

1. the exact name, if the genome has it;
2. names from a manifest mapping ``{canonical: [alias, ...]}`` (e.g. ``{"chr1": ["1", "NC_000001.11"]}``),
   in either direction: any member of a group resolves to whichever member the genome has;
3. automatic ``chr``-prefix toggling (``chr1`` <-> ``1``, ``chrX`` <-> ``X``) and ``chrM`` <-> ``MT``/``M``.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Union

AliasMapping = Mapping[str, Union[str, Sequence[str]]]


def _toggles(name: str) -> list[str]:
    out = []
    if name.startswith("chr") and len(name) > 3:
        bare = name[3:]
        out.append(bare)
        if bare in ("M", "MT"):
            out += ["MT", "M"]
    else:
        out.append("chr" + name)
        if name in ("MT", "M"):
            out.append("chrM")
    return out


class ChromAliases:
    """Resolve chromosome names against the names of one genome.

    Args:
        names: the contig names the genome has (e.g. from a FASTA index).
        mapping: optional manifest aliases ``{canonical: [alias, ...]}`` (a single string is allowed).
        toggle_chr: also try adding/removing the ``chr`` prefix automatically.
    """

    def __init__(self, names: Iterable[str], mapping: Optional[AliasMapping] = None, *, toggle_chr: bool = True):
        self.names = list(names)
        self._present = set(self.names)
        self.toggle_chr = toggle_chr
        self._groups: dict[str, set[str]] = {}
        for canonical, aliases in (mapping or {}).items():
            if isinstance(aliases, str):
                aliases = [aliases]
            group = {str(canonical), *map(str, aliases)}
            merged = set(group)
            for n in group:
                merged |= self._groups.get(n, set())
            for n in merged:
                self._groups[n] = merged
        self._cache: dict[str, Optional[str]] = {}

    def _candidates(self, name: str) -> list[str]:
        cands = [name]
        group = self._groups.get(name, ())
        cands += sorted(group)
        if self.toggle_chr:
            for c in list(cands):
                for t in _toggles(c):
                    cands.append(t)
                    cands += sorted(self._groups.get(t, ()))
        return cands

    def resolve(self, name: str) -> Optional[str]:
        """Return the genome's name for ``name``, or ``None`` if no alias matches."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        found = None
        for c in self._candidates(name):
            if c in self._present:
                found = c
                break
        self._cache[name] = found
        return found

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None
