"""torch's AdamW, clipping and linear warmup/decay for Keras 3, exactly (TensorFlow, JAX, torch backends).

A torch recipe moved to Keras with stock parts silently changes the optimizer:

- `keras.optimizers.AdamW` adds epsilon *before* the bias correction
  (`m̂ / (sqrt(v̂) + ε)` with ε inside the corrected scale): at step 1 with β2 = 0.999 its
  effective epsilon is 1/sqrt(1 - β2) ≈ 31.6x torch's, and its default epsilon is 1e-7,
  not torch's 1e-8.
- `global_clipnorm` scales by `max_norm / norm`; `torch.nn.utils.clip_grad_norm_` by
  `max_norm / (norm + 1e-6)` (and `clipnorm` is per tensor, not global).
- Keras has no linear-warmup-then-linear-decay schedule (transformers'
  `get_linear_schedule_with_warmup`), and a schedule evaluated one step late is a
  different run.
- `exclude_from_weight_decay` matches short variable names (`gamma`, `bias`), not
  torch's parameter names, so the no-decay set is easy to get subtly wrong.
- On TensorFlow, embedding gradients are `tf.IndexedSlices` with one row per token, so
  a token seen twice appears twice: norms over the slices are wrong (torch's embedding
  gradient is dense, rows summed).
- Keras keeps the learning rate and its schedule in float32: in a float64 run every
  step is off by the float32 rounding of lr (~6e-8 relative).

`TorchAdamW` and `LinearWarmupDecay` fix each of these; with the same gradients they
reproduce `torch.optim.AdamW` + `LambdaLR(get_linear_schedule_with_warmup)` +
`clip_grad_norm_` to float64 rounding (measured in tests/test_optimizers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras
import numpy as np
from keras import ops

from bertcnn_tf.schedule import LinearWarmupDecay
from parity.layout import is_decayed, rows
from parity.training.moments import MOMENTS, moment_key, split_moments

__all__ = ["LinearWarmupDecay", "TorchAdamW", "weight_table_decay"]


def weight_table_decay(model) -> Callable[[object], bool]:
    """A `TorchAdamW(decay=...)` predicate for a `bertcnn_tf.BertCNN`: decay iff the weight
    table says so for the variable's canonical tensor (`parity.layout.is_decayed`, the
    rule the torch trainer builds its param groups from)."""
    prefix = model.name + "/"
    decayed = {r.keras_path: is_decayed(r.torch_name) for r in rows(model.config)}

    def decay(variable) -> bool:
        path = variable.path.removeprefix(prefix)
        if path not in decayed:
            raise ValueError(f"Variable {variable.path!r} is not in the weight table of model {model.name!r}. "
                             f"Received: {variable.path!r}")  # fmt: skip
        return decayed[path]

    return decay


@keras.saving.register_keras_serializable(package="bertcnn")
class TorchAdamW(keras.optimizers.Optimizer):
    """`torch.optim.AdamW` (single-tensor path), with `clip_grad_norm_` built in, for Keras 3.

    Per update, with k = `iterations` (0-based), t = k + 1, lr = `learning_rate(k)`:

        g      = clip(grads) (global 2-norm over all gradients; coef = max_norm / (norm + 1e-6), at most 1)
        p     *= 1 - lr * weight_decay                 (only where `decay(variable)`)
        m      = m + (1 - β1) (g - m)                  (torch's lerp)
        v      = β2 v + (1 - β2) g²
        denom  = sqrt(v) / sqrt(1 - β2^t) + ε
        p     += (-lr / (1 - β1^t)) m / denom

    Args:
        learning_rate: a float, or a schedule (`LinearWarmupDecay` for torch's
            LambdaLR with transformers' linear warmup/decay). Float64 exactness: a float
            lr is held in float64 (Keras holds it in float32) and a `LinearWarmupDecay`
            is evaluated in each variable's dtype; any other Keras schedule returns
            float32, which rounds a float64 run's lr (~6e-8 relative per step).
        beta_1, beta_2, epsilon, weight_decay: torch's names `betas`, `eps`, `weight_decay`,
            with torch's defaults (0.9, 0.999, 1e-8, 0.01).
        max_grad_norm: clip like `clip_grad_norm_(params, max_norm)`; None: no clipping.
        decay: `variable -> bool`, which variables get weight decay (torch's param
            groups); None decays every variable, as a single torch param group.
            For a BertCNN pass `weight_table_decay(model)`.
        no_decay_paths: the serialised form of `decay` (what `get_config` writes once the
            optimizer is built): the `Variable.path`s that get no weight decay.

    After each update `grad_norm` holds the global gradient norm before clipping (what
    `clip_grad_norm_` returns). Moments and step move between frameworks with
    `export_state` / `import_state` (canonical torch names and layout).

    `grad_accum` N: N `apply` calls make one update, with the *sum* of their gradients (the
    caller weights each micro-batch's loss by its share of the update's rows, so the sum is
    the gradient of the update's mean loss, as torch's repeated `backward()` gives); the
    schedule, `iterations` and the AdamW step count updates, not micro-batches.

    Not supported (refused): Keras' `gradient_accumulation_steps` (it averages the
    micro-batches' gradients: wrong for a partial last update), EMA, loss scaling, Keras' own
    clipping arguments (they would change the update). Under `tf.distribute` strategies
    the update runs on the default strategy's path only.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 1e-2,
        max_grad_norm: float | None = None,
        decay: Callable[[object], bool] | None = None,
        no_decay_paths: list[str] | None = None,
        grad_accum: int = 1,
        name: str = "torch_adamw",
        **kwargs,
    ):
        for arg in ("gradient_accumulation_steps", "use_ema", "loss_scale_factor", "clipnorm", "clipvalue",
                    "global_clipnorm"):  # fmt: skip
            value = kwargs.pop(arg, None)
            if value:
                hint = "accumulate with grad_accum" if arg == "gradient_accumulation_steps" else \
                    "clip with max_grad_norm"  # fmt: skip
                raise ValueError(f"TorchAdamW does not support `{arg}` (it would change torch's update); "
                                 f"{hint}. Received: {arg}={value!r}")  # fmt: skip
        if isinstance(grad_accum, bool) or not isinstance(grad_accum, (int, np.integer)) or grad_accum < 1:
            raise ValueError(f"TorchAdamW: `grad_accum` must be a positive integer. Received: {grad_accum!r}")
        # Keras' weight decay is off: decay is applied here, decoupled, torch's way.
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        for n, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"TorchAdamW: `{n}` must be in [0, 1). Received: {b!r}")
        if not float(epsilon) >= 0.0 or not float(weight_decay) >= 0.0:
            raise ValueError(f"TorchAdamW: `epsilon` and `weight_decay` must be >= 0. Received: {epsilon!r}, "
                             f"{weight_decay!r}")  # fmt: skip
        if max_grad_norm is not None and not float(max_grad_norm) > 0.0:
            raise ValueError(f"TorchAdamW: `max_grad_norm` must be None or > 0. Received: {max_grad_norm!r}")
        if isinstance(self._learning_rate, keras.Variable) and _float64_available():
            # Keras keeps a float lr in a float32 variable: 2e-5 would train a float64 model
            # at 2.0000000233e-5. Hold it in float64; float32 runs round it once, like torch.
            old = self._learning_rate
            with keras.name_scope(self.name, caller=self):
                lr = keras.Variable(np.float64(learning_rate), dtype="float64", trainable=False,
                                    name="learning_rate", aggregation="only_first_replica")  # fmt: skip
            self._untrack_variable(old)
            self._track_variable(lr)
            self._learning_rate = lr
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.grad_accum = int(grad_accum)
        self.torch_weight_decay = float(weight_decay)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        if no_decay_paths is not None:
            if decay is not None:
                raise ValueError("TorchAdamW takes `decay` or `no_decay_paths`, not both. "
                                 f"Received: decay={decay!r}, no_decay_paths={no_decay_paths!r}")  # fmt: skip
            excluded = frozenset(no_decay_paths)
            decay = lambda v: v.path not in excluded  # noqa: E731
        self.decay = decay

    @classmethod
    def from_recipe(cls, recipe, model, num_rows: int, **kwargs) -> TorchAdamW:
        """The optimizer of a `parity.training.TrainingRecipe` for `model` on `num_rows` rows:
        its lr schedule, betas, eps, weight decay (weight-table no-decay set), clipping."""
        schedule = LinearWarmupDecay(recipe.lr, recipe.warmup(num_rows), recipe.total_steps(num_rows))
        return cls(learning_rate=schedule, beta_1=recipe.betas[0], beta_2=recipe.betas[1], epsilon=recipe.eps,
                   weight_decay=recipe.weight_decay, max_grad_norm=recipe.max_grad_norm,
                   decay=weight_table_decay(model), grad_accum=recipe.grad_accum, **kwargs)  # fmt: skip

    @property
    def iterations(self):
        """Updates done (Keras counts every `apply`; with `grad_accum` N, N applies make one update)."""
        if getattr(self, "grad_accum", 1) == 1:  # (Keras' __init__ may ask before it is set)
            return self._iterations
        return ops.floor_divide(self._iterations, self.grad_accum)

    # -- variables ----------------------------------------------------------------------------
    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._exp_avg, self._exp_avg_sq = self.add_optimizer_variables(var_list, ["exp_avg", "exp_avg_sq"])
        self._decayed = [True if self.decay is None else bool(self.decay(v)) for v in var_list]
        self._norm_dtype = _widest([v.dtype for v in var_list])
        self.grad_norm = self.add_variable((), dtype=self._norm_dtype, name="grad_norm")
        if self.grad_accum > 1:
            self._grad_sums = self.add_optimizer_variables(var_list, "grad_sum")

    # -- the update ---------------------------------------------------------------------------
    def _backend_apply_gradients(self, grads, trainable_variables):
        grads = [ops.cast(_dense(g), v.dtype) for g, v in zip(grads, trainable_variables, strict=True)]
        gate = None
        if self.grad_accum > 1:
            # Micro-batch losses come weighted by their share of the update's rows: their
            # gradients are *summed* (Keras' own accumulation averages them, which is wrong
            # whenever the micro-batches differ in size, as a last partial update does).
            # Every apply adds; the N-th updates and clears. `where`, not `cond`: one
            # traced path on every backend, and JAX's stateless apply sees every variable.
            gate = ops.equal(ops.mod(ops.add(self._iterations, 1), self.grad_accum), 0)
            sums = [self._grad_sums[self._get_variable_index(v)] for v in trainable_variables]
            grads = [ops.add(s.value, g) for s, g in zip(sums, grads, strict=True)]
            for s, g in zip(sums, grads, strict=True):
                self.assign(s, ops.where(gate, ops.zeros_like(g), g))
        grads = self._clip(grads, gate)
        scalars = {}
        for g, v in zip(grads, trainable_variables, strict=True):
            dtype = keras.backend.standardize_dtype(v.dtype)
            if dtype not in scalars:
                scalars[dtype] = self._scalars(dtype)
            self._update(g, v, scalars[dtype], gate)

    def _clip(self, grads, gate=None):
        """`torch.nn.utils.clip_grad_norm_`: the 2-norm of the per-tensor 2-norms, then
        `g * min(max_norm / (norm + 1e-6), 1)` (multiplied even when the coef is 1, as torch)."""
        dt = self._norm_dtype
        norms = ops.stack([ops.cast(ops.sqrt(ops.sum(ops.square(g))), dt) for g in grads])
        total = ops.sqrt(ops.sum(ops.square(norms)))
        self.grad_norm.assign(total if gate is None else ops.where(gate, total, self.grad_norm.value))
        if self.max_grad_norm is None:
            return grads
        coef = ops.minimum(
            ops.divide(_const(self.max_grad_norm, dt), ops.add(total, _const(1e-6, dt))), _const(1.0, dt)
        )
        return [ops.multiply(g, ops.cast(coef, g.dtype)) for g in grads]

    def _lr(self, dtype: str):
        if isinstance(self._learning_rate, LinearWarmupDecay):
            return self._learning_rate(self.iterations, dtype=dtype)
        return ops.cast(self._get_current_learning_rate(), dtype)

    def _scalars(self, dtype: str) -> dict:
        """torch computes these in Python doubles from the step; here in the variable's dtype."""
        lr = self._lr(dtype)
        t = ops.cast(ops.add(self.iterations, 1), dtype)  # torch's state["step"] after `step_t += 1`
        c = lambda x: _const(x, dtype)  # noqa: E731
        bias_correction1 = ops.subtract(c(1.0), ops.power(c(self.beta_1), t))
        bias_correction2 = ops.subtract(c(1.0), ops.power(c(self.beta_2), t))
        return {
            "keep": ops.subtract(c(1.0), ops.multiply(lr, c(self.torch_weight_decay))),  # 1 - lr * wd
            "neg_step_size": ops.negative(ops.divide(lr, bias_correction1)),
            "bias_correction2_sqrt": ops.sqrt(bias_correction2),
        }

    def _update(self, g, variable, s, gate=None):
        i = self._get_variable_index(variable)
        m, v = self._exp_avg[i], self._exp_avg_sq[i]
        dtype = variable.dtype
        c = lambda x: _const(x, dtype)  # noqa: E731
        p = variable.value
        if self._decayed[i] and self.torch_weight_decay != 0.0:
            p = ops.multiply(p, s["keep"])
        # exp_avg.lerp_(grad, 1 - beta1): torch's lerp picks its form by the weight.
        w = 1.0 - self.beta_1
        if w < 0.5:
            m_new = ops.add(m.value, ops.multiply(c(w), ops.subtract(g, m.value)))
        else:
            m_new = ops.subtract(g, ops.multiply(ops.subtract(g, m.value), c(1.0 - w)))
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        v_new = ops.add(ops.multiply(v.value, c(self.beta_2)), ops.multiply(ops.multiply(c(1.0 - self.beta_2), g), g))
        denom = ops.add(ops.divide(ops.sqrt(v_new), s["bias_correction2_sqrt"]), c(self.epsilon))
        # param.addcdiv_(exp_avg, denom, value=-step_size)
        p = ops.add(p, ops.divide(ops.multiply(s["neg_step_size"], m_new), denom))
        if gate is not None:  # a micro-batch that only accumulates leaves everything as it was
            m_new, v_new, p = (ops.where(gate, new, old.value) for new, old in ((m_new, m), (v_new, v), (p, variable)))
        self.assign(m, m_new)
        self.assign(v, v_new)
        self.assign(variable, p)

    # -- state across frameworks --------------------------------------------------------------
    def export_state(self, model) -> tuple[dict[str, np.ndarray], int]:
        """({`exp_avg.<canonical>` / `exp_avg_sq.<canonical>`: array in torch layout}, step).

        One entry per variable the optimizer trains (BERT's pooler, which no loss
        reaches, has none, as in torch's AdamW state). `step` is torch's `state["step"]`.
        """
        out: dict[str, np.ndarray] = {}
        for var, row in self._rows(model):
            i = self._get_variable_index(var)
            for kind, slots in zip(MOMENTS, (self._exp_avg, self._exp_avg_sq), strict=True):
                out[moment_key(kind, row.torch_name)] = np.ascontiguousarray(
                    row.op.to_torch(np.asarray(ops.convert_to_numpy(slots[i].value)))
                )
        return out, int(ops.convert_to_numpy(self.iterations))

    def import_state(self, model, tensors: Mapping[str, np.ndarray], step: int) -> None:
        """Load moments saved by `export_state` or by torch (`parity.training.moments`), strictly.

        Builds the optimizer on `model.trainable_variables` if needed; the names must be
        exactly those this optimizer trains, the shapes those of the weight table.
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"The AdamW step must be an integer >= 0. Received: {step!r}")
        if not self.built:
            self.build(model.trainable_variables)
        moments = split_moments(tensors)
        pairs = self._rows(model)
        from parity.layout import check_tensors

        expected = {row.torch_name: row.torch_shape for _, row in pairs}
        for kind in MOMENTS:
            check_tensors(moments[kind], expected, what=f"AdamW state ({kind})")
        for var, row in pairs:
            i = self._get_variable_index(var)
            for kind, slots in zip(MOMENTS, (self._exp_avg, self._exp_avg_sq), strict=True):
                value = row.op.to_keras(np.asarray(moments[kind][row.torch_name]))
                slots[i].assign(np.ascontiguousarray(value).astype(slots[i].dtype, copy=False))
        self._iterations.assign(int(step) * self.grad_accum)

    def _rows(self, model) -> list:
        """(variable, weight-table row) for every variable this optimizer trains, table order."""
        if not self.built:
            raise ValueError("The optimizer has no state before it is built (first fit step or `build`). "
                             "Received: an unbuilt TorchAdamW")  # fmt: skip
        prefix = model.name + "/"
        by_path = {v.path.removeprefix(prefix): v for v in self._trainable_variables}
        table = [r for r in rows(model.config) if r.keras_path in by_path]
        unknown = sorted(set(by_path) - {r.keras_path for r in table})
        if unknown:
            raise ValueError(f"Optimizer variables outside model {model.name!r}'s weight table. Received: {unknown}")
        return [(by_path[r.keras_path], r) for r in table]

    def get_config(self):
        config = super().get_config()
        for key in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema", "ema_momentum",
                    "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"):  # fmt: skip
            config.pop(key, None)
        config.update(
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            weight_decay=self.torch_weight_decay,
            max_grad_norm=self.max_grad_norm,
            no_decay_paths=self._no_decay_paths(),
            grad_accum=self.grad_accum,
        )
        return config

    def _no_decay_paths(self) -> list[str] | None:
        """`decay` is code; once built, the variables it spared are data, saved with the config."""
        if self.decay is None:
            return None
        if not self.built:
            raise ValueError("TorchAdamW with a `decay` predicate can be serialised once built (after the first "
                             "update or `optimizer.build(model.trainable_variables)`). Received: an unbuilt "
                             "optimizer")  # fmt: skip
        return sorted(v.path for v, d in zip(self._trainable_variables, self._decayed, strict=True) if not d)


def _dense(g):
    """Sum the repeated rows of a TensorFlow `IndexedSlices` into a dense gradient (torch's
    embedding gradient); every other gradient is returned as is."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(g, tf.IndexedSlices):
            return tf.convert_to_tensor(g)  # unsorted_segment_sum over the indices
    return g


def _const(x: float, dtype: str):
    """A Python float as a tensor of `dtype`, rounded once. Not `ops.cast(x, dtype)`: on
    TensorFlow that converts to float32 first, so a float64 run would get float32's 0.1."""
    return ops.convert_to_tensor(x, dtype=dtype)


def _float64_available() -> bool:
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


def _widest(dtypes) -> str:
    names = [keras.backend.standardize_dtype(d) for d in dtypes]
    return "float64" if "float64" in names else (names[0] if names else keras.backend.floatx())
