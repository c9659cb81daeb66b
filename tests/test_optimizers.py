"""TorchAdamW + LinearWarmupDecay under Keras `fit` == torch.optim.AdamW + LambdaLR + clip_grad_norm_.

float64, dropout off, tiny odd config, 2 epochs of 4 batches: warmup (2 updates, the first
at lr 0), linear decay to 0, clipping active on some updates and not on others. Weights
and both moments must agree to the AdamW tolerance, and each known pitfall, put back
alone, must make the same check fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity.compare import compare_arrays
from parity.config import BertCnnConfig
from parity.layout import is_decayed, rows
from parity.tolerance import tolerance_for
from parity.train import no_dropout
from parity.training.moments import MOMENTS, moment_key
from parity.training.schedule import linear_warmup_decay
from tests.conftest import TINY, random_inputs, random_tensors

BATCH, EPOCHS, WARMUP = 3, 2, 2
LENGTHS = [7, 4, 2, 5, 1, 6, 3, 7, 2, 4, 6, 5]  # 4 batches of 3
TOTAL = EPOCHS * len(LENGTHS) // BATCH
HP = dict(lr=0.03, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, max_grad_norm=1.2)


def case():
    config = no_dropout(BertCnnConfig(**TINY, head_hidden_size=7))
    tensors = random_tensors(config, seed=5)
    inputs = random_inputs(config, LENGTHS, seed=5)
    labels = np.random.default_rng(5).integers(0, config.num_labels, size=len(LENGTHS)).astype(np.int64)
    return config, tensors, inputs, labels


def torch_run(config, tensors, inputs, labels, dtype="float64", hp=HP):
    """The torch recipe, written the torch way: param groups, AdamW, LambdaLR, clip_grad_norm_."""
    import torch
    import torch.nn.functional as F

    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(config, dict(tensors)).to(getattr(torch, dtype))
    model.train()
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if is_decayed(n)], "weight_decay": hp["weight_decay"]},
        {"params": [p for n, p in named if not is_decayed(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: linear_warmup_decay(k, WARMUP, TOTAL))
    norms = []
    for _ in range(EPOCHS):
        for start in range(0, len(labels), BATCH):
            batch = {k: torch.from_numpy(np.asarray(v[start : start + BATCH])) for k, v in inputs.items()}
            opt.zero_grad()
            F.cross_entropy(model(**batch), torch.from_numpy(labels[start : start + BATCH])).backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["max_grad_norm"])))
            opt.step()
            sched.step()
    out = {n: p.detach().numpy().copy() for n, p in named}
    for n, p in named:
        if p in opt.state:
            for kind in MOMENTS:
                out[moment_key(kind, n)] = opt.state[p][kind].numpy().copy()
    return out, np.array(norms)


def adamw(model, hp=HP):
    from bertcnn_tf import LinearWarmupDecay, TorchAdamW, weight_table_decay

    return TorchAdamW(LinearWarmupDecay(hp["lr"], WARMUP, TOTAL), beta_1=hp["betas"][0], beta_2=hp["betas"][1],
                      epsilon=hp["eps"], weight_decay=hp["weight_decay"], max_grad_norm=hp["max_grad_norm"],
                      decay=weight_table_decay(model))  # fmt: skip


def keras_run(config, tensors, inputs, labels, dtype="float64", optimizer=adamw):
    """The same recipe the Keras way: compile + fit, no shuffling. Returns canonical arrays,
    the per-update gradient norms and the backend."""
    import keras

    from parity.backends import build_keras

    model = build_keras(config, tensors, dtype)
    opt = optimizer(model)
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype))
    norms = []

    def log_norm(batch, logs):
        if hasattr(model, "jax_state_sync"):  # JAX keeps the state outside the variables during fit
            model.jax_state_sync()
        norms.append(float(keras.ops.convert_to_numpy(opt.grad_norm)) if hasattr(opt, "grad_norm") else np.nan)

    cb = keras.callbacks.LambdaCallback(on_train_batch_end=log_norm)
    model.fit(dict(inputs), labels, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[cb])
    out = model.get_canonical_weights()
    if hasattr(opt, "export_state"):
        moments, step = opt.export_state(model)
        assert step == TOTAL
        out.update(moments)
    return out, np.array(norms), keras.backend.backend()


def compare(ref, cand, dtype, backend):
    names = [r.torch_name for r in rows(ref_config())]
    names += [k for k in ref if k.split(".", 1)[0] in MOMENTS and k in cand]
    return compare_arrays(ref, cand, names, tolerance_for(dtype, "cpu", "adamw"), prefix="adamw/",
                          dtype=dtype, device="cpu", backend=backend, check="adamw")  # fmt: skip


def ref_config():
    return case()[0]


_TORCH: dict = {}


def torch_reference(dtype="float64"):
    if dtype not in _TORCH:
        _TORCH[dtype] = torch_run(*case(), dtype=dtype)
    return _TORCH[dtype]


def worst(run):
    return max((t.max_abs, t.name) for t in run.taps)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_with_torch_adamw_matches_torch(dtype):
    ref, ref_norms = torch_reference(dtype)
    cand, norms, backend = keras_run(*case(), dtype=dtype)
    run = compare(ref, cand, dtype, backend)
    assert run.passed, [(t.name, t.max_abs, t.atol) for t in run.taps if not t.passed]
    # Every trained tensor has both moments, on both sides (the pooler has none on either).
    trained = [r.torch_name for r in rows(ref_config()) if not r.torch_name.startswith("bert.pooler.")]
    assert (
        sorted(k for k in cand if k.split(".", 1)[0] in MOMENTS)
        == sorted(moment_key(kind, n) for kind in MOMENTS for n in trained)
        == sorted(k for k in ref if k.split(".", 1)[0] in MOMENTS)
    )
    # Not vacuous: clipping acted on some updates and not on others; the norms are torch's.
    assert (ref_norms > HP["max_grad_norm"]).any() and (ref_norms < HP["max_grad_norm"]).any(), ref_norms
    np.testing.assert_allclose(norms, ref_norms, rtol=1e-12 if dtype == "float64" else 1e-5)
