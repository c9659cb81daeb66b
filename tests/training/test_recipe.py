"""The training recipe: validation with the reason, JSON round trip, torch's defaults, warmup ratio like HF Trainer."""

from __future__ import annotations

import pytest

from parity.training import TrainingRecipe


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


def test_warmup_ratio_rounds_up_like_hf_trainer():
    r = TrainingRecipe(batch_size=4, epochs=2, warmup_ratio=0.1)
    assert (r.steps_per_epoch(10), r.total_steps(10), r.warmup(10)) == (3, 6, 1)
