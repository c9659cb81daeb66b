"""`bertcnn train` data-parallel, end to end: torchrun/DDP and Keras-JAX DataParallel equal one process.

Every run is a real command in its own process: `python -m parity train` for one process,
`python -m torch.distributed.run --standalone --nproc-per-node 2 -m parity train` for two
gloo ranks, and `--framework keras --data-parallel` on Keras' JAX backend with two
simulated CPU devices. float64, dropout off, file order; 13 rows in batches of 4 end each
epoch with a 1-row batch (one rank's share is empty; the Keras batch is padded), and
batches of 4 split 2 + 2. A DDP run killed with SIGKILL and resumed under torchrun ends
bit-identical to an uninterrupted DDP run (dropout and shuffling on).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bertcnn_tf.distributed import simulated_devices_flag
from parity.config import BertCnnConfig
from tests.helpers import MINILM_VOCAB, files, tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "rain", "fell", "over", "quiet", "hills", "and", "towns"]
RECIPE = ["--dtype", "float64", "--batch-size", "4", "--epochs", "2", "--lr", "1e-2", "--warmup-steps", "2",
          "--max-grad-norm", "0.5"]  # fmt: skip
EXACT = ["--no-dropout", "--no-shuffle"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, embedded_dir):
    """A tiny random checkpoint with the embedded tokenizer, and 13 labelled rows of 1..13 words."""
    d = tmp_path_factory.mktemp("dp")
    tiny_checkpoint(d / "ck", BertCnnConfig(**MINILM_VOCAB), seed=5, tokenizer=embedded_dir)
    rng = np.random.default_rng(5)
    rows = [{"text": " ".join(rng.choice(WORDS, size=n)), "label": int(rng.integers(0, 3))}
            for n in rng.integers(1, 14, size=13)]  # fmt: skip
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return d


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _train(data: Path, out: str, *args: str, launcher=(sys.executable,), env=None, resume=False) -> dict:
    start = ["--resume"] if resume else ["--checkpoint", str(data / "ck")]
    cmd = [*launcher, "-m", "parity", "train", *start, "--train", str(data / "train.jsonl"), "--out", str(data / out),
           "--json", *args]  # fmt: skip
    proc = subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # one summary: only rank 0 prints


def _tensors(d: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out = load_file(str(d / "model.safetensors"))
    out.update({f"moment/{k}": v for k, v in load_file(str(d / "optimizer.safetensors")).items()})
    return out


def _metrics(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]


def _assert_same_training(ref: Path, got: Path) -> float:
    from parity.tolerance import tolerance_for

    a, b = _tensors(ref), _tensors(got)
    assert sorted(a) == sorted(b)
    tol = tolerance_for("float64", "cpu", "train")
    worst = {k: float(np.abs(a[k] - b[k]).max()) for k in a}
    bad = {k: d for k, d in worst.items() if d > tol.bound(k, float(np.abs(a[k]).max()))}
    assert not bad, bad
    ma, mb = _metrics(ref), _metrics(got)
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    assert np.allclose([m["loss"] for m in ma], [m["loss"] for m in mb], rtol=1e-12, atol=0)
    assert any(m.get("clipped") for m in ma) and not all(m.get("clipped", True) for m in ma)
    return max(worst.values())


@pytest.mark.slow  # 15 s of torchrun; the DDP arithmetic (tests/torch_build) stays in the default
def test_torchrun_two_gloo_ranks_equal_one_process(data):
    one = _train(data, "one", *RECIPE, *EXACT, "--framework", "torch")
    two = _train(data, "two", *RECIPE, *EXACT, "--framework", "torch", launcher=TORCHRUN)
    assert one["steps"] == two["steps"] == 8 and two["finished"]
    worst = _assert_same_training(data / "one", data / "two")
    assert sorted(p.name for p in data.iterdir() if p.name.startswith((".two", "two"))) == ["two"]  # no leftovers
    print(f"torchrun 2 gloo ranks vs 1 process, {two['steps']} AdamW updates: max weight/moment diff {worst:.1e}")


@pytest.mark.slow
def test_torchrun_with_grad_accum_equals_one_process_with_the_whole_batch(data):
    """2 ranks x micro-batches of 2 x 2 micro-batches = updates of 4; the epoch's last update is 1 row."""
    one = data / "one" if (data / "one" / "metrics.jsonl").is_file() else None
    if one is None:
        _train(data, "one", *RECIPE, *EXACT, "--framework", "torch")
    acc = [a if a != "4" else "2" for a in RECIPE] + ["--grad-accum", "2"]
    two = _train(data, "acc", *acc, *EXACT, "--framework", "torch", launcher=TORCHRUN)
    assert two["steps"] == 8 and two["finished"]
    worst = _assert_same_training(data / "one", data / "acc")
    print(f"torchrun 2 ranks, --batch-size 2 --grad-accum 2 vs 1 process --batch-size 4: max diff {worst:.1e}")


@pytest.mark.slow
def test_keras_jax_data_parallel_with_grad_accum_equals_one_device(data):
    env = _env(KERAS_BACKEND="jax", JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu", **simulated_devices_flag(2))
    one = _train(data, "ka1", *RECIPE, *EXACT, "--framework", "keras", env=env)
    acc = [a if a != "4" else "2" for a in RECIPE] + ["--grad-accum", "2"]
    two = _train(data, "ka2", *acc, *EXACT, "--framework", "keras", "--data-parallel", env=env)
    assert one["steps"] == two["steps"] == 8
    worst = _assert_same_training(data / "ka1", data / "ka2")
    print(f"Keras JAX DataParallel, --batch-size 2 --grad-accum 2 vs --batch-size 4: max diff {worst:.1e}")


@pytest.mark.slow
def test_keras_jax_data_parallel_two_devices_equal_one(data):
    env = _env(KERAS_BACKEND="jax", JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu", **simulated_devices_flag(2))
    one = _train(data, "k1", *RECIPE, *EXACT, "--framework", "keras", env=env)
    two = _train(data, "k2", *RECIPE, *EXACT, "--framework", "keras", "--data-parallel", env=env)
    assert one["steps"] == two["steps"] == 8
    worst = _assert_same_training(data / "k1", data / "k2")
    print(f"Keras JAX DataParallel 2 devices vs 1, {two['steps']} updates: max weight/moment diff {worst:.1e}")


@pytest.mark.slow
def test_ddp_run_killed_and_resumed_under_torchrun_is_bit_identical(data):
    args = [*RECIPE, "--epochs", "3", "--framework", "torch", "--save-every", "1"]  # dropout and shuffle on
    _train(data, "whole", *args, launcher=TORCHRUN)
    out = data / "killed"
    cmd = [*TORCHRUN, "-m", "parity", "train", "--checkpoint", str(data / "ck"), "--train", str(data / "train.jsonl"),
           "--out", str(out), *args]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    state = out / "trainer_state.json"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and _step(state) >= 3:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, mid-run (maybe mid-save)
        killed_after = _step(state)
    finally:
        proc.wait(timeout=60)
    resumed = _train(data, "killed", "--framework", "torch", "--save-every", "1", launcher=TORCHRUN, resume=True)
    assert resumed["finished"] and resumed["steps"] == 12
    a, b = _tensors(data / "whole"), _tensors(out)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), "not bit-identical"
    assert _metrics(data / "whole") == _metrics(out)
    print(f"DDP killed after step {killed_after} of 12, resumed under torchrun: bit-identical")


def _step(state: Path) -> int:
    try:
        return json.loads(state.read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError):
        return -1


@pytest.mark.slow
def test_two_nodes_by_c10d_rendezvous_on_one_machine_equal_one_process(data):
    """What a multi-node launch changes, on one machine: two torchrun agents (--nnodes 2, one
    process each) meet at a c10d rendezvous endpoint; global rank 0 alone writes."""
    import socket

    if not (data / "one").is_dir():
        _train(data, "one", *RECIPE, *EXACT, "--framework", "torch")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agents = []
    for _ in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "bertcnn-test",
               "-m", "parity", "train", "--checkpoint", str(data / "ck"), "--train", str(data / "train.jsonl"),
               "--out", str(data / "nodes"), "--json", *RECIPE, *EXACT, "--framework", "torch"]  # fmt: skip
        agents.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [a.communicate(timeout=400) for a in agents]
    assert all(a.returncode == 0 for a in agents), [e[-2000:] for _, e in outs]
    assert sum(bool(o.strip()) for o, _ in outs) == 1  # one summary: global rank 0's
    worst = _assert_same_training(data / "one", data / "nodes")
    print(f"2 'nodes' (c10d rendezvous, 1 process each) vs 1 process: max weight/moment diff {worst:.1e}")


@pytest.mark.parametrize(
    ("argv", "fragment", "env"),
    [
        (["--framework", "torch", "--data-parallel"], "--data-parallel is Keras on JAX", {}),
        (["--framework", "keras", "--dist-backend", "gloo"], "are for --framework torch", {}),
        (["--framework", "keras"], "WORLD_SIZE=2", {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}),
        (["--framework", "torch", "--dist-backend", "nccl"], "nccl reduces CUDA tensors only", {}),
        (["--framework", "torch"], "Partial torchrun environment", {"RANK": "1"}),
    ],
)
def test_misplaced_data_parallel_options_exit_2_with_one_line(argv, fragment, env, tmp_path, capsys, monkeypatch):
    from parity.commands import main

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ck, data = files(tmp_path)  # whole inputs: only the option or environment at fault is refused
    assert main(["train", "--checkpoint", str(ck), "--train", str(data), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Received" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_keras_data_parallel_needs_the_jax_backend():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() == "jax":
        pytest.skip("this process runs Keras on JAX")
    from bertcnn_tf.distributed import use_data_parallel

    with pytest.raises(ValueError, match=r"KERAS_BACKEND=jax.*Received: (tensorflow|torch)"):
        use_data_parallel()
