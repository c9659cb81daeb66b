"""The batch plan: file order with the partial batch kept, or shuffled (optionally grouped by length):
every row once per epoch, reproducible from the seed."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from parity.training import TrainingRecipe, batch_plan


def test_no_shuffle_is_file_order_with_the_partial_batch_kept():
    plan = batch_plan([3] * 7, TrainingRecipe(batch_size=3, epochs=2, shuffle=False))
    assert [[b.tolist() for b in e] for e in plan] == [[[0, 1, 2], [3, 4, 5], [6]]] * 2


@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    grouped=st.booleans(),
)
def test_shuffled_plan_covers_every_row_once_per_epoch_and_is_reproducible(lengths, batch_size, seed, grouped):
    r = TrainingRecipe(batch_size=batch_size, epochs=2, seed=seed, group_by_length=grouped)
    plan = batch_plan(lengths, r)
    for epoch in plan:
        assert sorted(np.concatenate(epoch).tolist()) == list(range(len(lengths)))
        assert all(1 <= len(b) <= batch_size for b in epoch)
        assert len(epoch) == r.steps_per_epoch(len(lengths))
    again = batch_plan(lengths, r)
    assert all(np.array_equal(a, b) for ea, eb in zip(plan, again, strict=True) for a, b in zip(ea, eb, strict=True))


def test_group_by_length_pads_less():
    lengths = np.random.default_rng(0).integers(1, 100, size=400)
    r = TrainingRecipe(batch_size=8, epochs=1)
    padded = {g: sum(len(b) * lengths[b].max() for b in batch_plan(lengths, r.replace(group_by_length=g))[0])
              for g in (False, True)}  # fmt: skip
    assert padded[True] < 0.7 * padded[False]
