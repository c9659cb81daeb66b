"""The PyTorch build is the seeds' model: state_dicts exchange both ways (`strict=True`), identical logits;
the seeds' `view` in place of `permute` is caught."""

import numpy as np
import torch

import bertcnn_torch
from tests.helpers import seed_model


def test_seed_class_exchanges_state_dicts_and_logits(tiny_config, tiny_inputs):
    config = tiny_config.replace(mask_padding=False, kernel_sizes=(3, 4, 5))
    ours = bertcnn_torch.BertCNN(config).eval()
    seed = seed_model(config).eval()
    seed.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(seed.state_dict(), strict=True)
    ids, mask = (torch.from_numpy(tiny_inputs[k]) for k in ("input_ids", "attention_mask"))
    with torch.inference_mode():
        np.testing.assert_array_equal(ours(ids, mask).numpy(), seed(ids, mask).numpy())


def test_view_is_not_permute(tiny_config, tiny_inputs):
    """`view(N, C, L)` reinterprets memory: same shapes, scrambled features, other logits."""
    config = tiny_config.replace(mask_padding=False)
    seed = seed_model(config).eval()
    ids, mask = (torch.from_numpy(tiny_inputs[k]) for k in ("input_ids", "attention_mask"))
    with torch.inference_mode():
        right, wrong = seed(ids, mask), seed(ids, mask, view_instead_of_permute=True)
    assert right.shape == wrong.shape
    assert (right - wrong).abs().max() > 1e-3
