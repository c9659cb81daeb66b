"""The shared training contract: recipe validation and JSON, the schedule formula, the batch plan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.training import TrainingRecipe, batch_plan, linear_warmup_decay


def test_recipe_json_round_trip_and_torch_defaults():
    r = TrainingRecipe()
    assert TrainingRecipe.from_dict(r.to_dict()) == r
    assert (r.betas, r.eps, r.weight_decay, r.max_grad_norm) == ((0.9, 0.999), 1e-8, 0.01, 1.0)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"warmup_steps": 3, "warmup_ratio": 0.1}, "not both"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_recipe_refuses_bad_values(changes, fragment):
    with pytest.raises(ValueError, match=fragment) as e:
        TrainingRecipe(**changes)
    assert "Received:" in str(e.value)


def test_schedule_is_transformers_formula():
    # get_linear_schedule_with_warmup(warmup=2, total=6): 0, .5, 1, .75, .5, .25, then 0.
    assert [linear_warmup_decay(s, 2, 6) for s in range(8)] == [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert [linear_warmup_decay(s, 0, 4) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]


def test_warmup_ratio_rounds_up_like_hf_trainer():
    r = TrainingRecipe(batch_size=4, epochs=2, warmup_ratio=0.1)
    assert (r.steps_per_epoch(10), r.total_steps(10), r.warmup(10)) == (3, 6, 1)


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
