"""Both builds are the same function: real weights, random configs, padding, edge inputs."""

import numpy as np
import pytest
import torch
from hypothesis import given

import bertcnn_tf
import bertcnn_torch
from parity import taps as T
from parity.io.backbone import backbone_checkpoint
from parity.tolerance import tolerance_for
from tests.helpers import config_and_inputs, random_inputs, random_tensors

F32 = tolerance_for("float32", "cpu")


def run_torch(config, tensors, inputs, **kw):
    model = bertcnn_torch.BertCNN._from_tensors(config, tensors)
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, **kw)
    return {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else out.numpy()


def run_keras(config, tensors, inputs, **kw):
    model = bertcnn_tf.BertCNN._from_tensors(config, tensors)
    out = model(**inputs, training=False, **kw)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def assert_taps_close(a, b, mask, tol):
    real = mask.astype(bool)
    for name in a:
        x, y = (a[name][real], b[name][real]) if T.is_token_level(name) else (a[name], b[name])
        bound = tol.bound(name, float(np.abs(x).max()))
        assert np.abs(x - y).max() <= bound, (name, float(np.abs(x - y).max()), bound)


def test_float32_logits_on_real_minilm(embedded_dir):
    from parity.inputs import SENTENCES
    from parity.tokenize import Tokenizer

    config, tensors, _ = backbone_checkpoint(embedded_dir, seed=3, num_labels=3)
    inputs = Tokenizer(embedded_dir)(list(SENTENCES))
    a = run_torch(config, tensors, inputs, return_taps=True)
    b = run_keras(config, tensors, inputs, return_taps=True)
    assert np.abs(a[T.LOGITS] - b[T.LOGITS]).max() <= 1e-5
    assert_taps_close(a, b, inputs["attention_mask"], F32)


@given(config_and_inputs())
def test_float32_parity_on_random_configs(case):
    config, inputs = case
    tensors = random_tensors(config, seed=1)
    a = run_torch(config, tensors, inputs, return_taps=True)
    b = run_keras(config, tensors, inputs, return_taps=True)
    assert np.abs(a[T.LOGITS] - b[T.LOGITS]).max() <= 1e-5
    assert_taps_close(a, b, inputs["attention_mask"], F32)


@pytest.mark.parametrize("run", [run_torch, run_keras], ids=["torch", "keras"])
def test_masked_logits_do_not_depend_on_batch_padding(tiny_config, run):
    tensors = random_tensors(tiny_config)
    alone = random_inputs(tiny_config, [4], seed=5)
    padded = {k: np.pad(v, ((0, 0), (0, 9))) for k, v in alone.items()}  # same text, 9 pads
    a, b = run(tiny_config, tensors, alone), run(tiny_config, tensors, padded)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    seed_cfg = tiny_config.replace(mask_padding=False)  # the seeds: padding leaks into the max
    assert np.abs(run(seed_cfg, tensors, alone) - run(seed_cfg, tensors, padded)).max() > 1e-4


@pytest.mark.parametrize("run", [run_torch, run_keras], ids=["torch", "keras"])
def test_inputs_shorter_than_widest_kernel(tiny_config, run):
    """Length 1 and 2 with kernels up to 5: defined, finite, and 0 for branches with no window."""
    tensors = random_tensors(tiny_config)
    inputs = random_inputs(tiny_config, [1, 2], seed=2)
    taps = run(tiny_config, tensors, inputs, return_taps=True)
    assert np.isfinite(taps[T.LOGITS]).all()
    pooled = taps[T.POOLED].reshape(2, len(tiny_config.kernel_sizes), -1)  # (B, widths, F)
    widths = np.array(tiny_config.kernel_sizes)
    for row, length in enumerate([1, 2]):
        assert (pooled[row, widths > length] == 0).all()


@pytest.mark.parametrize("run", [run_torch, run_keras], ids=["torch", "keras"])
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["input_ids"].__setitem__((0, 1), 99), "vocab_size=99"),
        (lambda d: d["input_ids"].__setitem__((1, 0), -1), "vocab_size"),
        (lambda d: d["token_type_ids"].__setitem__((0, 0), 2), "type_vocab_size"),
        (lambda d: d["attention_mask"].__setitem__((2, slice(None)), 0), "all-padding"),
        (lambda d: d["attention_mask"].__setitem__((0, 0), 2), "only 0"),
    ],
    ids=["id-too-big", "id-negative", "token-type", "all-padding-row", "mask-values"],
)
def test_bad_inputs_get_a_clear_value_error(tiny_config, tiny_inputs, run, change, fragment):
    change(tiny_inputs)
    with pytest.raises(ValueError, match=fragment) as e:
        run(tiny_config, random_tensors(tiny_config), tiny_inputs)
    assert "Received:" in str(e.value)


@pytest.mark.parametrize("run", [run_torch, run_keras], ids=["torch", "keras"])
def test_sequence_longer_than_position_table(tiny_config, run):
    inputs = random_inputs(tiny_config, [tiny_config.max_position_embeddings + 1])
    with pytest.raises(ValueError, match="max_position_embeddings=23"):
        run(tiny_config, random_tensors(tiny_config), inputs)
