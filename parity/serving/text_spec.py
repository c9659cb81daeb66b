"""What a tokenizer graph must do to give exactly the ids of a checkpoint's `tokenizers` tokenizer.

`bertcnn export --text` puts BERT tokenization inside the exported graph (TF Text in a
SavedModel, onnxruntime-extensions in ONNX). Those libraries' own BERT tokenizers do not agree
with Hugging Face's: TF Text's case folding is NFKC (`…` becomes `...`, fullwidth `，` becomes
`,`), byte limits stand where Hugging Face counts characters, and Unicode tables differ by
version. So the graph does not use their normalisers: it applies the checkpoint's own, read off
the installed `tokenizers` library one code point at a time (`probe`), as data:

- `removed`: what BertNormalizer deletes (control, format, private-use chars; combining marks
  when accents are stripped); `spaces`: what it turns into a space;
- `isolated`: the Chinese characters it surrounds with spaces;
- `char_map`: every other code point whose normal form differs (lower case, accents stripped,
  Hangul decomposed, ...), code point -> its normal form;
- `punctuation`: what BertPreTokenizer makes a word of its own.

BertNormalizer is a function of one character at a time (NFD's canonical reordering aside, which
moves only combining marks, nearly all of them then removed with the accents: the Unicode sweep of
benchmarks/tokenizer_parity.py measures it).
Special tokens (`[CLS]`, `[SEP]` ...) written in a text are matched on the raw text first, as the
library does. A tokenizer this cannot reproduce (not BERT WordPiece, options not covered here) is
refused by `read_text_spec` with the reason.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

Ranges = tuple[tuple[int, int], ...]

MAX_UNICODE = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


@dataclass(frozen=True)
class TextSpec:
    """Everything the in-graph tokenizer needs, as plain data (no framework)."""

    vocab: tuple[str, ...]  # token by id
    unk_token: str
    prefix: str  # WordPiece's continuing-subword prefix ("##")
    max_chars: int  # a longer word is one unk_token (WordPiece's max_input_chars_per_word)
    cls_id: int
    sep_id: int
    pad_id: int
    max_length: int  # tokens per text, [CLS] and [SEP] included; longer texts are cut before [SEP]
    specials: tuple[str, ...]  # literal special tokens matched in the raw text, longest first
    removed: Ranges
    spaces: Ranges
    isolated: Ranges
    punctuation: Ranges
    char_map: dict[str, str] = field(repr=False)

    @property
    def unk_id(self) -> int:
        return self.vocab.index(self.unk_token)


def char_class(ranges: Ranges) -> str:
    """An RE2 character class matching exactly `ranges` (inclusive code point pairs)."""
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


def special_pattern(spec: TextSpec) -> str:
    """RE2 alternation of the literal special tokens, longest first (the library matches leftmost-longest)."""
    return "|".join(_re2_literal(s) for s in spec.specials)


def _re2_literal(s: str) -> str:
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):X}}}" for c in s)


def _to_ranges(points: list[int]) -> Ranges:
    out: list[tuple[int, int]] = []
    for p in sorted(points):
        if out and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return tuple(out)


def _refuse(path: Path, why: str, received: str) -> ValueError:
    return ValueError(
        f"{path}: --text puts BERT WordPiece tokenization in the graph and reproduces only what it can prove equal "
        f"to the `tokenizers` library; {why}. Export without --text (clients then send token ids). Received: {received}"
    )


def read_text_spec(tokenizer_dir: str | os.PathLike, max_length: int, pad_id: int) -> TextSpec:
    """The spec for `tokenizer_dir`'s tokenizer.json, cutting at `max_length`; ValueError if it cannot be exact."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise _refuse(path, "the checkpoint carries no tokenizer.json", "no tokenizer.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    norm, pre, model, post = (raw.get(k) or {} for k in ("normalizer", "pre_tokenizer", "model", "post_processor"))
    if model.get("type") != "WordPiece":
        raise _refuse(path, "its model is not WordPiece", f"model {model.get('type')!r}")
    if norm.get("type") != "BertNormalizer":
        raise _refuse(path, "its normalizer is not BertNormalizer", f"normalizer {norm.get('type')!r}")
    if not norm.get("clean_text", True):
        raise _refuse(path, "BertNormalizer without clean_text is not covered", "clean_text false")
    if pre.get("type") != "BertPreTokenizer":
        raise _refuse(path, "its pre-tokenizer is not BertPreTokenizer", f"pre_tokenizer {pre.get('type')!r}")
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise _refuse(path, "its vocabulary ids are not 0..n-1", f"{len(vocab)} tokens")
    tokens = tuple(t for t, _ in vocab)
    cls_id, sep_id = _cls_sep(path, post, model["vocab"])
    specials = []
    for t in raw.get("added_tokens") or []:
        options = [k for k in ("lstrip", "rstrip", "single_word", "normalized") if t.get(k)]
        if not t.get("special") or options:
            raise _refuse(path, f"the added token {t.get('content')!r} is not a plain special token",
                          f"{'special false' if not t.get('special') else ', '.join(options)}")  # fmt: skip
        if model["vocab"].get(t["content"]) != t["id"]:
            raise _refuse(path, f"the added token {t['content']!r} is not its vocabulary entry", f"id {t['id']}")
        specials.append(t["content"])
    unk = model.get("unk_token", "[UNK]")
    if unk not in model["vocab"]:
        raise _refuse(path, "its unknown token is not in its vocabulary", repr(unk))
    table = probe(json.dumps(norm, sort_keys=True), json.dumps(pre, sort_keys=True))
    return TextSpec(
        vocab=tokens,
        unk_token=unk,
        prefix=model.get("continuing_subword_prefix") or "##",
        max_chars=int(model.get("max_input_chars_per_word", 100)),
        cls_id=cls_id,
        sep_id=sep_id,
        pad_id=pad_id,
        max_length=max_length,
        specials=tuple(sorted(specials, key=lambda s: (-len(s), s))),
        **table,
    )


def _cls_sep(path: Path, post: dict, vocab: dict[str, int]) -> tuple[int, int]:
    """[CLS] and [SEP] ids from a `[CLS] $A [SEP]` post-processor (TemplateProcessing or BertProcessing)."""
    if post.get("type") == "BertProcessing":
        return int(post["cls"][1]), int(post["sep"][1])
    if post.get("type") == "TemplateProcessing":
        single = post.get("single") or []
        shape = [next(iter(p)) for p in single]
        if shape == ["SpecialToken", "Sequence", "SpecialToken"] and single[1]["Sequence"]["id"] == "A":
            first, last = single[0]["SpecialToken"]["id"], single[2]["SpecialToken"]["id"]
            ids = post.get("special_tokens", {})
            if len(ids.get(first, {}).get("ids", [])) == 1 and len(ids.get(last, {}).get("ids", [])) == 1:
                return int(ids[first]["ids"][0]), int(ids[last]["ids"][0])
    raise _refuse(path, "its post-processor is not `[CLS] text [SEP]`", f"post_processor {post.get('type')!r}")


@functools.lru_cache(maxsize=4)
def probe(normalizer_json: str, pre_tokenizer_json: str) -> dict:
    """Per code point, what the installed `tokenizers` normalizer and pre-tokenizer do (about 3 s)."""
    from tokenizers import normalizers, pre_tokenizers

    norm = _build(normalizers, normalizer_json)
    pre = _build(pre_tokenizers, pre_tokenizer_json)
    removed, spaces, isolated, punctuation, char_map = [], [], [], [], {}
    for cp in range(MAX_UNICODE + 1):
        if cp in _SURROGATES:
            continue
        c = chr(cp)
        n = norm.normalize_str(c)
        if n == "":
            removed.append(cp)
        elif n == " ":
            spaces.append(cp)
        elif n == f" {c} ":
            isolated.append(cp)
        elif n != c:
            char_map[c] = n
        if len(pre.pre_tokenize_str(f"a{c}a")) == 3:
            punctuation.append(cp)
    return {
        "removed": _to_ranges(removed),
        "spaces": _to_ranges(spaces),
        "isolated": _to_ranges(isolated),
        "punctuation": _to_ranges(punctuation),
        "char_map": char_map,
    }


def _build(module, as_json: str):
    """A normalizer or pre-tokenizer object from its tokenizer.json entry."""
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordPiece({"[UNK]": 0}, unk_token="[UNK]"))
    raw = json.loads(tok.to_str())
    key = "normalizer" if module.__name__.endswith("normalizers") else "pre_tokenizer"
    raw[key] = json.loads(as_json)
    loaded = Tokenizer.from_str(json.dumps(raw))
    return loaded.normalizer if key == "normalizer" else loaded.pre_tokenizer
