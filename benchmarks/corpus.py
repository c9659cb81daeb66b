"""The benchmark corpus: real English prose that ships with Python itself.

`pydoc_data.topics` is the text of the Python language reference (what `help("if")`
prints). We keep its prose (not code, grammar or headings), split them into
sentences and take every k-th one, so the selection is deterministic, spans every topic
and has the length mix of real documentation: from a handful of words to long
sentences that hit the 128-token truncation. Nothing here is generated or written by us.

    python benchmarks/corpus.py [OUT.txt]   # writes one sentence per line, prints stats
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SIZE = 1500
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=["(A-Z])')


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, heading underlines dropped, lines joined."""
    paras, cur = [], []
    for line in [*text.splitlines(), ""]:
        if line.strip() and not re.fullmatch(r"[*=\-^~+]+", line.strip()):
            cur.append(line.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    return paras


def _is_prose(s: str) -> bool:
    """A sentence, not code or grammar: enough words, mostly letters, ends like a sentence."""
    if len(s.split()) < 3 or s[-1:] not in '.!?:"' or any(m in s for m in ("::=", ">>>", "...", "|")):
        return False
    return sum(c.isalpha() or c.isspace() for c in s) >= 0.85 * len(s)


def sentences(size: int = SIZE) -> list[str]:
    """`size` distinct sentences of the Python reference, evenly spaced through it."""
    from pydoc_data.topics import topics

    seen: dict[str, None] = {}
    for key in sorted(topics):
        for para in _paragraphs(topics[key]):
            for s in _SENTENCE_END.split(para):
                s = s.strip()
                if _is_prose(s) and s not in seen:
                    seen[s] = None
    pool = list(seen)
    if len(pool) < size:
        raise ValueError(f"the corpus has only {len(pool)} sentences. Received: size={size}")
    step = len(pool) / size
    return [pool[int(i * step)] for i in range(size)]


# Labels for throughput runs on whole paragraphs: which third of the reference's sorted topics a
# paragraph comes from. They carry no meaning to learn; only speed is measured on this corpus.
PARAGRAPH_LABELS = ("topics_1", "topics_2", "topics_3")


def paragraphs() -> list[tuple[str, str]]:
    """Every distinct prose paragraph of the Python reference, with its topic third as the label.

    Whole paragraphs, not sentences: from a few words to several hundred tokens, the wide
    length mix on which batching similar lengths together pays most.
    """
    from pydoc_data.topics import topics

    keys = sorted(topics)
    seen: dict[str, str] = {}
    for i, key in enumerate(keys):
        for para in _paragraphs(topics[key]):
            if _is_prose(para) and para not in seen:
                seen[para] = PARAGRAPH_LABELS[3 * i // len(keys)]
    return list(seen.items())


def write(path: str | Path, size: int = SIZE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(sentences(size)) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    out = write(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bertcnn-corpus.txt")
    words = sorted(len(s.split()) for s in out.read_text(encoding="utf-8").splitlines())
    n = len(words)
    print(f"{out}: {n} sentences, words per sentence min {words[0]} median {words[n // 2]} max {words[-1]}")
