"""benchmarks/_util.py's arithmetic against the hardware: the FLOPs of a corpus and their share of a peak."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

torch = pytest.importorskip("torch")
flop_counter = pytest.importorskip("torch.utils.flop_counter")


@pytest.fixture(scope="module")
def util():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _util
    finally:
        sys.path.remove(str(BENCHMARKS))
    return _util


def _counted(model, config, lengths, *, backward: bool) -> int:
    """torch's FLOP counter over each text on its own (no padding), summed."""
    from parity.inputs import random_batch

    total = 0
    for n in lengths:
        x = {k: torch.from_numpy(v) for k, v in random_batch(config, [n], seed=n).items()}
        with torch.enable_grad(), flop_counter.FlopCounterMode(display=False) as counter:
            out = model(**x)
            if backward:
                out.sum().backward()
        total += int(counter.get_total_flops())
    return total


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "training"])
def test_a_corpus_costs_what_torch_counts_text_by_text(util, head_config, backward):
    from bertcnn_torch import BertCNN

    model = BertCNN(head_config, attn_implementation="eager").train(False)
    lengths = [1, 4, 7, 11]  # under, at and over the widest kernel (5)
    counted = _counted(model, head_config, lengths, backward=backward)
    pooler = 2 * head_config.hidden_size**2 * len(lengths)  # computed forward; no gradient reaches it
    expected = counted + 2 * pooler if backward else counted
    assert util.text_flops(head_config, lengths, training=backward) == expected


def test_a_share_of_the_peak_is_work_over_time_over_rate(util):
    peaks = {"float32": {"flops_per_s": 100e9}, "bfloat16": {"flops_per_s": 400e9}}
    got = util.against_peaks(150e9, 3.0, peaks)  # 150 GFLOP in 3 s: 50 GFLOP/s
    assert got["achieved_gflop_s"] == pytest.approx(50.0)
    assert got["fraction_of_float32_peak"] == pytest.approx(0.5)
    assert got["fraction_of_bfloat16_peak"] == pytest.approx(0.125)
    assert got["float32_limit_s"] == pytest.approx(1.5) and got["bfloat16_limit_s"] == pytest.approx(0.375)


def test_the_matmul_ceiling_times_the_product_it_claims(util, monkeypatch):
    clock = iter(range(100))  # every perf_counter call one second later: each matmul takes 1 s
    monkeypatch.setattr(util.time, "perf_counter", lambda: float(next(clock)))
    got = util.matmul_ceiling("cpu", n=8, reps=3, dtype="float32")
    assert got["seconds"]["n"] == 3 and got["seconds"]["median"] == 1.0
    assert got["flops_per_s"] == 2 * 8**3 and got["dtype"] == "float32"
