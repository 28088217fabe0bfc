"""A tiny random BERT masked LM and its tokenizer, built offline (no Hub): the stand-in for ``bert-base-uncased``
in the tests of ``model=hf_mlm``, the text classification benchmark and multi-set evaluation.

:func:`tiny_bert` writes ``config.json`` + ``model.safetensors`` (``save_pretrained``) and a fast WordPiece
tokenizer (``tokenizer.json``, ``vocab.txt``) into one folder: exactly the layout of a downloaded Hub model.
The vocabulary is BERT's specials plus the lower-case letters, a few words and punctuation, so any English-ish
text tokenizes (unknown words fall back to letters via ``##`` pieces).
"""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "good", "bad", "great", "awful", "movie", "film", "is",
         "was", "not", "and", "it", "this", "very", "fun", "dull", "yes", "no", "same", "other", ".", ",", "!", "?",
         "'", "-", ":", ";", "(", ")", '"']
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
VOCAB = list(dict.fromkeys(SPECIALS + WORDS + LETTERS + ["##" + c for c in LETTERS]))


def tiny_tokenizer():
    """A BERT-style fast WordPiece tokenizer over :data:`VOCAB` (lower-casing, ``[CLS] a [SEP] b [SEP]`` pairs),
    built with the ``tokenizers`` library so it does not depend on the transformers version."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(VOCAB)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                                                pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


def tiny_bert(folder: Path, *, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0, init_range: float = 0.1,
              dropout: float = 0.0, max_positions: int = 128) -> Path:
    """Write a random ``BertForMaskedLM`` (``hidden`` wide, ``layers`` deep) and its tokenizer into ``folder``."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer().save_pretrained(str(folder))
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=2 * hidden,
                                     max_position_embeddings=max_positions, hidden_dropout_prob=dropout,
                                     attention_probs_dropout_prob=dropout, pad_token_id=0,
                                     initializer_range=init_range)
    torch.manual_seed(seed)
    transformers.BertForMaskedLM(config).save_pretrained(str(folder))
    return folder
