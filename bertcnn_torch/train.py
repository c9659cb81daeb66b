"""The PyTorch trainer: `torch.optim.AdamW`, `LambdaLR`, `clip_grad_norm_`, a plain loop.

The recipe, batch plan, schedule formula, saves and log are shared with the Keras
trainer (`parity.training`); this module only computes updates the way torch users do.

- Param groups: weight decay on every trained tensor except biases and LayerNorm weights,
  decided by the weight table's predicate (the Keras optimizer uses the same one).
- BERT's pooler is not given to the optimizer: BERT-CNN's head reads the last hidden
  state, no loss reaches the pooler, and it keeps its checkpoint values (as in Keras,
  where it is non-trainable).
- Dropout is re-seeded every update from (seed, step, rank) (`step_seed`), so a resumed
  run draws the masks the uninterrupted run drew, with no RNG history to carry.
- Data parallel ready: an update's global batch may be split into per-rank shares; each
  share's mean loss is weighted by `Share.loss_scale` (W n_r / B, see `distributed`), so
  DDP's gradient average is the gradient of the global-batch mean.
- Gradient accumulation (`grad_accum` N): an update's rows run as N micro-batches, each
  weighted by its share of the update's rows, gradients summed (DDP syncs on the last).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from bertcnn_torch import distributed as D
from bertcnn_torch.model import BertCNN
from parity.layout import is_decayed
from parity.training.loop import Run
from parity.training.moments import MOMENTS, from_torch_state, moment_key, to_torch_state
from parity.training.state import Snapshot, step_seed, trained_names

Micro = tuple[dict[str, np.ndarray], np.ndarray, float]  # (inputs, labels, weight): `Run.micro`


def param_groups(model: BertCNN, weight_decay: float) -> list[dict]:
    """AdamW groups over the trained tensors: decayed, and not decayed (biases, LayerNorm weights)."""
    params = dict(model.named_parameters())
    names = trained_names(model.config)
    decayed = [n for n in names if is_decayed(n)]
    kept = [n for n in names if not is_decayed(n)]
    return [
        {"params": [params[n] for n in decayed], "weight_decay": weight_decay, "names": decayed},
        {"params": [params[n] for n in kept], "weight_decay": 0.0, "names": kept},
    ]


class TorchTrainer:
    """Trains `run.start` with the PyTorch build; `fit()` returns the final snapshot."""

    def __init__(self, run: Run, *, device: str = "cpu", rank: int = 0, world_size: int = 1):
        self.run, self.device, self.rank, self.world_size = run, device, rank, world_size
        snap, r = run.start, run.recipe
        run.start = replace(snap, state=replace(snap.state, framework="torch"))  # its saves are torch's now
        self.dtype = getattr(torch, r.dtype)
        config = snap.config if r.dropout else snap.config.without_dropout()
        tensors = {k: np.asarray(v, dtype=r.dtype) for k, v in snap.tensors.items()}
        self.model = BertCNN._from_tensors(config, tensors).to(device=device, dtype=self.dtype)
        self.world = D.World(rank, world_size)
        self.net = D.wrap(self.model, self.world) if self.world.distributed else self.model  # DDP under torchrun
        if self.world.distributed:  # every rank stops after the same update (a SIGTERM reaches each at its own time)
            run.agree = lambda flag: D.any_rank(flag, self.world, device)
        cw = r.class_weights
        self.class_weights = None if cw is None else torch.tensor(cw, dtype=self.dtype, device=device)
        self.groups = param_groups(self.model, r.weight_decay)
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in self.groups]
        self.optimizer = torch.optim.AdamW(groups, lr=r.lr, betas=r.betas, eps=r.eps, weight_decay=r.weight_decay)
        if snap.state.step:
            self._load_moments(snap.moments, snap.state.step)
        for g in self.optimizer.param_groups:
            g["initial_lr"] = r.lr
        # LambdaLR at update k sets lr = peak x factor(k); resuming at `step` is last_epoch = step - 1.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, run.factor, last_epoch=snap.state.step - 1)

    def _names(self) -> list[str]:
        """Canonical name of each optimizer parameter index (torch numbers all groups' parameters in order)."""
        return [n for g in self.groups for n in g["names"]]

    def _load_moments(self, moments: dict[str, np.ndarray], step: int) -> None:
        sd = self.optimizer.state_dict()
        names, params = self._names(), dict(self.model.named_parameters())
        sd["state"] = {
            i: {
                "step": torch.tensor(float(step)),  # torch keeps `step` as a float32 CPU scalar
                **{m: torch.from_numpy(np.ascontiguousarray(entry[m])).to(params[names[i]]) for m in MOMENTS},
            }
            for i, entry in to_torch_state(moments, step, names).items()
        }
        self.optimizer.load_state_dict(sd)

    def moments(self) -> dict[str, np.ndarray]:
        """AdamW moments under canonical names (torch layout): exp_avg.<name>, exp_avg_sq.<name>."""
        names = self._names()
        found, _ = from_torch_state(self.optimizer.state_dict()["state"], names)
        shapes = {n: tuple(p.shape) for n, p in self.model.named_parameters()}
        # A parameter that never had a gradient has no torch state: its moments are zero.
        return {
            moment_key(m, n): found.get(moment_key(m, n), np.zeros(shapes[n], self.run.recipe.dtype))
            for n in names
            for m in MOMENTS
        }

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def snapshot(self, state) -> Snapshot:
        s = self.run.start
        return Snapshot(s.config, self.weights(), self.moments() if state.step else {}, s.recipe, state,
                        {}, list(self.run.metrics))  # fmt: skip

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """torch's own losses (`parity.training.objective`): `cross_entropy(weight=)` for one label per text,
        `binary_cross_entropy_with_logits(pos_weight=)` for a set of labels, means over rows (and labels)."""
        if self.run.start.config.multi_label:
            return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), pos_weight=self.class_weights)
        return F.cross_entropy(logits, y, weight=self.class_weights)

    def _share_scale(self, mine: D.Share, labels: np.ndarray) -> float:
        """This rank's factor W s_r / S: s_r, S the sums of the rows' weights in its share and in the batch."""
        weights = self.run.row_weights
        if weights is None or not mine.size or not self.world.distributed:
            return mine.loss_scale
        rows = np.asarray(self.run.start.recipe.class_weights, dtype=np.float64)[labels]
        return float(self.world_size * rows[mine.start : mine.stop].sum() / rows.sum())

    def _autocast(self):
        """`torch.autocast` to bf16 with `mixed_precision="bf16"`: float32 weights and gradients, bf16 matmuls."""
        on = self.run.recipe.mixed_precision == "bf16"
        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16, enabled=on)

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        was = self.model.training
        self.model.eval()
        with torch.no_grad(), self._autocast():
            logits = self.model(**{k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}).to(self.dtype)
        self.model.train(was)
        return logits.detach().cpu().numpy()

    def update(self, micro: list[Micro], step: int) -> tuple[float, float | None]:
        """One AdamW update on a global batch of micro-batches (this rank's share of each); (global loss, grad norm).

        Micro-batch k of n_k rows in an update of U rows is weighted n_k / U, so the summed
        gradients are those of the update's mean loss (HF's gradient accumulation, with
        its per-update item count). Dropout is seeded once per update: the micro-batches
        draw their masks in order, as one process does.
        """
        torch.manual_seed(step_seed(self.run.recipe.seed, step, self.rank))
        self.optimizer.zero_grad(set_to_none=True)
        total = None
        for k, (inputs, labels, weight) in enumerate(micro):
            mine = D.shard(len(labels), self.rank, self.world_size)  # an empty share runs a stand-in row, weighted 0
            x = {key: torch.from_numpy(mine.take(v)).to(self.device) for key, v in inputs.items()}
            y = torch.from_numpy(mine.take(labels)).to(self.device)
            # DDP reduces gradients on the last micro-batch's backward only.
            sync = self.net.no_sync() if self.world.distributed and k + 1 < len(micro) else contextlib.nullcontext()
            with sync:
                # The share's mean weighted W n_r / B (with class weights: W s_r / S, sums of the rows' weights):
                # DDP's average over ranks is then the global-batch loss.
                with self._autocast():  # bf16 compute (--mixed-precision bf16); the loss in the training dtype
                    logits = self.net(**x)
                loss = self.loss(logits.to(self.dtype), y) * self._share_scale(mine, labels)
                if weight != 1.0:
                    loss = loss * weight
                loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        params = [p for g in self.groups for p in g["params"]]
        # max_norm=inf measures the norm and scales by exactly 1.0: no clipping, same norm.
        mx = self.run.recipe.max_grad_norm
        norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf") if mx is None else mx))
        self.optimizer.step()
        self.scheduler.step()
        return float(D.all_reduce_mean(total, self.world)), norm

    def fit(self) -> Snapshot:
        """Every remaining update, or up to the one after which `run.stop` asks to stop (saved there)."""
        run = self.run
        self.model.train()
        state = run.start.state
        if run.begin():
            return run.stamp(self.snapshot(state))
        for epoch, batch, step in run.remaining():
            loss, norm = self.update(run.micro(epoch, batch), step)
            run.log_update(epoch, batch, step, loss, norm)
            state = run.position_after(epoch, batch, step)
            if run.after_update(epoch, batch, step, self.predict, lambda s=state: self.snapshot(s)):
                break
        return run.stamp(self.snapshot(state))


def train(run: Run, **kwargs) -> Snapshot:
    """Train with the PyTorch build; returns the final snapshot (saved under `run.out` if set)."""
    return TorchTrainer(run, **kwargs).fit()


__all__: Sequence[str] = ["TorchTrainer", "param_groups", "train"]
