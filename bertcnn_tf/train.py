"""The Keras trainer: `compile` + `fit`, the way Keras users train, with torch's AdamW recipe.

`TorchAdamW` (torch's update and `clip_grad_norm_`, exactly) and `LinearWarmupDecay`
(LambdaLR's linear warmup/decay, step for step) from `bertcnn_tf.optimizers`; the
no-decay set from the weight table; loss `SparseCategoricalCrossentropy(from_logits=True)`
computed in the run's dtype (a Keras Loss computes in `floatx()` otherwise). A
`PyDataset` yields exactly the shared batch plan's batches in order (`fit(shuffle=False)`),
each padded to its longest row; callbacks log, evaluate and save. Runs on the TensorFlow,
JAX and torch Keras backends (float64 on JAX needs `JAX_ENABLE_X64=1` before start-up).

Resuming mid-epoch is two `fit` calls: the rest of that epoch, then the whole epochs
after it (each `fit` sees epochs of one length). Dropout: the Keras dropout layers'
seed generators start from `keras.utils.set_random_seed(recipe.seed)` and their states
are saved with the run; on Keras' torch backend (whose unseeded dropout draws from
torch's global generator) torch is re-seeded every update from (seed, step), as in the
PyTorch trainer.
"""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
from keras import ops

from bertcnn_tf.distributed import device_count, pad_for_devices, use_data_parallel
from bertcnn_tf.dtypes import keep_float64
from bertcnn_tf.losses import per_row_loss, training_loss
from bertcnn_tf.model import BertCNN
from bertcnn_tf.optimizers import TorchAdamW
from parity.training.loop import Run
from parity.training.state import Snapshot, step_seed

SEED_STATE = "seed_generator_state"
# JAX compiles `fit`'s step once per batch shape (~4 s each for MiniLM on 2 cores, measured by
# benchmarks/profile_train.py): widths rounded up to a multiple of this cut an epoch's 26 distinct
# widths to 4. TensorFlow traces once with free dimensions and needs none of it.
WIDTH_BUCKET = 16


def bucketed(inputs: dict[str, np.ndarray], multiple: int, cap: int, pad_token_id: int) -> dict[str, np.ndarray]:
    """Right-pad a batch to the next multiple of `multiple` tokens (at most `cap`): masked positions only.

    The logits (and so the loss and its gradients) do not depend on masked positions: attention
    adds the mask's minimum before the softmax and the pooling skips them.
    """
    width = inputs["input_ids"].shape[-1]  # tokens: the last axis, also of (batch, windows, tokens) documents
    target = min(-(-width // multiple) * multiple, max(cap, width))
    if target == width:
        return inputs
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0}
    return {k: np.pad(v, ((0, 0),) * (v.ndim - 1) + ((0, target - width),), constant_values=fill[k])
            for k, v in inputs.items()}  # fmt: skip


class PlanDataset(keras.utils.PyDataset):
    """The plan's batches of one epoch, in order, from batch `first` on; `epoch` is set by `PlanCallback`.

    With `grad_accum` N each update is N consecutive Keras batches, its micro-batches, with
    sample weights n_k / U (the optimizer sums their gradients); an update with fewer than
    N micro-batches (a last, partial one) is filled up with a one-row stand-in weighted 0.
    """

    def __init__(self, run: Run, epoch: int, first: int = 0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.run, self.epoch, self.first = run, epoch, first
        self.devices = device_count()  # > 1 under --data-parallel
        self.accum = run.recipe.grad_accum
        self.bucket = WIDTH_BUCKET if keras.backend.backend() == "jax" else 1
        self._micro: tuple[tuple[int, int], list] | None = None  # the last update's micro-batches

    @property
    def num_batches(self) -> int:
        """Keras batches (micro-batches) of this epoch; Keras' PyDataset adapter reads this, not len()."""
        return (self.run.steps_per_epoch - self.first) * self.accum

    def __len__(self) -> int:
        return self.num_batches

    def _bucketed(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        config = self.run.start.config  # a bucket of 1 leaves every batch as it is
        return bucketed(inputs, self.bucket, config.max_position_embeddings, config.pad_token_id)

    @property
    def weighted(self) -> bool:
        """Batches carry sample weights: micro-batch shares, or class weights (device padding adds its own)."""
        return self.accum > 1 or self.run.row_weights is not None

    def __getitem__(self, i: int):
        run, dtype = self.run, self.run.recipe.dtype
        if self.accum == 1:
            inputs, labels = run.batch(self.epoch, self.first + i)
            weight = 1.0
        else:
            key = (self.epoch, self.first + i // self.accum)
            if self._micro is None or self._micro[0] != key:
                self._micro = (key, run.micro(*key))
            micro, k = self._micro[1], i % self.accum
            if k < len(micro):
                inputs, labels, weight = micro[k]
            else:  # filler: no rows left in this update
                inputs, labels, weight = {n: v[:1] for n, v in micro[0][0].items()}, micro[0][1][:1], 0.0
        inputs = self._bucketed(inputs)
        if run.start.config.multi_label:
            labels = labels.astype(dtype)  # 0/1 targets of the sigmoid, in the loss's dtype
        rows = None
        if run.row_weights is not None:  # class weights: w[y_i] B / sum_j w[y_j], torch's weighted mean (see losses)
            w_y = np.asarray(run.recipe.class_weights, dtype=np.float64)[labels]
            rows = w_y * (len(labels) / w_y.sum())
        if self.devices > 1:  # padded to a multiple of the devices; the sample weights keep the exact mean
            inputs, labels, w = pad_for_devices(inputs, labels, self.devices, dtype)
        elif not self.weighted:
            return inputs, labels
        else:
            w = np.ones(len(labels), dtype=dtype)
        if rows is not None:
            w = w * np.concatenate([rows, np.ones(len(w) - len(rows))])
        if weight != 1.0:
            w = w * np.asarray(weight, dtype=dtype)
        return inputs, labels, np.asarray(w, dtype=dtype)


def _fit_input(dataset: PlanDataset):
    """What `fit` gets: the PyDataset; on TensorFlow wrapped in tf.data with (None, None) shapes.

    Keras' TensorFlow adapter fixes the batch shapes from the first two batches it
    samples, so batches padded to their own longest row would later be refused; an
    explicit signature with free dimensions keeps every batch as the plan made it.
    """
    if keras.backend.backend() != "tensorflow":
        return dataset
    import tensorflow as tf

    first = dataset[0]  # its ranks: (batch, tokens) or (batch, windows, tokens); labels (batch,) or multi-hot
    spec = tf.TensorSpec((None,) * first[0]["input_ids"].ndim, tf.int64)
    labels = tf.TensorSpec((None, *first[1].shape[1:]), first[1].dtype)
    sig = ({k: spec for k in ("input_ids", "attention_mask", "token_type_ids")}, labels)
    if dataset.weighted:
        sig = (*sig, tf.TensorSpec((None,), dataset.run.recipe.dtype))
    ds = tf.data.Dataset.from_generator(lambda: (dataset[i] for i in range(len(dataset))), output_signature=sig)
    return ds.apply(tf.data.experimental.assert_cardinality(len(dataset)))


class BatchLoss(keras.metrics.Metric):
    """The training loss of the last batch (Keras' `loss` log is a running mean over the epoch)."""

    def __init__(self, name: str = "batch_loss", dtype: str = "float32", multi_label: bool = False,
                 class_weights=None):  # fmt: skip
        super().__init__(name=name, dtype=dtype)
        self.rows = per_row_loss(multi_label, class_weights)
        self.last = self.add_variable((), initializer="zeros", dtype=dtype, name="last")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ce = self.rows(y_true, ops.cast(y_pred, self.dtype))
        if sample_weight is not None:  # micro-batch shares, class weights, device padding: as the loss weighs them
            ce = ce * ops.cast(sample_weight, self.dtype)
        self.last.assign(ops.mean(ce))

    def result(self):
        return ops.convert_to_tensor(self.last)  # a Variable here fails JAX's symbolic build in fit

    def reset_state(self):
        self.last.assign(0.0)


class PlanCallback(keras.callbacks.Callback):
    """Maps each Keras batch to its plan position; logs, evaluates and saves through the shared `Run`."""

    def __init__(self, trainer: KerasTrainer, dataset: PlanDataset):
        super().__init__()
        self.trainer, self.dataset = trainer, dataset
        self.todo = iter(trainer.run.remaining())

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if batch % self.dataset.accum:
            return  # a later micro-batch of the update under way
        self.position, self.loss = next(self.todo), 0.0
        if keras.backend.backend() == "torch":
            import torch

            torch.manual_seed(step_seed(self.trainer.run.recipe.seed, self.position[2]))

    def on_train_batch_end(self, batch, logs=None):
        self.loss += float(logs["batch_loss"])  # the micro-batches' weighted means add up to the update's mean
        if (batch + 1) % self.dataset.accum:
            return
        t, run = self.trainer, self.trainer.run
        epoch, b, step = self.position
        t.sync()
        run.log_update(epoch, b, step, self.loss, float(ops.convert_to_numpy(t.optimizer.grad_norm)))
        t.state = run.position_after(epoch, b, step)
        if run.after_update(epoch, b, step, t.predict, lambda: t.snapshot(t.state)):
            self.model.stop_training = True  # Keras ends `fit` after this batch; the save is written


class KerasTrainer:
    """Trains `run.start` with the Keras build; `fit()` returns the final snapshot."""

    def __init__(self, run: Run, *, data_parallel: bool = False):
        self.run = run
        snap, r = run.start, run.recipe
        if r.dtype == "float64":
            keep_float64()
            if keras.backend.backend() == "jax":
                import jax

                if not jax.config.jax_enable_x64:
                    raise ValueError("float64 training on Keras' JAX backend needs JAX_ENABLE_X64=1 in the "
                                     "environment (JAX silently truncates float64 to float32 otherwise). "
                                     "Received: jax_enable_x64 off")  # fmt: skip
        keras.utils.set_random_seed(r.seed)  # the dropout layers' seed generators start from here
        config = snap.config if r.dropout else snap.config.without_dropout()
        if data_parallel:
            use_data_parallel()  # before the model is built: its variables are created replicated
        # --mixed-precision bf16: Keras' mixed_bfloat16 policy, float32 variables and bf16 compute.
        self.model = BertCNN(config, dtype="mixed_bfloat16" if r.mixed_precision == "bf16" else r.dtype)
        self.model.set_canonical_weights({k: np.asarray(v) for k, v in snap.tensors.items()})
        self.optimizer = TorchAdamW.from_recipe(r, self.model, len(run.labels))
        multi = snap.config.multi_label
        pos_weight = r.class_weights if multi else None  # single-label class weights travel as sample weights
        self.model.compile(
            optimizer=self.optimizer,
            loss=training_loss(multi, pos_weight, r.dtype),
            # weighted: Keras gives sample weights (micro-batch shares, class weights, device padding) only to these
            weighted_metrics=[BatchLoss(dtype=r.dtype, multi_label=multi, class_weights=pos_weight)],
            # TensorFlow: a graph per batch shape (reduce_retracing), no XLA, whose
            # recompiles per shape cost more than they save here; JAX: always jitted.
            jit_compile=keras.backend.backend() == "jax",
        )
        self.optimizer.build(self.model.trainable_variables)
        if snap.state.step:
            self.optimizer.import_state(self.model, snap.moments, snap.state.step)
        if snap.state.framework == "keras" and snap.rng:  # a torch save carries no Keras seed states
            self._set_seed_states(snap.rng)
        # From here on the run (and its saves) is this framework's.
        run.start = replace(snap, state=replace(snap.state, framework="keras"))
        self.state = run.start.state

    # -- state in and out -----------------------------------------------------------------
    def _seed_variables(self) -> dict:
        """The dropout layers' seed-generator states, keyed by their order in the model.

        Not by path: Keras names seed generators from a process-wide counter
        (`seed_generator_7/...`), so paths differ between processes and between models.
        """
        found = [v for v in self.model.variables if v.path.endswith(SEED_STATE)]
        return {f"keras/seed_generator/{i}": v for i, v in enumerate(found)}

    def _set_seed_states(self, rng: dict[str, np.ndarray]) -> None:
        variables = self._seed_variables()
        if rng.keys() != variables.keys():
            raise ValueError(f"The saved random state does not fit this model: expected {len(variables)} dropout "
                             f"seed states. Received: {sorted(rng)}")  # fmt: skip
        for key, v in variables.items():
            v.assign(rng[key].astype(np.asarray(ops.convert_to_numpy(v.value)).dtype))

    def sync(self) -> None:
        """Make the model's variables current (JAX keeps the training state outside them during fit)."""
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()

    def snapshot(self, state) -> Snapshot:
        self.sync()
        s = self.run.start
        moments = self.optimizer.export_state(self.model)[0] if state.step else {}
        rng = {k: np.asarray(ops.convert_to_numpy(v.value)) for k, v in self._seed_variables().items()}
        return Snapshot(s.config, self.model.get_canonical_weights(), moments, s.recipe, state, rng,
                        list(self.run.metrics))  # fmt: skip

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.sync()
        logits = self.model(inputs, training=False)
        if self.run.recipe.mixed_precision:
            logits = ops.cast(logits, "float32")  # bf16 compute; evaluated in float32 like the torch side
        return np.asarray(ops.convert_to_numpy(logits))

    # -- training ---------------------------------------------------------------------------
    def fit(self) -> Snapshot:
        run, st = self.run, self.run.start.state
        if not run.remaining() or run.begin():
            return run.stamp(self.snapshot(self.state))
        segments = []
        if st.batch:  # the rest of a started epoch, then the whole epochs after it
            segments.append((st.epoch, st.epoch + 1, st.batch))
            if st.epoch + 1 < run.recipe.epochs:
                segments.append((st.epoch + 1, run.recipe.epochs, 0))
        else:
            segments.append((st.epoch, run.recipe.epochs, 0))
        callback = None
        for first_epoch, end_epoch, first_batch in segments:
            dataset = PlanDataset(run, first_epoch, first_batch)
            cb = PlanCallback(self, dataset)
            if callback is not None:
                cb.todo = callback.todo  # one walk through the remaining updates
            callback = cb
            self.model.fit(_fit_input(dataset), epochs=end_epoch, initial_epoch=first_epoch, shuffle=False,
                           callbacks=[cb], verbose=0)  # fmt: skip
            if run.stopped or run.early_stopped:
                break
        return run.stamp(self.snapshot(self.state))


def train(run: Run, **kwargs) -> Snapshot:
    """Train with the Keras build on this process's Keras backend; returns the final snapshot."""
    return KerasTrainer(run, **kwargs).fit()


__all__ = ["BatchLoss", "KerasTrainer", "PlanDataset", "bucketed", "train"]
