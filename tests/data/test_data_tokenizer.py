import numpy as np
import pytest
import torch

from genodiff.data.genome.tokenizer import DNATokenizer, reverse_complement, reverse_complement_ids
from genodiff.data.genome.vocab import A_ID, C_ID, G_ID, MASK_ID, N_ID, PAD_ID, T_ID, UNK_ID, TOKENS
from genodiff.errors import InputError


def test_caduceus_ids():
    tok = DNATokenizer()
    assert tok.encode("ACGTN").tolist() == [A_ID, C_ID, G_ID, T_ID, N_ID] == [7, 8, 9, 10, 11]
    assert tok.encode("acgtn").tolist() == [7, 8, 9, 10, 11]  # uppercased by default
    assert tok.encode("U").tolist() == [T_ID]
    assert tok.encode("").tolist() == []
    assert tok.encode("ACGT", return_tensors="pt").dtype == torch.long


def test_roundtrip_random():
    rng = np.random.default_rng(0)
    tok = DNATokenizer()
    for n in (0, 1, 7, 1000):
        s = "".join(rng.choice(list("ACGTN"), n))
        assert tok.decode(tok.encode(s)) == s
        assert tok.decode(tok.encode(s, return_tensors="pt")) == s


def test_iupac_to_n_counted():
    tok = DNATokenizer()
    ids, stats = tok.encode("ACRYnkK", return_stats=True)
    assert ids.tolist() == [A_ID, C_ID, N_ID, N_ID, N_ID, N_ID, N_ID]
    assert stats.ambiguous == {"R": 1, "Y": 1, "K": 2}
    assert stats.n_ambiguous == 4
    assert tok.count_ambiguous("BDHVSWM") == {c: 1 for c in "BDHVSWM"}
    assert tok.ambiguous_counts["K"] == 2


def test_invalid_characters():
    with pytest.raises(InputError, match="non-DNA character 'X' at position 2"):
        DNATokenizer().encode("ACXT")
    assert DNATokenizer(on_invalid="unk").encode("AC-T").tolist() == [A_ID, C_ID, UNK_ID, T_ID]
    assert DNATokenizer(on_invalid="n").encode("AC-T").tolist() == [A_ID, C_ID, N_ID, T_ID]
    with pytest.raises(InputError):
        DNATokenizer().encode("ACGé")


def test_softmask_weights():
    tok = DNATokenizer()
    ids, m = tok.encode("ACgtN", return_softmask=True)
    assert m.tolist() == [False, False, True, True, False]
    w = tok.softmask_weights("ACgt", lower_weight=0.25)
    assert w.dtype == np.float32 and w.tolist() == [1.0, 1.0, 0.25, 0.25]


def test_string_rc_and_involution():
    assert reverse_complement("ACGTN") == "NACGT"
    assert reverse_complement("aacG") == "Cgtt"
    assert reverse_complement("RYKMBVDHSW") == "WSDHBVKMRY"
    rng = np.random.default_rng(1)
    s = "".join(rng.choice(list("ACGTNacgtnRYSWKMBDHV"), 500))
    assert reverse_complement(reverse_complement(s)) == s
    assert reverse_complement(b"ACG") == b"CGT"


def test_id_rc_matches_string_rc_and_involution():
    tok = DNATokenizer()
    rng = np.random.default_rng(2)
    s = "".join(rng.choice(list("ACGTN"), 300))
    ids = tok.encode(s)
    assert np.array_equal(reverse_complement_ids(ids), tok.encode(reverse_complement(s)))
    assert np.array_equal(reverse_complement_ids(reverse_complement_ids(ids)), ids)
    t = torch.as_tensor(ids.astype(np.int64)).reshape(3, 100)
    rc = reverse_complement_ids(t)
    assert rc.dtype == torch.long and rc.shape == (3, 100)
    assert torch.equal(reverse_complement_ids(rc), t)
    assert torch.equal(rc[1], torch.as_tensor(reverse_complement_ids(ids[100:200]).astype(np.int64)))
    # specials map to themselves
    sp = np.arange(len(TOKENS))
    out = reverse_complement_ids(sp)[::-1]
    assert out[:7].tolist() == list(range(7)) and out[7:].tolist() == [T_ID, G_ID, C_ID, A_ID, N_ID]
    # other axes
    a = np.array([[A_ID, C_ID], [G_ID, T_ID]])
    assert reverse_complement_ids(a, dim=0).tolist() == [[C_ID, A_ID], [T_ID, G_ID]]


def test_encode_batch_padding_and_mask():
    tok = DNATokenizer()
    ids, mask = tok.encode_batch(["ACGT", "AC", ""])
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (3, 4)
    assert ids[1].tolist() == [A_ID, C_ID, PAD_ID, PAD_ID]
    assert mask.tolist() == [[True] * 4, [True, True, False, False], [False] * 4]
    ids, mask = tok.encode_batch(["ACGTACGT", "AC"], max_length=5)
    assert ids.shape == (2, 5) and ids[0].tolist() == [7, 8, 9, 10, 7] and mask[1].sum() == 2
    with pytest.raises(ValueError):
        tok.encode_batch(["ACG", "A"], pad=False)
    ids, mask = tok.encode_batch(["ACG", "TTA"], pad=False)
    assert mask.all()
    with pytest.raises(ValueError):
        tok.encode_batch(["ACGTAA"], max_length=3, truncation=False)
    assert tok.decode_batch(*tok.encode_batch(["ACGT", "AC"])) == ["ACGT", "AC"]
    rc = tok.reverse_complement_batch(*tok.encode_batch(["AACG", "AC"]))
    assert tok.decode_batch(rc, tok.encode_batch(["AACG", "AC"])[1]) == ["CGTT", "GT"]


def test_decode_specials():
    tok = DNATokenizer()
    assert tok.decode([MASK_ID, A_ID, PAD_ID]) == "[MASK]A[PAD]"
    assert tok.decode([MASK_ID, A_ID, PAD_ID], skip_special_tokens=True) == "A"
    with pytest.raises(ValueError):
        tok.decode([99])
    assert tok.convert_tokens_to_ids(["[PAD]", "a", "X"]) == [PAD_ID, A_ID, UNK_ID]
