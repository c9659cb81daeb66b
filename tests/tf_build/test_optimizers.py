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
from parity.training import TrainingRecipe
from parity.training.moments import MOMENTS, from_torch_state, moment_key, split_moments, to_torch_state
from parity.training.schedule import linear_warmup_decay
from tests.helpers import TINY, random_inputs, random_tensors

BATCH, EPOCHS, WARMUP = 3, 2, 2
LENGTHS = [7, 4, 2, 5, 1, 6, 3, 7, 2, 4, 6, 5]  # 4 batches of 3
STEPS = len(LENGTHS) // BATCH  # updates per epoch
TOTAL = EPOCHS * STEPS
HP = dict(lr=0.03, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, max_grad_norm=1.2)


def case():
    config = BertCnnConfig(**TINY, head_hidden_size=7).without_dropout()
    tensors = random_tensors(config, seed=5)
    inputs = random_inputs(config, LENGTHS, seed=5)
    labels = np.random.default_rng(5).integers(0, config.num_labels, size=len(LENGTHS)).astype(np.int64)
    return config, tensors, inputs, labels


def torch_run(config, tensors, inputs, labels, dtype="float64", hp=HP, epochs=(0, EPOCHS), state=None):
    """The torch recipe, written the torch way: param groups, AdamW, LambdaLR, clip_grad_norm_.

    `epochs` = (first, end); `state` = (moments, step) resumes AdamW and the schedule there."""
    import torch
    import torch.nn.functional as F

    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(config, dict(tensors)).to(getattr(torch, dtype))
    model.train()
    named = list(model.named_parameters())
    order = [n for n, _ in named if is_decayed(n)] + [n for n, _ in named if not is_decayed(n)]  # torch's indices
    params = dict(named)
    groups = [
        {"params": [params[n] for n in order if is_decayed(n)], "weight_decay": hp["weight_decay"]},
        {"params": [params[n] for n in order if not is_decayed(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"])
    first = epochs[0] * STEPS
    if state is not None:
        sd = opt.state_dict()
        sd["state"] = {i: {k: torch.from_numpy(np.asarray(v)) for k, v in entry.items()}
                       for i, entry in to_torch_state(*state, order).items()}  # fmt: skip
        opt.load_state_dict(sd)
    for group in opt.param_groups:
        group["initial_lr"] = hp["lr"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: linear_warmup_decay(k, WARMUP, TOTAL), first - 1)
    norms = []
    for _ in range(*epochs):
        for start in range(0, len(labels), BATCH):
            batch = {k: torch.from_numpy(np.asarray(v[start : start + BATCH])) for k, v in inputs.items()}
            opt.zero_grad()
            F.cross_entropy(model(**batch), torch.from_numpy(labels[start : start + BATCH])).backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["max_grad_norm"])))
            opt.step()
            sched.step()
    out = {n: p.detach().numpy().copy() for n, p in named}
    moments, step = from_torch_state(opt.state_dict()["state"], order)
    assert step == (0 if state is None else state[1]) + len(norms)
    return {**out, **moments}, np.array(norms)


def adamw(model, hp=HP):
    from bertcnn_tf import LinearWarmupDecay, TorchAdamW, weight_table_decay

    return TorchAdamW(LinearWarmupDecay(hp["lr"], WARMUP, TOTAL), beta_1=hp["betas"][0], beta_2=hp["betas"][1],
                      epsilon=hp["eps"], weight_decay=hp["weight_decay"], max_grad_norm=hp["max_grad_norm"],
                      decay=weight_table_decay(model))  # fmt: skip


def keras_run(
    config, tensors, inputs, labels, dtype="float64", optimizer=adamw, epochs=(0, EPOCHS), state=None, run_eagerly=False
):
    """The same recipe the Keras way: compile + fit, no shuffling. Returns canonical arrays
    (weights, moments), the per-update gradient norms and the backend."""
    import keras

    from bertcnn_tf.runtime import build as build_keras

    model = build_keras(config, tensors, dtype)
    opt = optimizer(model)
    if state is not None:
        opt.import_state(model, *state)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    model.compile(optimizer=opt, loss=loss, run_eagerly=run_eagerly)
    norms = []

    def log_norm(batch, logs):
        if hasattr(model, "jax_state_sync"):  # JAX keeps the state outside the variables during fit
            model.jax_state_sync()
        norms.append(float(keras.ops.convert_to_numpy(opt.grad_norm)) if hasattr(opt, "grad_norm") else np.nan)

    cb = keras.callbacks.LambdaCallback(on_train_batch_end=log_norm)
    model.fit(
        dict(inputs), labels, batch_size=BATCH, epochs=epochs[1] - epochs[0], shuffle=False, verbose=0, callbacks=[cb]
    )
    out = model.get_canonical_weights()
    if hasattr(opt, "export_state"):
        moments, step = opt.export_state(model)
        assert step == epochs[1] * STEPS
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


# -- each pitfall, put back alone, fails the same check ---------------------------------------------
def _stock_adamw(model, hp=HP):
    """keras.optimizers.AdamW as a porter would set it up: epsilon left at Keras' 1e-7 (and
    added before the bias correction), global_clipnorm, the right no-decay variables."""
    import keras

    from bertcnn_tf import LinearWarmupDecay, weight_table_decay

    schedule = LinearWarmupDecay(hp["lr"], WARMUP, TOTAL)
    opt = keras.optimizers.AdamW(schedule, weight_decay=hp["weight_decay"], beta_1=hp["betas"][0],
                                 beta_2=hp["betas"][1], global_clipnorm=hp["max_grad_norm"])  # fmt: skip
    decay = weight_table_decay(model)
    opt.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if not decay(v)])
    return opt


def _stock_clipping(model):
    """TorchAdamW with Keras' `global_clipnorm` formula (max_norm / norm, no + 1e-6)."""
    from keras.src.optimizers.base_optimizer import clip_by_global_norm

    opt = adamw(model)
    opt._clip = lambda grads, gate=None: clip_by_global_norm(grads, HP["max_grad_norm"])
    return opt


def _schedule_one_step_late(model):
    from bertcnn_tf import LinearWarmupDecay

    class Late(LinearWarmupDecay):
        def __call__(self, step, dtype=None):
            return super().__call__(step + 1, dtype)

    opt = adamw(model)
    opt._learning_rate = Late(HP["lr"], WARMUP, TOTAL)
    return opt


def _float32_schedule(model):
    """What a stock Keras schedule gives a float64 run: the lr rounded to float32."""
    from keras import ops

    from bertcnn_tf import LinearWarmupDecay

    class Float32(LinearWarmupDecay):
        def __call__(self, step, dtype=None):
            return ops.cast(super().__call__(step, "float32"), dtype or "float32")

    opt = adamw(model)
    opt._learning_rate = Float32(HP["lr"], WARMUP, TOTAL)
    return opt


def _layernorm_decayed(model):
    """Keras' `exclude_from_weight_decay(var_names=["bias"])`: LayerNorm weights (`gamma`) decay."""
    opt = adamw(model)
    opt.decay = lambda v: not v.path.endswith(("/bias", "/beta"))
    return opt


@pytest.mark.parametrize(
    "pitfall", [None, _stock_adamw, _stock_clipping, _schedule_one_step_late, _float32_schedule, _layernorm_decayed]
)
def test_each_pitfall_fails_the_check(pitfall):
    """Eager `fit` (half the time of a traced one here); `None` is TorchAdamW itself, which
    passes the same check in the same mode. Measured worst differences (vs 1e-10): stock
    AdamW 8.9e-2, stock clipping 2.8e-8, schedule one step late 1.7e-1, float32 lr 6.8e-8,
    decayed LayerNorm weights 3.7e-2."""
    ref, _ = torch_reference("float64")
    cand, _, backend = keras_run(*case(), dtype="float64", optimizer=pitfall or adamw, run_eagerly=True)
    run = compare(ref, cand, "float64", backend)
    assert run.passed == (pitfall is None), worst(run)


# -- pieces ------------------------------------------------------------------------------------------
def test_no_decay_set_is_hf_trainers():
    """The weight table's rule equals transformers' Trainer.get_decay_parameter_names on the torch build."""
    from transformers import Trainer

    from bertcnn_torch import BertCNN

    config = ref_config()
    model = BertCNN._from_tensors(config, random_tensors(config))
    hf = set(Trainer.get_decay_parameter_names(None, model))
    ours = {r.torch_name for r in rows(config) if r.decayed}
    assert ours == hf
    assert "bert.embeddings.LayerNorm.weight" not in ours and "fc.weight" in ours


def test_embedding_gradients_with_repeated_rows_are_summed_before_norm_and_update():
    """On TensorFlow the word-embedding gradient is an IndexedSlices with one row per token;
    the update must equal the one from the dense (row-summed) gradient, as in torch."""
    import keras
    import tensorflow as tf

    from bertcnn_tf import TorchAdamW

    if keras.backend.backend() != "tensorflow":
        pytest.skip("IndexedSlices are TensorFlow's")
    config, tensors, inputs, labels = case()
    from bertcnn_tf.runtime import build as build_keras

    model = build_keras(config, tensors, "float64")
    with tf.GradientTape() as tape:
        logits = model(**{k: v[:BATCH] for k, v in inputs.items()}, training=True)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels[:BATCH], logits, True))
    word = next(v for v in model.trainable_variables if v.path.endswith("word_embeddings/embeddings"))
    grad = tape.gradient(loss, word.value)
    assert isinstance(grad, tf.IndexedSlices)
    idx = grad.indices.numpy()
    assert len(np.unique(idx)) < len(idx)  # the batch repeats token ids (padding at least)
    dense = tf.convert_to_tensor(grad).numpy()
    assert not np.isclose(np.sum(grad.values.numpy() ** 2), np.sum(dense**2))  # the slices' norm is wrong

    results = []
    for g in (grad, tf.constant(dense)):
        v = keras.Variable(word.numpy(), dtype="float64")
        opt = TorchAdamW(0.01, max_grad_norm=0.5 * float(np.linalg.norm(dense)))  # clipping on
        opt.apply([g], [v])
        results.append((v.numpy(), opt._exp_avg_sq[0].numpy(), float(opt.grad_norm.numpy())))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][2] == results[1][2] == pytest.approx(float(np.linalg.norm(dense)), rel=1e-14)


def test_schedule_is_torchs_lambda_lr_step_for_step():
    import torch

    from bertcnn_tf import LinearWarmupDecay

    for warmup, total in [(0, 5), (3, 10), (4, 4), (6, 3)]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-5)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k, w=warmup, t=total: linear_warmup_decay(k, w, t))
        ours = LinearWarmupDecay(3e-5, warmup, total)
        for k in range(total + 3):
            lr = opt.param_groups[0]["lr"]
            assert float(ours(k, "float64")) == lr == ours.lr_at(k), (warmup, total, k)
            assert float(ours(k)) == np.float32(lr)  # Keras' default call: float32, rounded once
            opt.step()
            sched.step()


# -- state: moments keyed by canonical names, resumed in the other framework ----------------------------
def _split(arrays):
    moments = {k: v for k, v in arrays.items() if k.split(".", 1)[0] in MOMENTS}
    return {k: v for k, v in arrays.items() if k not in moments}, moments


@pytest.mark.slow  # 7 s; tests/training/test_state.py resumes a torch save in Keras in the default
def test_state_resumes_across_frameworks():
    """4 updates in one framework, its weights and AdamW state (moments, step) into the other
    for the last 4: both orders end where 8 torch updates end (float64 AdamW tolerance)."""
    config, tensors, inputs, labels = case()
    ref, _ = torch_reference("float64")
    weights, moments = _split(torch_run(config, tensors, inputs, labels, epochs=(0, 1))[0])
    cand, _, backend = keras_run(config, weights, inputs, labels, epochs=(1, 2), state=(moments, STEPS))
    run = compare(ref, cand, "float64", backend)
    assert run.passed, worst(run)

    weights, moments = _split(keras_run(config, tensors, inputs, labels, epochs=(0, 1))[0])
    cand, _ = torch_run(config, weights, inputs, labels, epochs=(1, 2), state=(moments, STEPS))
    run = compare(ref, cand, "float64", "torch")
    assert run.passed, worst(run)
    # Not vacuous: resuming the weights without the moments lands elsewhere.
    run = compare(ref, torch_run(config, weights, inputs, labels, epochs=(1, 2))[0], "float64", "torch")
    assert not run.passed


def test_state_is_refused_unless_it_names_exactly_the_trained_tensors():
    from bertcnn_tf import TorchAdamW
    from bertcnn_tf.runtime import build as build_keras

    config = ref_config()
    model = build_keras(config, random_tensors(config), "float64")
    opt = TorchAdamW.from_recipe(TrainingRecipe(warmup_steps=2), model, num_rows=12)
    opt.build(model.trainable_variables)
    # The no-decay set survives serialisation (a `.keras` file) as variable paths.
    again = TorchAdamW.from_config(opt.get_config())
    again.build(model.trainable_variables)
    assert (
        list(again._decayed) == list(opt._decayed) == [r.decayed for r in rows(config) if "pooler" not in r.torch_name]
    )
    assert again._learning_rate.get_config() == {"peak_lr": 2e-5, "warmup_steps": 2, "total_steps": 3}
    moments, step = opt.export_state(model)
    assert step == 0 and moments["exp_avg.convs.0.weight"].shape == (5, 12, 2)  # torch layout (out, in, k)
    opt.import_state(model, moments, 3)
    assert opt.export_state(model)[1] == 3
    with pytest.raises(ValueError, match=r"missing: fc\.bias"):
        opt.import_state(model, {k: v for k, v in moments.items() if not k.endswith(".fc.bias")}, 3)
    with pytest.raises(ValueError, match=r"one moment only"):
        split_moments({"exp_avg.fc.bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"wrong shape: convs\.0\.weight"):
        opt.import_state(model, {**moments, "exp_avg.convs.0.weight": np.zeros((2, 12, 5))}, 3)


def test_float_lr_single_tensor_matches_torch_and_config_round_trips():
    """A float lr is held in float64 (Keras' own variable is float32: 1e-3 would be 1.00000005e-3)."""
    import keras
    import torch

    from bertcnn_tf import TorchAdamW

    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal((4, 3)), rng.standard_normal((3, 4, 3)) * [[[1e-3]], [[1.0]], [[1e-2]]]
    kp = keras.Variable(p0, dtype="float64")
    ours = TorchAdamW(1e-3, weight_decay=0.1, max_grad_norm=0.5)
    tp = torch.tensor(p0, requires_grad=True)
    ref = torch.optim.AdamW([tp], lr=1e-3, weight_decay=0.1)
    for g in grads:
        ours.apply([keras.ops.convert_to_tensor(g, dtype="float64")], [kp])
        tp.grad = torch.tensor(g)
        assert float(ours.grad_norm.numpy()) == pytest.approx(float(torch.nn.utils.clip_grad_norm_([tp], 0.5)), 1e-15)
        ref.step()
        np.testing.assert_allclose(kp.numpy(), tp.detach().numpy(), rtol=0, atol=1e-15)
    assert str(ours._learning_rate.dtype) == "float64"
    again = TorchAdamW.from_config(ours.get_config())
    assert (again.max_grad_norm, again.torch_weight_decay, again.epsilon) == (0.5, 0.1, 1e-8)
