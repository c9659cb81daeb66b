"""torchrun + DDP is the same training as one process: shares, loss weights, AdamW steps.

The 2-rank side runs under `python -m torch.distributed.run --standalone` (gloo, CPU) with
this file as the worker script; the single-process reference is a plain loop in the
pytest process that knows nothing about ranks. float64, dropout off, file order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertcnn_torch import distributed as D

ROOT = Path(__file__).resolve().parents[2]
ROWS, BATCH, EPOCHS = 11, 5, 2  # batches 5, 5, 1: shares 3+2, 3+2 and 1+0 (the empty share)
GRAD_BATCHES = ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4], [6])  # equal, uneven, one row for two ranks
LR, CLIP = 2.0**-7, 0.5


# -- the shares and their weights (no processes) -----------------------------------------
@given(st.integers(1, 40), st.integers(1, 9))
def test_shares_are_contiguous_and_cover_the_batch_in_rank_order(size, world):
    shares = [D.shard(size, r, world) for r in range(world)]
    assert [s.start for s in shares] == [0] + [s.stop for s in shares[:-1]]
    assert shares[-1].stop == size
    assert max(s.size for s in shares) - min(s.size for s in shares) <= 1
    rows = np.arange(size)
    assert np.concatenate([rows[s.start : s.stop] for s in shares]).tolist() == rows.tolist()


@given(st.integers(1, 40), st.integers(1, 9), st.integers(0, 2**16))
def test_loss_weights_make_the_rank_average_the_global_mean(size, world, seed):
    """(1/W) sum_r scale_r * mean(share_r) == mean(batch): DDP's average is the one-process loss."""
    losses = np.random.default_rng(seed).random(size) + 0.5
    terms = []
    for r in range(world):
        s = D.shard(size, r, world)
        local = losses[s.rows]  # the stand-in row when the share is empty
        terms.append(s.loss_scale * local.mean())
        assert s.loss_scale == (1.0 if s.size * world == size else world * s.size / size)
    assert abs(np.mean(terms) - losses.mean()) <= 1e-15 * losses.mean() * world


def test_equal_shares_weigh_exactly_one_and_an_empty_share_zero():
    assert [D.shard(6, r, 2).loss_scale for r in range(2)] == [1.0, 1.0]
    assert [(s.size, s.loss_scale) for s in (D.shard(1, r, 2) for r in range(2))] == [(1, 2.0), (0, 0.0)]
    assert D.shard(1, 1, 2).rows == slice(0, 1)


def test_environment_and_backend_choices(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert D.env_world() == D.World() and D.env_world().is_main and not D.env_world().distributed
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match=r"Partial torchrun environment.*Received"):
        D.env_world()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ValueError, match=r"must be integers.*Received"):
        D.env_world()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert D.env_world() == D.World(rank=1, world_size=2, local_rank=1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match=r"RANK < WORLD_SIZE.*Received"):
        D.env_world()
    assert D.choose_backend("cpu") == "gloo" and D.choose_backend("cuda:0") == "nccl"
    assert D.choose_backend("cuda", "gloo") == "gloo"
    with pytest.raises(ValueError, match=r"nccl reduces CUDA tensors only.*Received"):
        D.choose_backend("cpu", "nccl")
    with pytest.raises(ValueError, match=r"expected one of.*Received: 'mpi'"):
        D.choose_backend("cpu", "mpi")


# -- the model, the data, and a plain single-process reference ------------------------------
def _setup():
    from parity.config import BertCnnConfig
    from tests.helpers import TINY, random_inputs, random_tensors

    config = BertCnnConfig(**TINY, head_hidden_size=7).without_dropout()
    tensors = random_tensors(config, seed=3, dtype=np.float64)
    lengths = [7, 4, 2, 5, 1, 6, 3, 7, 2, 4, 6]
    inputs = random_inputs(config, lengths, seed=3)
    labels = np.random.default_rng(3).integers(0, config.num_labels, size=len(lengths))
    return config, tensors, inputs, labels


def _batch(inputs, labels, idx):
    """Rows `idx`, padded to their longest (as one process pads a batch)."""
    import torch

    idx = np.asarray(idx)
    width = int(inputs["attention_mask"][idx].sum(axis=1).max())
    x = {k: torch.from_numpy(np.ascontiguousarray(v[idx, :width])) for k, v in inputs.items()}
    return x, torch.from_numpy(labels[idx])


def _model(config, tensors):
    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(config, tensors)
    model.train()
    return model


def _plan():
    return [list(range(i, min(i + BATCH, ROWS))) for _ in range(EPOCHS) for i in range(0, ROWS, BATCH)]


def _grads(model):
    return {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters() if p.grad is not None}


def _reference():
    """One process: full-batch mean cross-entropy; AdamW + clip_grad_norm_ over the plan."""
    import torch
    import torch.nn.functional as F

    config, tensors, inputs, labels = _setup()
    grads = []
    for idx in GRAD_BATCHES:
        model = _model(config, tensors)
        x, y = _batch(inputs, labels, idx)
        F.cross_entropy(model(**x), y).backward()
        grads.append(_grads(model))
    model = _model(config, tensors)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    norms = []
    for idx in _plan():
        x, y = _batch(inputs, labels, idx)
        opt.zero_grad()
        F.cross_entropy(model(**x), y).backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        opt.step()
    return grads, {k: v.detach().numpy() for k, v in model.state_dict().items()}, norms


# -- the 2-rank side (this file is the torchrun worker) --------------------------------------
def _worker(out: Path) -> None:
    import torch
    import torch.nn.functional as F

    world = D.init("cpu")
    config, tensors, inputs, labels = _setup()

    def ddp_grads(idx, weighted):
        model = D.wrap(_model(config, tensors), world)
        x, y = _batch(inputs, labels, idx)  # the one-process padded batch ...
        share = D.shard(len(idx), world.rank, world.world_size)
        x, y = {k: share.take(v) for k, v in x.items()}, share.take(y)  # ... this rank's rows
        loss = F.cross_entropy(model(**x), y) * (share.loss_scale if weighted else 1.0)
        loss.backward()
        return _grads(D.unwrap(model)), float(D.all_reduce_mean(loss, world))

    results = {}
    for j, idx in enumerate(GRAD_BATCHES):
        results[f"grad{j}"], results[f"loss{j}"] = ddp_grads(idx, True)
        results[f"naive{j}"], _ = ddp_grads(idx, False)

    model = D.wrap(_model(config, tensors), world)
    opt = torch.optim.AdamW(D.unwrap(model).parameters(), lr=LR, weight_decay=0.01)
    norms = []
    for idx in _plan():
        x, y = _batch(inputs, labels, idx)
        share = D.shard(len(idx), world.rank, world.world_size)
        opt.zero_grad()
        loss = F.cross_entropy(model(**{k: share.take(v) for k, v in x.items()}), share.take(y)) * share.loss_scale
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        opt.step()
    weights = {k: v.detach().numpy() for k, v in D.unwrap(model).state_dict().items()}
    # Every rank ends with the same weights (nothing drifts): rank 0 checks against all.
    gathered = [None] * world.world_size
    torch.distributed.all_gather_object(gathered, weights)

    def write():
        grads = [key for key in results if key.startswith(("grad", "naive"))]
        flat = {f"{key}/{n}": v for key in grads for n, v in results[key].items()}
        np.savez(out / "ddp.npz", **flat, **{f"final/{k}": v for k, v in weights.items()})
        same = all(np.array_equal(g[k], weights[k]) for g in gathered for k in weights)
        meta = {"world": world.world_size, "backend": world.backend, "norms": norms, "replicas_equal": same,
                "losses": [results[f"loss{j}"] for j in range(len(GRAD_BATCHES))]}  # fmt: skip
        (out / "meta.json").write_text(json.dumps(meta))

    D.on_main(world, write)

    # The pitfall put back: DDP around the model with the pooler left trainable.
    model = torch.nn.parallel.DistributedDataParallel(_model(config, tensors))
    x, y = _batch(inputs, labels, GRAD_BATCHES[0])
    share = D.shard(len(y), world.rank, world.world_size)
    error = "no error"
    try:
        for _ in range(2):
            F.cross_entropy(model(**{k: share.take(v) for k, v in x.items()}), share.take(y)).backward()
    except RuntimeError as e:
        error = str(e)
    D.on_main(world, lambda: (out / "pooler.txt").write_text(error))
    D.shutdown()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           __file__, str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(out / "ddp.npz")
    meta = json.loads((out / "meta.json").read_text())
    meta["pooler_error"] = (out / "pooler.txt").read_text()
    return data, meta, _reference()


def _split(data, prefix):
    return {k[len(prefix) + 1 :]: data[k] for k in data.files if k.startswith(prefix + "/")}


def _max_diff(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_ddp_gradient_equals_the_global_batch_gradient(ddp_run):
    from parity.tolerance import tolerance_for

    data, meta, (ref_grads, _, _) = ddp_run
    tol = tolerance_for("float64", "cpu", "grad").atol
    assert meta["world"] == 2 and meta["backend"] == "gloo"
    for j, ref in enumerate(ref_grads):
        got = _split(data, f"grad{j}")
        assert "bert.pooler.dense.weight" not in got  # frozen: outside the reduction
        assert _max_diff(got, ref) <= tol, j
    # The pitfall put back: a plain per-rank mean on the uneven batch (3 + 2 rows) is wrong.
    assert _max_diff(_split(data, "naive1"), ref_grads[1]) > 1e3 * tol
    # Equal shares weigh 1 either way; a lone row and its stand-in give the same mean too.
    assert _max_diff(_split(data, "naive0"), ref_grads[0]) <= tol


def test_a_trainable_pooler_breaks_ddp_and_the_frozen_one_does_not(ddp_run):
    """No loss reaches BERT's pooler; left trainable, DDP's reducer waits for its gradient."""
    _, meta, _ = ddp_run
    assert "Expected to have finished reduction" in meta["pooler_error"], meta["pooler_error"][:300]


def test_ddp_logged_loss_is_the_global_mean(ddp_run):
    import torch
    import torch.nn.functional as F

    _, meta, _ = ddp_run
    config, tensors, inputs, labels = _setup()
    model = _model(config, tensors)
    for j, idx in enumerate(GRAD_BATCHES):
        x, y = _batch(inputs, labels, idx)
        with torch.no_grad():
            ref = float(F.cross_entropy(model(**x), y))
        assert abs(meta["losses"][j] - ref) <= 1e-14, j


def test_two_ranks_adamw_with_clipping_equal_one_process(ddp_run):
    from parity.tolerance import tolerance_for

    data, meta, (_, ref_weights, ref_norms) = ddp_run
    got = _split(data, "final")
    assert meta["replicas_equal"]
    assert np.allclose(meta["norms"], ref_norms, rtol=1e-12, atol=0)
    assert sum(n > CLIP for n in ref_norms) >= 1 and sum(n <= CLIP for n in ref_norms) >= 1  # clipping on some steps
    tol = tolerance_for("float64", "cpu", "train")
    worst = {k: float(np.abs(got[k] - ref_weights[k]).max()) for k in ref_weights}
    bad = {k: d for k, d in worst.items() if d > tol.bound(k, float(np.abs(ref_weights[k]).max()))}
    assert not bad, bad
    _, tensors, _, _ = _setup()
    assert np.abs(ref_weights["fc.weight"] - tensors["fc.weight"]).max() > 1e-3  # training moved the weights
    print(f"DDP 2 ranks vs 1 process, {len(ref_norms)} AdamW steps: max weight diff {max(worst.values()):.1e}")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
