"""parity.flops, the MFU numerator, against torch's own FLOP counter on the PyTorch build.

Eager attention, so the counter sees the attention matmuls (it has no formula for SDPA's
CPU kernel). Lengths below, at and above the widest kernel (5): a shorter input is padded.
"""

from __future__ import annotations

import pytest

from parity import flops

torch = pytest.importorskip("torch")
flop_counter = pytest.importorskip("torch.utils.flop_counter")

LENGTHS = (1, 3, 5, 11)


def _counted(model, config, seq_len: int, *, backward: bool = False) -> int:
    """torch.utils.flop_counter over one forward (and with `backward`, its backward) of one sequence."""
    from parity.inputs import random_batch

    x = {k: torch.from_numpy(v) for k, v in random_batch(config, [seq_len], seed=0).items()}
    grad = torch.enable_grad() if backward else torch.inference_mode()
    with grad, flop_counter.FlopCounterMode(display=False) as counter:
        out = model(**x)
        out = out.logits if hasattr(out, "logits") else out
        if backward:
            out.sum().backward()
    return int(counter.get_total_flops())


@pytest.mark.parametrize("seq_len", LENGTHS)
def test_forward_flops_equal_torchs_counter_on_the_pytorch_build(head_config, seq_len):
    from bertcnn_torch import BertCNN

    model = BertCNN(head_config, attn_implementation="eager").eval()
    parts = flops.forward_flops(head_config, seq_len)
    assert _counted(model, head_config, seq_len) == parts["total"]
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    encoder, head = flops.encoder_flops(head_config, seq_len), flops.head_flops(head_config, seq_len)
    assert parts == {**encoder, **head, "total": sum(encoder.values()) + sum(head.values())}


@pytest.mark.parametrize("seq_len", (3, 11))
def test_hf_head_equals_torchs_counter_on_bert_for_sequence_classification(tiny_config, seq_len):
    from transformers import BertConfig, BertForSequenceClassification

    hf_config = BertConfig(**tiny_config.to_hf_dict(), num_labels=tiny_config.num_labels, attn_implementation="eager")
    model = BertForSequenceClassification(hf_config).eval()
    assert _counted(model, tiny_config, seq_len) == flops.forward_flops(tiny_config, seq_len, "hf")["total"]


@pytest.mark.parametrize("seq_len", (3, 11))
def test_training_is_three_forwards_but_for_the_pooler_that_the_loss_never_reaches(head_config, seq_len):
    from bertcnn_torch import BertCNN

    model = BertCNN(head_config, attn_implementation="eager").eval()
    pooler = flops.encoder_flops(head_config, seq_len)["pooler"]
    expected = flops.training_flops(head_config, seq_len)
    assert expected == 3 * flops.forward_flops(head_config, seq_len)["total"]
    assert _counted(model, head_config, seq_len, backward=True) == expected - 2 * pooler


def test_keras_build_skips_the_pooler(tiny_config):
    with_pooler, without = flops.forward_flops(tiny_config, 7), flops.forward_flops(tiny_config, 7, pooler=False)
    assert without["pooler"] == 0
    assert with_pooler["total"] - without["total"] == 2 * tiny_config.hidden_size**2


def test_mfu_is_achieved_flops_over_the_peak():
    achieved, fraction = flops.mfu(1e9, 250.0, 1e12)
    assert achieved == 2.5e11 and fraction == 0.25
    with pytest.raises(ValueError, match="peak_flops_per_s"):
        flops.mfu(1e9, 1.0, 0.0)


@pytest.mark.parametrize("bad", (0, -3, 2.5, True))
def test_a_length_that_is_not_a_positive_integer_is_refused(tiny_config, bad):
    with pytest.raises(ValueError, match="seq_len"):
        flops.forward_flops(tiny_config, bad)


def test_an_unknown_head_is_refused(tiny_config):
    with pytest.raises(ValueError, match="head must be one of"):
        flops.head_flops(tiny_config, 7, "rnn")
