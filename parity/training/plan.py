"""The batch plan: which rows go into which update, decided once in numpy, shared by both trainers.

Deterministic in (row lengths, recipe): a resumed run recomputes it and continues at
the saved (epoch, batch) position, and the two frameworks see the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parity.training.recipe import TrainingRecipe

MEGABATCH = 50  # batches per length-sorted group, as HF's LengthGroupedSampler


def batch_plan(lengths: Sequence[int], recipe: TrainingRecipe) -> list[list[np.ndarray]]:
    """Per epoch, the row indices of each update's batch (int64); every row exactly once per epoch.

    A batch is `recipe.update_size` rows: with `grad_accum` N, the trainers split it into
    N micro-batches of `batch_size` rows (`micro_batches`), so `--batch-size 8 --grad-accum 2`
    sees exactly the updates of `--batch-size 16`.

    `shuffle=False`: file order, contiguous batches, the last partial batch kept. Otherwise
    a permutation seeded by (seed, epoch); with `group_by_length`, each run of
    MEGABATCH x batch_size rows of it is sorted by length (longest first) and the
    resulting batches are visited in a seeded order, so batches pad little (on a corpus
    smaller than one megabatch their members then repeat each epoch, as with HF).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n, bs = len(lengths), recipe.update_size
    if n == 0:
        raise ValueError("The batch plan needs at least one row. Received: 0 rows")
    epochs = []
    for epoch in range(recipe.epochs):
        rng = np.random.default_rng([recipe.seed, epoch])
        order = rng.permutation(n) if recipe.shuffle else np.arange(n)
        if recipe.shuffle and recipe.group_by_length:
            size = MEGABATCH * bs
            groups = [order[i : i + size] for i in range(0, n, size)]
            order = np.concatenate([g[np.argsort(-lengths[g], kind="stable")] for g in groups])
        batches = [order[i : i + bs].astype(np.int64) for i in range(0, n, bs)]
        if recipe.shuffle and recipe.group_by_length:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        epochs.append(batches)
    return epochs


def micro_batches(batch: np.ndarray, recipe: TrainingRecipe) -> list[tuple[np.ndarray, float]]:
    """An update's rows in consecutive micro-batches of `batch_size`, each with its share of the update's mean.

    The weight of a micro-batch of n rows in an update of U rows is n / U: the weighted sum
    of the micro-batches' mean losses is the mean loss of their union, exactly what one
    batch of U rows computes, also for a last, partial update (HF Trainer normalises by the
    update's item count the same way since transformers 4.46).
    """
    total, size = len(batch), recipe.batch_size
    return [(batch[i : i + size], len(batch[i : i + size]) / total) for i in range(0, total, size)]
