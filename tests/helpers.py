"""What the tests share, importable as `tests.helpers` (never import conftest; fixtures live there).

Sizes are odd and distinct (batch 3, seq 7, hidden 12, heads 3, intermediate 37,
vocab 99) so a wrong transpose or reshape cannot pass by symmetry.

- sizes, tensors and inputs: `TINY`, `MINILM_VOCAB`, `random_tensors`, `random_inputs`;
- hypothesis strategies: `configs`, `config_and_inputs`;
- files: `tiny_checkpoint` (the one tiny canonical checkpoint), `tiny_hf_bert` (a Hugging Face BERT
  folder), `hub_cache` (a hub cache holding a folder), `word_tokenizer`, `write_jsonl`; `Terminal` (a stream
  that is a tty);
- other ecosystems: `without_project` (a child that cannot import this project);
- models and runs: `seed_model` (the seeds' class), `run_parity`, `worst_gap`, `onnx_worst_gap`;
- training: `tiny_setup`, `recipe`, `make_run`, `max_diff`;
- children and faults: `bertcnn`, `sentences`, `files`, `start_child` (a `bertcnn train` child, saves
  optionally slowed), `wait_for_step`, `assert_same_run`, `tree_bytes`, `hidden`, `fill` (a tmpfs:
  the `tmpfs` fixture).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from parity.config import BertCnnConfig
from parity.inputs import random_batch
from parity.layout import rows

TINY = dict(
    vocab_size=99,
    hidden_size=12,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=23,
    type_vocab_size=2,
    kernel_sizes=(2, 3, 5),
    num_filters=5,
    num_labels=3,
)
# The tiny model over MiniLM's vocabulary, so the embedded tokenizer's ids fit: real texts, tiny weights.
MINILM_VOCAB = dict(TINY, vocab_size=30522, max_position_embeddings=40)


def random_tensors(config: BertCnnConfig, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Canonical tensors with distinct random values: any mix-up changes the output."""
    rng = np.random.default_rng(seed)
    return {r.torch_name: (rng.standard_normal(r.torch_shape) * 0.2).astype(dtype) for r in rows(config)}


random_inputs = random_batch  # right-padded ids/mask/token types for given real lengths


# -- hypothesis strategies ---------------------------------------------------------------------
@st.composite
def configs(draw, max_layers: int = 2) -> BertCnnConfig:
    """Small random configs: heads divide hidden, kernel widths include 1 and even widths."""
    heads = draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 5))
    kernels = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True))
    max_pos = draw(st.integers(8, 16))
    return BertCnnConfig(
        vocab_size=draw(st.integers(5, 60)),
        hidden_size=heads * head_dim,
        num_hidden_layers=draw(st.integers(1, max_layers)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(1, 19)),
        max_position_embeddings=max_pos,
        type_vocab_size=draw(st.integers(1, 3)),
        hidden_act=draw(st.sampled_from(["gelu", "relu", "gelu_new"])),
        kernel_sizes=tuple(kernels),
        num_filters=draw(st.integers(1, 6)),
        num_labels=draw(st.integers(1, 4)),
        head_hidden_size=draw(st.one_of(st.none(), st.integers(1, 6))),
        mask_padding=draw(st.booleans()),
        max_seq_length=draw(st.one_of(st.none(), st.integers(2, max_pos))),
    )


@st.composite
def config_and_inputs(draw, max_layers: int = 2):
    """A config and a batch for it: lengths 1..max_pos, some rows padded, token types."""
    config = draw(configs(max_layers=max_layers))
    batch = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, config.max_position_embeddings), min_size=batch, max_size=batch))
    return config, random_inputs(config, lengths, seed=draw(st.integers(0, 2**16)))


# -- files -------------------------------------------------------------------------------------
def word_tokenizer(words):
    """A word-level `tokenizers.Tokenizer`: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, then `words`; `[CLS] text [SEP]`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = [("[CLS]", 2), ("[SEP]", 3)]
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=special)
    return tok


def tiny_checkpoint(
    directory: str | os.PathLike,
    config: BertCnnConfig | None = None,
    *,
    seed: int = 0,
    dtype=np.float32,
    tokenizer=None,
) -> Path:
    """The one way the tests make a tiny canonical checkpoint: `config` (default `TINY`) with
    `random_tensors(config, seed, dtype)`, saved by `save_checkpoint`; returns the directory.

    `tokenizer`: None (no tokenizer); "words" (a word-level tokenizer over the whole vocabulary,
    `w4` ... `w{vocab_size - 1}`, the words `write_jsonl` writes); a folder to copy one from (the
    embedded MiniLM's, say: then the vocabulary must be `MINILM_VOCAB`'s); or a `tokenizers.Tokenizer`.
    """
    import tempfile

    from parity.io.checkpoint import save_checkpoint

    config = BertCnnConfig(**TINY) if config is None else config
    tensors = random_tensors(config, seed=seed, dtype=dtype)
    if tokenizer == "words":
        tokenizer = word_tokenizer([f"w{i}" for i in range(4, config.vocab_size)])
    with tempfile.TemporaryDirectory() as made:
        if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
            tokenizer.save(str(Path(made) / "tokenizer.json"))
            tokenizer = made
        return save_checkpoint(directory, config, tensors, tokenizer_from=tokenizer)


def write_jsonl(path, rows: int, seed: int = 0, max_words: int = 25, names=("neg", "mid", "pos")) -> None:
    """`rows` lines of random words (`w4` ... `w98`) with labels `names`; some longer than 20 tokens."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        words = " ".join(f"w{i}" for i in rng.integers(4, 99, size=rng.integers(1, max_words)))
        lines.append(json.dumps({"text": words, "label": names[rng.integers(0, len(names))]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


WORDS = ["call", "me", "ishmael", "hi", "it", "was", "the", "best", "of", "times", "worst", "age", "wisdom",
         "happy", "families", "are", "alike"]  # fmt: skip


def tiny_wordpiece_tokenizer(directory: Path, vocab_size: int = TINY["vocab_size"]) -> None:
    """A BERT WordPiece tokenizer (tokenizer.json and vocab.txt) of `vocab_size` entries in `directory`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    vocab = list(dict.fromkeys(vocab))[:vocab_size]
    vocab += [f"[unused{i}]" for i in range(vocab_size - len(vocab))]
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"]))
    tok.decoder = decoders.WordPiece()
    tok.save(str(directory / "tokenizer.json"))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")


def tiny_hf_bert(directory: Path, *, classifier: bool = False, seed: int = 0) -> BertCnnConfig:
    """A Hugging Face BERT folder (config.json, model.safetensors, tokenizer), as `save_pretrained` lays a
    BertModel out (names without `bert.`), written with `tokenizers` and `safetensors` only, so tests of
    `--backbone` run in seconds. Returns the head-less config it implies."""
    from safetensors.numpy import save_file

    config = BertCnnConfig(**TINY)
    directory.mkdir(parents=True, exist_ok=True)
    bert = {k.removeprefix("bert."): v for k, v in random_tensors(config, seed).items() if k.startswith("bert.")}
    if classifier:
        bert["classifier.weight"] = np.zeros((2, config.hidden_size), np.float32)
    save_file(bert, str(directory / "model.safetensors"), metadata={"format": "pt"})
    hf = {"model_type": "bert", "architectures": ["BertModel"], "_name_or_path": "tiny", **config.to_hf_dict()}
    (directory / "config.json").write_text(json.dumps(hf, indent=2), encoding="utf-8")
    tiny_wordpiece_tokenizer(directory)
    return config


def hub_cache(root: Path, repo_id: str, source: Path, *, refs: dict[str, str]) -> Path:
    """A Hugging Face hub cache (`models--ORG--NAME/snapshots/<commit>/...`, `refs/<branch>`: what
    huggingface_hub reads offline) holding `source`'s files under `repo_id`, one snapshot per commit."""
    import shutil

    repo = root / ("models--" + repo_id.replace("/", "--"))
    for commit in set(refs.values()):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in source.iterdir():
            if f.is_file():
                shutil.copy(f, snap / f.name)
    (repo / "refs").mkdir(parents=True)
    for ref, commit in refs.items():
        (repo / "refs" / ref).write_text(commit)
    return root


# Run first in a child that must not import this project: any import of it fails loudly, and the
# editable install's finder (which would find it from anywhere) is never consulted.
NO_PROJECT = """
import importlib.abc, sys
class _NoProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in ("parity", "bertcnn_torch", "bertcnn_tf", "tests"):
            raise ImportError("this process must not import " + name)
sys.meta_path.insert(0, _NoProject())
"""


def without_project(code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python that cannot import this project (`NO_PROJECT`), from `cwd`, with a
    PYTHONPATH that leaves the repository out: an ecosystem's own tools, as its users run them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-c", NO_PROJECT + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


class Terminal(io.StringIO):
    """A stream that says it is a terminal (progress bars draw only on one)."""

    def isatty(self) -> bool:
        return True


# -- models and runs ---------------------------------------------------------------------------
def seed_model(config: BertCnnConfig):
    """The seeds' class for `config`'s sizes: seed 003, example 1, verbatim but for `BertModel(config)` in place of
    a hub download. `forward(..., view_instead_of_permute=True)` is seed 000, example 3's mistake."""
    import torch
    from transformers import BertConfig, BertModel

    class SeedBertCNN(torch.nn.Module):
        def __init__(self, bert_config, hidden_size, num_filters, kernel_sizes, output_size):
            super().__init__()
            self.bert = BertModel(bert_config)
            self.convs = torch.nn.ModuleList(
                [
                    torch.nn.Conv1d(in_channels=hidden_size, out_channels=num_filters, kernel_size=k)
                    for k in kernel_sizes
                ]
            )
            self.dropout = torch.nn.Dropout(0.5)
            self.fc = torch.nn.Linear(len(kernel_sizes) * num_filters, output_size)

        def forward(self, input_ids, attention_mask, view_instead_of_permute=False):
            outputs = self.bert(input_ids=input_ids, attention_mask=attention_mask)
            embeddings = outputs.last_hidden_state
            if view_instead_of_permute:  # seed 000, example 3
                n, length, c = embeddings.shape
                embeddings = embeddings.view(n, c, length)
            else:
                embeddings = embeddings.permute(0, 2, 1)
            conved = [torch.relu(conv(embeddings)) for conv in self.convs]
            pooled = [torch.max(c, dim=2)[0] for c in conved]
            combined = self.dropout(torch.cat(pooled, dim=1))
            return self.fc(combined)

    bert_config = BertConfig(**config.to_hf_dict())
    return SeedBertCNN(bert_config, config.hidden_size, config.num_filters, config.kernel_sizes, config.num_labels)


def run_parity(w, *, dtype: str = "float32", keras_w=None):
    """One forward check as `bertcnn report` runs it: the PyTorch build's taps vs the Keras build's, judged.

    `keras_w`: other weights (same config) for the Keras side.
    """
    from bertcnn_torch.runtime import taps
    from parity.commands.builds import current_backend
    from parity.commands.keras_child import keras_side
    from parity.suite import compare_task, judge

    task = {"task": "taps", "dtype": dtype, "device": "cpu", "strict": True, "tier": "strict"}
    kw = keras_w or w
    backend = current_backend()
    ((candidate, meta),) = keras_side(backend, [task], kw.config, kw.tensors, w.inputs)
    return judge(compare_task(task, taps(w.config, w.tensors, w.inputs, dtype), candidate, w, backend), meta)


def worst_gap(config, tensors, runner, tmp_path) -> float:
    """An export's runner on every artifact-check case vs the PyTorch build: the worst logits gap."""
    from bertcnn_torch.runtime import logits as torch_logits
    from parity.serving.check import check_cases

    cases = [b for _, b in check_cases(config, tmp_path)]
    worst = 0.0
    for batch, ref in zip(cases, torch_logits(config, tensors, cases), strict=True):
        got = runner(batch)
        assert got.dtype == np.float32 and got.shape == ref.shape
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def onnx_worst_gap(config, tmp_path, export) -> float:
    """Export `config` with random weights, run every check case in onnxruntime, return the worst logits gap."""
    from parity.serving.runners import OnnxRunner

    tensors = random_tensors(config, seed=3)
    path = tmp_path / "model.onnx"
    export(config, tensors, path)
    runner = OnnxRunner(path)
    return worst_gap(config, tensors, runner, tmp_path)


# -- training: a tiny model, a few dozen rows, a recipe that warms up, decays and clips -------
ROWS = 29  # odd: the last batch of each epoch is partial


def tiny_setup(seed: int = 0):
    """(config, canonical tensors, encoded rows, labels): 29 rows of 1..19 random ids."""
    config = BertCnnConfig(**TINY, head_hidden_size=7)
    rng = np.random.default_rng(seed)
    encoded = [(rng.integers(1, config.vocab_size, size=n), rng.integers(0, 2, size=n))
               for n in rng.integers(1, 20, size=ROWS)]  # fmt: skip
    labels = rng.integers(0, config.num_labels, size=ROWS).astype(np.int64)
    return config, random_tensors(config, seed=seed + 1), encoded, labels


def recipe(dtype: str = "float64", **changes):
    """2 epochs x 8 updates: warmup 3, linear decay, clipping at 0.5 (norms 0.27..0.96: some clipped)."""
    from parity.training import TrainingRecipe

    base = dict(epochs=2, batch_size=4, lr=1e-2, warmup_steps=3, max_grad_norm=0.5, dtype=dtype, dropout=False)
    return TrainingRecipe(**{**base, **changes})


# Issue 30's problems on the tiny setup's rows: odd, distinct weights, so a weight read in the wrong order shows.
CLASS_WEIGHTS = (0.5, 2.0, 3.0)
POS_WEIGHT = (1.0, 2.5, 0.3)
TASKS = ("weighted", "multi", "windows")


def task_setup(kind: str, seed: int = 0):
    """(setup, class weights) for one of issue 30's problems on `tiny_setup(seed)`'s model and rows.

    "weighted": single-label, class weights; "multi": multi-label (a seeded 0/1 matrix), pos_weight per label;
    "windows": each row a `Document` of windows (9 tokens, stride 3, 1-4 windows), single-label, class weights.
    """
    from parity.tokenize import Document

    config, tensors, encoded, labels = tiny_setup(seed)
    rng = np.random.default_rng(seed + 11)
    if kind == "weighted":
        return (config, tensors, encoded, labels), CLASS_WEIGHTS
    if kind == "multi":
        multi = rng.integers(0, 2, size=(len(labels), config.num_labels)).astype(np.int64)
        return (config.replace(problem_type="multi_label_classification"), tensors, encoded, multi), POS_WEIGHT
    if kind != "windows":
        raise ValueError(f"kind must be one of {TASKS}. Received: {kind!r}")
    docs = []
    for n in rng.integers(1, 30, size=len(labels)):
        ids = rng.integers(1, config.vocab_size, size=n)
        starts = range(0, max(n - 3, 1), 6)  # windows of 9 tokens, each repeating 3 of the one before
        docs.append(Document((ids[i : i + 9], np.zeros(len(ids[i : i + 9]), np.int64)) for i in starts))
    return (config, tensors, docs, labels), CLASS_WEIGHTS


def make_run(setup, r, framework: str = "torch", **kwargs):
    """A `Run` of `r` from `setup`'s weights, in `framework` (torch or keras)."""
    from parity.training.loop import Run
    from parity.training.parity import start

    config, tensors, encoded, labels = setup
    return Run(start(config, tensors, r, len(labels), framework), encoded, labels, **kwargs)


def train_with(framework: str, run):
    """Train `run` with the PyTorch or the Keras trainer (Keras imported only when asked for)."""
    if framework == "keras":
        from bertcnn_tf.train import train
    else:
        from bertcnn_torch.train import train
    return train(run)


def max_diff(a: dict, b: dict) -> tuple[float, str]:
    """The largest absolute difference over same-named arrays, and its name."""
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max((float(np.abs(a[k] - b[k]).max()), k) for k in a)


# -- children and real text ---------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def minilm_vocab_checkpoint(directory: Path, tokenizer_from, *, seed: int = 1, **changes) -> Path:
    """A tiny model over MiniLM's vocabulary with its tokenizer (`MINILM_VOCAB`): real text in under a second."""
    return tiny_checkpoint(directory, BertCnnConfig(**{**MINILM_VOCAB, **changes}), seed=seed, tokenizer=tokenizer_from)


def sentences(n: int) -> list[str]:
    """`n` real sentences (Python's own reference, benchmarks/corpus.py), repeated when more are asked for."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bertcnn_bench_corpus", REPO / "benchmarks" / "corpus.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    pool = corpus.sentences(min(n, corpus.SIZE))
    return [pool[i % len(pool)] for i in range(n)]


def child_env() -> dict[str, str]:
    """This checkout's code in a child (`python -m parity`), offline, one thread."""
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def bertcnn(*argv: str, stdin=None, timeout: float = 300):
    """`bertcnn ARGV` in a child; stdout and stderr as text."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "parity", *argv], stdin=stdin, capture_output=True, text=True,
                          timeout=timeout, env=child_env(), cwd=REPO, check=False)  # fmt: skip


# -- training runs in child processes (the fault tests) -----------------------------------------
# 21 rows in batches of 2: 11 updates per epoch, the last one partial; dropout and shuffling on.
# One intra-op thread in every process of a comparison: a pytest process whose torch an earlier test set to
# other threads would sum in another order than the child, and bit-identity is per thread count.
RECIPE = ["--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--warmup-ratio", "0.1", "--max-length", "20",
          "--seed", "7", "--save-every", "1", "--threads", "1"]  # fmt: skip


def files(tmp_path: Path) -> tuple[Path, Path]:
    """(checkpoint, training file) in `tmp_path`."""
    tiny_checkpoint(tmp_path / "ck", BertCnnConfig(**TINY, head_hidden_size=7), tokenizer="words")
    write_jsonl(tmp_path / "train.jsonl", 21, seed=4)
    return tmp_path / "ck", tmp_path / "train.jsonl"


def tree_bytes(d: Path) -> dict[str, bytes]:
    """Every file under `d` by relative path: to show a command left a directory untouched."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def hidden(parent: Path) -> list[str]:
    """Hidden names beside the outputs (staging, previous, lock files): none after a run."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path]), HF_HUB_OFFLINE="1",
               TF_CPP_MIN_LOG_LEVEL="2")  # fmt: skip
    out.update(extra)
    return out


# A child `bertcnn train` whose saves can be slowed down (SLOW_SAVE seconds in each save, while it writes
# rng.npz), so a test can land a signal or a second writer inside a save or a long run.
CHILD = """
import os, sys, time
delay = float(os.environ.get("SLOW_SAVE", "0"))
if delay:
    import numpy as np
    real = np.savez
    def slow(*a, **k):
        time.sleep(delay)
        return real(*a, **k)
    np.savez = slow
from parity.commands import main
sys.exit(main(sys.argv[1:]))
"""


def cli(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`bertcnn ARGV` in a fresh process, like the runs it is compared with.

    Bit-identity is across processes in the same state: a pytest process whose torch or TensorFlow
    an earlier test configured (threads, imported runtimes) may sum in another order than a child.
    """
    return subprocess.run([sys.executable, "-m", "parity", *argv], env=env(), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def start_child(argv: list[str], *, slow_save: float = 0.0, launcher: list[str] | None = None) -> subprocess.Popen:
    cmd = [*(launcher or [sys.executable, "-c", CHILD]), *argv]
    return subprocess.Popen(cmd, env=env(SLOW_SAVE=str(slow_save)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


# A child `bertcnn ARGV` that stops at one point of its work (PAUSE_AT=module:attribute, a function the
# command calls: it is wrapped; "module:attribute+" stops when it has returned), says so by creating the
# file PAUSE_READY, and waits there for a signal.
PAUSING = """
import functools, importlib, os, sys, time
where = os.environ["PAUSE_AT"]
module, _, attribute = where.rstrip("+").partition(":")
owner = importlib.import_module(module)
*path, name = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, name)
def pause():
    open(os.environ["PAUSE_READY"], "w").close()
    time.sleep(600)
@functools.wraps(real)
def paused(*a, **k):
    if where.endswith("+"):
        out = real(*a, **k)
        pause()
        return out
    pause()
    return real(*a, **k)
setattr(owner, name, paused)
from parity.commands import main
sys.exit(main(sys.argv[1:]))
"""


def start_paused(argv: list[str], at: str, ready: Path) -> subprocess.Popen:
    """`bertcnn ARGV` in a child that waits at `at` (module:function, + for after it) once `ready` exists."""
    return subprocess.Popen([sys.executable, "-c", PAUSING, *argv], env=env(PAUSE_AT=at, PAUSE_READY=str(ready)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_file(path: Path, child: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None and path.exists(), f"the child never got there: {child.communicate()[1][-2000:]}"


def saved_step(out: Path) -> int:
    try:
        return json.loads((out / "trainer_state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def wait_for_step(out: Path, step: int, child: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while saved_step(out) < step and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, f"the run ended first: {child.communicate()[1][-2000:]}"
    return saved_step(out)


def state_tensors(out: Path) -> dict[str, bytes]:
    from safetensors.numpy import load_file

    model, moments = load_file(str(out / "model.safetensors")), load_file(str(out / "optimizer.safetensors"))
    return {**{k: v.tobytes() for k, v in model.items()}, **{f"m/{k}": v.tobytes() for k, v in moments.items()}}


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights and moments, the same log, the same position."""
    ta, tb = state_tensors(a), state_tensors(b)
    assert ta.keys() == tb.keys() and all(ta[k] == tb[k] for k in ta), [k for k in ta if ta[k] != tb.get(k)][:5]
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    sa, sb = (json.loads((d / "trainer_state.json").read_text()) for d in (a, b))
    keys = ("step", "epoch", "batch", "finished")
    assert {k: sa[k] for k in keys} == {k: sb[k] for k in keys}


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the file system of `disk` with one file, leaving about `leave` bytes free."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(free - leave, 0))
    return filler


def saved_model_before_issue_21(model, path) -> None:
    """The SavedModel export before issue 21: the module tracked the Keras model itself (the session loader
    fails on it); kept for the tests of the artifact check and of the ops an export may run."""
    import tensorflow as tf

    from bertcnn_tf.export import serving_function

    module = tf.Module()
    module.model = model
    module.serve = serving_function(model)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})
