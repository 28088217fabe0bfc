"""Detokenizers of the zero-shot text corpora: undo each corpus's own tokenization before genodiff's tokenizer runs.

Several classic corpora are distributed pre-tokenized (PTB: ``do n't``, ``N`` for numbers, ``<unk>``; WikiText:
`` @-@ ``, spaced punctuation; LM1B: spaced punctuation and quotes). Perplexities on them depend on whether this is
undone, so every number genodiff reports names the detokenizer used. The rules are those of MDLM's
``dataloader.py`` (Sahoo et al. 2024, after SEDD, Lou et al. 2024, and GPT-2's zero-shot evaluation), which the
paper's zero-shot table (PTB, WikiText, LM1B, LAMBADA, AG News, PubMed, arXiv) uses:

========================  ==========================================================================
name                      corpus and rules
========================  ==========================================================================
``none``                  no change (AG News, and any corpus stored as plain text)
``ptb``                   Penn Treebank: `` 's`` -> ``'s``, `` n't`` -> ``n't``, ``\\/`` -> ``/``, `` N `` -> `` 1 ``,
                          ``$ 1`` -> ``$1``, ``<unk>`` -> ``?``
``wikitext``              WikiText-2/103: `` @-@ `` / `` @,@ `` / `` @.@ `` -> ``-`` / ``,`` / ``.``, punctuation
                          and brackets re-attached, ``= = =`` headings joined
``lm1b``                  One Billion Words: URLs, ``'s``, punctuation, quotes and brackets re-attached
``lambada``               LAMBADA: curly double quotes -> ``"``, the passage stripped and prefixed with a newline
``scientific_papers``     PubMed / arXiv: ``wikitext`` then ``lm1b``
========================  ==========================================================================
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from genodiff.errors import InputError

__all__ = ["DETOKENIZERS", "detokenizer", "wikitext", "ptb", "lm1b", "lambada", "scientific_papers"]


def wikitext(text: str) -> str:
    """WikiText-2/103 (MDLM ``wt_detokenizer``)."""
    text = text.replace("s '", "s'")
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    for mark in (":", ";", ".", "!", "?", ","):
        text = text.replace(f" {mark} ", f"{mark} ")
    text = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", text)
    text = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", text)
    text = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", text)
    text = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', text)
    text = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", text)
    text = text.replace("= = = =", "====").replace("= = =", "===").replace("= =", "==")
    text = text.replace(" \u00b0 ", "\u00b0")
    text = text.replace(" \n", "\n").replace("\n ", "\n")
    text = text.replace(" N ", " 1 ")
    return text.replace(" 's", "'s")


def ptb(text: str) -> str:
    """Penn Treebank (MDLM ``ptb_detokenizer``)."""
    text = text.replace(" 's", "'s").replace("s ' ", "s' ").replace(" n't", "n't").replace(" \n ", "\n")
    text = text.replace("\\/", "/")
    for _ in range(10):  # overlapping " N N " runs need repeated passes
        text = text.replace(" N ", " 1 ")
    return text.replace("$ 1", "$1").replace("# 1", "#1").replace("<unk>", "?")


def lm1b(text: str) -> str:
    """One Billion Words (MDLM ``lm1b_detokenizer``)."""
    text = text.replace("http : / / ", "http://").replace("https : / / ", "https://")
    text = re.sub(r" \'(\w+)", r"'\1", text)
    text = re.sub(r" (\w+) \. ", r" \1. ", text)
    text = re.sub(r" (\w+) \.$", r" \1.", text)
    text = text.replace(" ? ", "? ")
    text = re.sub(r" \?$", "?", text)
    text = text.replace(" ! ", "! ")
    text = re.sub(r" \!$", "!", text)
    text = text.replace(" , ", ", ").replace(" : ", ": ").replace(" ; ", "; ").replace(" / ", "/")
    text = re.sub(r"\" ([^\"]+) \"", r'"\1"', text)
    text = re.sub(r"\' ([^\']+) \'", r"'\1'", text)
    text = re.sub(r"\( ([^\(\)]+) \)", r"(\1)", text)
    text = re.sub(r"\[ ([^\[\]]+) \]", r"[\1]", text)
    return text.replace("$ ", "$").replace("\u00a3 ", "\u00a3")


def lambada(text: str) -> str:
    """LAMBADA (MDLM ``lambada_detokenizer``)."""
    return "\n" + text.replace("\u201c", '"').replace("\u201d", '"').strip()


def scientific_papers(text: str) -> str:
    """PubMed and arXiv articles (MDLM ``scientific_papers_detokenizer``)."""
    return lm1b(wikitext(text))


DETOKENIZERS: dict[str, Callable[[str], str]] = {"wikitext": wikitext, "ptb": ptb, "lm1b": lm1b, "lambada": lambada,
                                                  "scientific_papers": scientific_papers}


def detokenizer(name: Optional[str]) -> Optional[Callable[[str], str]]:
    """The function named ``name`` (None / ``none``: None); an unknown name is one InputError line."""
    if name in (None, "", "none"):
        return None
    try:
        return DETOKENIZERS[str(name)]
    except KeyError:
        raise InputError(f"data.detokenizer: unknown detokenizer '{name}' "
                         f"(none, {', '.join(DETOKENIZERS)})") from None
