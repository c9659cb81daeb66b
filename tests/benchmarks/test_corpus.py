"""The benchmark corpora come from installed packages, deterministically, as their docstrings say.

`corpus.paragraphs` (the Python reference's prose paragraphs, the wide-length corpus of
`train_compare.py --corpus paragraphs`): every row a distinct paragraph of `pydoc_data.topics`
as `help()` shows it, the label its topic third; lengths span tens to hundreds of tokens.
`labelled_corpus.split` with those labels: stratified, no row in both splits.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import corpus
import labelled_corpus


def test_paragraphs_are_the_references_own_text_with_their_topic_third():
    from pydoc_data.topics import topics

    rows = corpus.paragraphs()
    assert rows == corpus.paragraphs()  # deterministic
    assert len({t for t, _ in rows}) == len(rows) > 1000
    keys = sorted(topics)
    thirds = {lab: [" ".join(topics[k].split()) for i, k in enumerate(keys) if 3 * i // len(keys) == n]
              for n, lab in enumerate(corpus.PARAGRAPH_LABELS)}  # fmt: skip
    for text, lab in rows[::50]:  # the text, whitespace aside, is in a topic of its third
        assert any(" ".join(text.split()) in topic for topic in thirds[lab]), (lab, text[:60])
    assert set(Counter(lab for _, lab in rows)) == set(corpus.PARAGRAPH_LABELS)
    words = sorted(len(t.split()) for t, _ in rows)
    assert words[0] < 10 and words[-1] > 200  # a few words to hundreds


def test_split_takes_the_corpus_labels_and_keeps_the_splits_apart():
    rows = corpus.paragraphs()
    train, test = labelled_corpus.split(rows, size=300, test_fraction=0.2, seed=1, labels=corpus.PARAGRAPH_LABELS)
    assert len(train) + len(test) == 300 and not {t for t, _ in train} & {t for t, _ in test}
    whole, part = Counter(lab for _, lab in rows), Counter(lab for _, lab in train + test)
    for lab in corpus.PARAGRAPH_LABELS:  # stratified: the corpus' proportions, to one row
        assert abs(part[lab] - 300 * whole[lab] / len(rows)) < 1
