"""`parity.Tokenizer` truncates as Hugging Face does: `[CLS] ... [SEP]` kept, cut texts counted exactly.

The references are the checkpoint's own `tokenizer.json` through the `tokenizers` library with
`enable_truncation(max_length)`, and `transformers.AutoTokenizer(..., truncation=True, max_length=n)`.
"""

import codecs
import contextlib
import email
import io
import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.io.backbone import embedded_backbone_dir
from parity.tokenize import Tokenizer

with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
    import this

CLS, SEP = 101, 102
# Real prose, not written here: the Zen of Python and two stdlib module docstrings, a few hundred tokens together.
ZEN = codecs.decode(this.s, "rot13")
PROSE = " ".join([ZEN, json.__doc__ or "", email.__doc__ or ""]).split()
LONG = [ZEN, " ".join(PROSE), ZEN * 3]


def reference(max_length: int | None):
    """The library's tokenizer straight from the file, truncating by itself (None: untruncated)."""
    from tokenizers import Tokenizer as Rust

    ref = Rust.from_file(str(embedded_backbone_dir() / "tokenizer.json"))
    ref.no_padding()
    ref.no_truncation()
    if max_length is not None:
        ref.enable_truncation(max_length=max_length)
    return ref


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(embedded_backbone_dir(), max_length=128)


@pytest.fixture(scope="module")
def untruncated():
    return reference(None)


@pytest.fixture(scope="module")
def hf():
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(embedded_backbone_dir()))


def test_the_corpus_is_long(untruncated):
    assert all(len(untruncated.encode(t).ids) > 150 for t in LONG)
    assert len(untruncated.encode(" ".join(PROSE)).ids) > 300


texts = st.lists(
    st.builds(lambda start, n: " ".join(PROSE[start : start + n]), st.integers(0, len(PROSE)), st.integers(0, 400)),
    min_size=1,
    max_size=4,
)


@given(max_length=st.integers(2, 420), batch=texts)
def test_ids_and_type_ids_are_the_librarys_truncation(tok, untruncated, max_length, batch):
    tok.max_length = max_length
    ref = reference(max_length).encode_batch(batch)
    encoded, truncated = tok.encode_counted(batch)
    for (ids, types), want in zip(encoded, ref, strict=True):
        assert ids.tolist() == want.ids and types.tolist() == want.type_ids
        assert ids.dtype == types.dtype == np.int64
    # The count: texts whose untruncated encoding is longer than max_length, no more, no fewer.
    assert truncated == sum(len(e.ids) > max_length for e in untruncated.encode_batch(batch))


@pytest.mark.parametrize("max_length", [2, 3, 5, 16, 32, 64, 128, 256, 512])
def test_same_inputs_as_transformers_after_our_padding(tok, hf, max_length):
    batch = [*LONG, "Hi", "", " ".join(PROSE[:40])]
    tok.max_length = max_length
    ours = tok(batch)
    theirs = hf(batch, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


@pytest.mark.parametrize("max_length", [2, 3, 7, 32, 128])
def test_every_cut_row_is_cls_text_sep(tok, untruncated, max_length):
    tok.max_length = max_length
    encoded, truncated = tok.encode_counted(LONG)
    assert truncated == len(LONG)
    for (ids, _), text in zip(encoded, LONG, strict=True):
        full = untruncated.encode(text).ids
        assert len(ids) == max_length and ids[0] == CLS and ids[-1] == SEP
        assert ids[1:-1].tolist() == full[1 : max_length - 1]  # the text's first max_length - 2 pieces
    padded = tok([*LONG, "Hi"])["input_ids"]
    assert padded.shape == (4, max_length) and (padded[:3, -1] == SEP).all()


def test_exactly_max_length_is_not_counted_one_longer_is(tok, untruncated):
    text = " ".join(PROSE[:30])
    n = len(untruncated.encode(text).ids)
    for max_length, cut in ((n + 1, 0), (n, 0), (n - 1, 2), (3, 2), (2, 3)):  # "Hi" is 3 tokens: cut only at 2
        tok.max_length = max_length
        encoded, truncated = tok.encode_counted([text, text, "Hi"])
        assert truncated == cut, max_length
        assert len(encoded[0][0]) == min(n, max_length)
    tok.max_length = 3
    assert tok.encode_counted(["Hi", ""])[1] == 0  # [CLS] hi [SEP] fits exactly; "" is [CLS] [SEP]
    tok.max_length = 2
    assert tok.encode_counted(["Hi", ""])[1] == 1  # one word dropped: counted


def test_the_old_slice_after_the_specials_is_not_what_hugging_face_feeds(tok, untruncated):
    """Pin the pitfall: cutting `ids[:n]` after [CLS]/[SEP] were added ends a long text in a word piece."""
    n = 32
    tok.max_length = n
    for text in LONG:
        old = untruncated.encode(text).ids[:n]
        new = reference(n).encode(text).ids
        assert old[-1] != SEP and new[-1] == SEP and old != new
        assert old[:-1] == new[:-1]  # the same first n - 1 tokens; only the last differs
        assert tok.encode([text])[0][0].tolist() == new != old


def test_setting_max_length_later_re_truncates(untruncated):
    t = Tokenizer(embedded_backbone_dir(), max_length=512)
    assert t.lengths([ZEN]) == [len(untruncated.encode(ZEN).ids)]
    t.max_length = 10
    assert t.max_length == 10 and t.lengths([ZEN]) == [10] and t.encode([ZEN])[0][0][-1] == SEP
    t.max_length = np.int64(12)  # an integer from numpy is an integer
    assert t.max_length == 12 and type(t.max_length) is int and t.lengths([ZEN]) == [12]
    wide = Tokenizer(embedded_backbone_dir(), max_length=10**9)  # how benchmarks ask for untruncated lengths
    assert wide.encode_counted([ZEN * 3])[1] == 0
    assert wide.lengths([ZEN * 3]) == [len(untruncated.encode(ZEN * 3).ids)]


def test_the_library_silently_skips_truncation_below_its_specials(untruncated):
    """Why max_length < 2 is refused: `tokenizers` would return the text whole, longer than asked."""
    full = untruncated.encode(ZEN).ids
    for n in (0, 1):
        assert reference(n).encode(ZEN).ids == full


@pytest.mark.parametrize("bad", [1, 0, -3, True, 2.0, "8", None])
def test_max_length_without_room_for_the_specials_is_refused(bad):
    msg = re.escape(f"max_length must be an integer >= 2 (room for [CLS] and [SEP]). Received: {bad!r}")
    with pytest.raises(ValueError, match=f"^{msg}$"):
        Tokenizer(embedded_backbone_dir(), max_length=bad)
    t = Tokenizer(embedded_backbone_dir(), max_length=8)
    with pytest.raises(ValueError, match=f"^{msg}$"):
        t.max_length = bad
    assert t.max_length == 8 and t.lengths([ZEN]) == [8]  # a refused value changes nothing


def test_a_tokenizer_without_specials_needs_one_token(tmp_path):
    from tokenizers import Tokenizer as Rust
    from tokenizers import models, pre_tokenizers

    rust = Rust(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    rust.pre_tokenizer = pre_tokenizers.Whitespace()
    rust.save(str(tmp_path / "tokenizer.json"))
    t = Tokenizer(tmp_path, max_length=1)
    assert [ids.tolist() for ids, _ in t.encode(["a b", "b"])] == [[1], [2]]
    assert t.encode_counted(["a b", "b"])[1] == 1
    with pytest.raises(
        ValueError, match=re.escape("max_length must be an integer >= 1 (room for one token). Received: 0")
    ):
        t.max_length = 0


def test_refusals_unchanged(tok):
    with pytest.raises(ValueError, match=re.escape("texts must be a sequence of str. Received: str")):
        tok.encode("a text, not a list")
    with pytest.raises(ValueError, match=re.escape("texts must not be empty. Received: []")):
        tok.encode([])
    with pytest.raises(ValueError, match=re.escape("encoded must not be empty. Received: []")):
        tok.pad([])
    with pytest.raises(FileNotFoundError, match=re.escape("No tokenizer.json found")):
        Tokenizer("/nonexistent/dir")
