"""The learning-rate schedule: transformers' `get_linear_schedule_with_warmup` formula."""

from parity.training import linear_warmup_decay


def test_schedule_is_transformers_formula():
    # get_linear_schedule_with_warmup(warmup=2, total=6): 0, .5, 1, .75, .5, .25, then 0.
    assert [linear_warmup_decay(s, 2, 6) for s in range(8)] == [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert [linear_warmup_decay(s, 0, 4) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
