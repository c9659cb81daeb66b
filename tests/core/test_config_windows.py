"""How a model reads long texts travels in config.json, as its length does (DESIGN decision 19)."""

from __future__ import annotations

import json

import pytest

from parity.commands.common import UsageError, resolve_long_text
from parity.config import BertCnnConfig
from tests.helpers import TINY


def test_windows_round_trip_and_a_cutting_model_writes_nothing_new():
    c = BertCnnConfig(**TINY, max_seq_length=11, window_stride=3, max_windows=5)
    d = json.loads(c.to_json())
    assert (d["window_stride"], d["max_windows"]) == (3, 5)
    assert BertCnnConfig.from_dict(d) == c and c.windows == (3, 5)
    plain = json.loads(BertCnnConfig(**TINY).to_json())
    assert "window_stride" not in plain and "max_windows" not in plain  # configs written before read the same


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"max_seq_length": 11, "window_stride": 9}, r"max_seq_length - 3 = 8"),
        ({"window_stride": -1}, r"`window_stride` must be null"),
        ({"window_stride": True}, r"`window_stride` must be null"),
        ({"max_windows": 2}, r"`max_windows` must be null or, with `window_stride`"),
        ({"window_stride": 0, "max_windows": 0}, r"`max_windows` must be null or, with `window_stride`"),
    ],
)
def test_bad_windows_are_refused(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        BertCnnConfig.from_dict({**json.loads(BertCnnConfig(**TINY).to_json()), **changes})


WINDOWS = BertCnnConfig(**TINY, max_seq_length=11, window_stride=3, max_windows=5)
CUTS = BertCnnConfig(**TINY, max_seq_length=11)


@pytest.mark.parametrize(
    ("given", "config", "read"),
    [
        ((None, None, None), WINDOWS, (3, 5)),  # as the model reads
        ((None, 2, None), WINDOWS, (2, 5)),  # refined
        (("windows", None, 1), WINDOWS, (3, 1)),
        (("truncate", None, None), WINDOWS, None),  # told to cut
        ((None, None, None), CUTS, None),
        (("windows", None, None), CUTS, (0, None)),
        (("windows", 4, 2), CUTS, (4, 2)),
        ((None, None, None), None, None),
    ],
)
def test_the_reading_is_the_models_unless_told(given, config, read):
    assert resolve_long_text(*given, config) == read


@pytest.mark.parametrize("given", [(None, 2, None), ("truncate", None, 3)])
def test_window_options_where_texts_are_cut_are_refused(given):
    with pytest.raises(UsageError, match=r"shape the windows of --long-text windows|shapes the windows"):
        resolve_long_text(*given, CUTS)
