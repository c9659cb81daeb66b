"""`problem_type` in config.json (Hugging Face's names) and a multi-label model's thresholds: config, not a fork."""

from __future__ import annotations

import json

import pytest

from parity.config import MULTI_LABEL, SINGLE_LABEL, BertCnnConfig
from tests.helpers import TINY


def test_multi_label_and_its_thresholds_round_trip_through_config_json():
    c = BertCnnConfig(**TINY, problem_type=MULTI_LABEL, thresholds=(0.3, 0.5, 0.71))
    d = json.loads(c.to_json())
    assert d["problem_type"] == MULTI_LABEL and d["thresholds"] == [0.3, 0.5, 0.71]
    back = BertCnnConfig.from_dict(d)
    assert back == c and back.multi_label and back.decision_thresholds == (0.3, 0.5, 0.71)
    assert BertCnnConfig(**TINY, problem_type=MULTI_LABEL).decision_thresholds == (0.5, 0.5, 0.5)


def test_a_single_label_config_json_is_as_before_and_hugging_faces_null_reads_as_single_label():
    d = json.loads(BertCnnConfig(**TINY).to_json())
    assert "problem_type" not in d and "thresholds" not in d  # every config written before the key reads the same
    assert BertCnnConfig.from_dict({**d, "problem_type": None}).problem_type == SINGLE_LABEL
    assert BertCnnConfig.from_dict({**d, "problem_type": SINGLE_LABEL}).multi_label is False


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"problem_type": "regression"}, r"problem_type must be .*or absent.*Received: problem_type='regression'"),
        ({"problem_type": MULTI_LABEL, "thresholds": [0.5]}, r"one number per label \(num_labels=3\)"),
        ({"problem_type": MULTI_LABEL, "thresholds": [0.5, 1.5, 0.5]}, r"probabilities in \[0, 1\]"),
        ({"thresholds": [0.5, 0.5, 0.5]}, r"`thresholds` apply to a multi-label model"),
    ],
)
def test_bad_problem_types_and_thresholds_are_refused(changes, fragment):
    d = {**json.loads(BertCnnConfig(**TINY).to_json()), **changes}
    with pytest.raises(ValueError, match=fragment):
        BertCnnConfig.from_dict(d)


def test_one_sigmoid_label_is_a_valid_multi_label_model():
    assert BertCnnConfig(**{**TINY, "num_labels": 1}, problem_type=MULTI_LABEL).num_labels == 1
