"""PyTorch state_dicts (`.pt` / `.pth` / `.bin`): `torch.load(weights_only=True)` only.

A pickle that names any code is refused unrun; torch's zip container is checked
against the file size first. torch is imported only here, only when such a file is
read or written.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from parity.io.formats import _HF_INT_BUFFERS, TORCH, Weights, bad, dtype_name, first_line, is_zip, np_dtype


def read_torch(path: Path) -> Weights:
    """`torch.load(weights_only=True)` only: a pickle that names any code is refused unrun."""
    import torch

    size = path.stat().st_size
    if size == 0:
        raise bad(path, "the file is empty", "a PyTorch state_dict written by torch.save")
    zipped = is_zip(path)
    if zipped:
        # torch's zip format stores records uncompressed; a record larger than the file is a lie.
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise bad(path, f"damaged zip archive ({e})", "a PyTorch state_dict written by torch.save") from None
        if any(i.compress_type != zipfile.ZIP_STORED or i.file_size > size for i in infos):
            raise bad(path, "archive has compressed or oversized records", "torch.save's uncompressed zip format")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except Exception as e:  # untrusted bytes: any failure inside the unpickler is a bad file
        first = first_line(e)
        raise bad(
            path,
            f"refused by torch.load(weights_only=True): {first}",
            "a plain state_dict (tensors only; pickles that reference code are never run)",
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        hint = f"dict with keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else type(obj).__name__
        raise bad(
            path,
            f"holds a {hint}, not a flat name->tensor state_dict",
            "torch.save(model.state_dict()) (save the state_dict itself, not a wrapper)",
        )
    tensors, notes = {}, []
    for k, t in obj.items():
        if k in _HF_INT_BUFFERS and not t.is_floating_point():
            # transformers < 4.31 saved these index buffers in every BertModel state_dict; not weights.
            notes.append(f"{k} (an index buffer older transformers saved, not a weight) was left out")
            continue
        if t.dtype not in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            raise bad(path, f"tensor {k!r} has dtype {t.dtype}", "floating tensors")
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            tensors[k] = t.view(torch.int16).numpy().view(np_dtype("bfloat16"))
        else:
            tensors[k] = t.numpy()
    return Weights(None, tensors, notes=notes, format=TORCH, weights_file=path)


def write_torch(path: Path, tensors: Iterable[tuple[str, np.ndarray]], progress: Callable[[int], None]) -> None:
    import torch

    out = {}
    with warnings.catch_warnings():
        # Memory-mapped sources are read-only arrays; torch only reads them here, to save.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for name, a in tensors:
            a = np.ascontiguousarray(a)
            if dtype_name(a) == "bfloat16":
                out[name] = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
            else:
                out[name] = torch.from_numpy(a)
            progress(a.nbytes)
    # Serialised in memory, written by Python: torch.save on a full disk raises RuntimeError, not OSError.
    buffer = io.BytesIO()
    torch.save(out, buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())
