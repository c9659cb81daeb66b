"""PyTorch build: `transformers.BertModel` -> Conv1d per width -> ReLU -> max -> linear.

State_dict keys and shapes are exactly those of the seed's PyTorch class
(`bert.*`, `convs.{j}.*`, `fc.*`), so checkpoints move between the two with
`strict=True`. nn.Conv1d is channels-first, hence the permute (never `view`:
`view` reinterprets memory and silently scrambles features).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bertcnn_torch.hf import load_device, load_dtype
from bertcnn_torch.modeling_bertcnn import bert_cnn_forward, build_bert_cnn
from parity import taps as T
from parity.config import BertCnnConfig
from parity.inputs import check_inputs
from parity.io.formats import floating_dtype, np_dtype
from parity.pretrained import PretrainedMixin


class BertCNN(PretrainedMixin, nn.Module):
    def __init__(self, config: BertCnnConfig, *, attn_implementation: str = "sdpa"):
        super().__init__()
        if not isinstance(config, BertCnnConfig):
            raise ValueError(f"BertCNN takes a parity.BertCnnConfig. Received: {type(config).__name__}")
        self.config = config
        build_bert_cnn(self, config, attn_implementation)  # the modeling code a checkpoint carries

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        return_taps: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Logits (B, num_labels); with `return_taps`, every tap of `parity.taps` by name."""
        if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):  # traced: no values; the caller checks
            check_inputs(_np(input_ids), _np(attention_mask), _np(token_type_ids), self.config)
        parts = bert_cnn_forward(
            self,
            input_ids,
            attention_mask,
            token_type_ids,
            kernel_sizes=self.config.kernel_sizes,
            mask_padding=self.config.mask_padding,
            output_hidden_states=return_taps,
            keep=return_taps,
        )
        if not return_taps:
            return parts.logits
        encoder = parts.encoder
        taps = {T.EMBEDDINGS: encoder.hidden_states[0]}
        for i, h in enumerate(encoder.hidden_states[1:]):
            taps[T.encoder_layer(i)] = h
        taps[T.LAST_HIDDEN_STATE] = encoder.last_hidden_state
        for j, c in enumerate(parts.windows):
            taps[T.conv(j)] = c.permute(0, 2, 1)  # (B, L, F) channels-last, like Keras
        taps[T.POOLED] = parts.pooled
        if parts.hidden is not None:
            taps[T.HIDDEN] = parts.hidden
        taps[T.LOGITS] = parts.logits
        return taps

    def to_transformers(self):
        """This model as a transformers `PreTrainedModel` (`BertCnnForSequenceClassification`) sharing its
        parameters: what `pipeline("text-classification", model=..., tokenizer=...)` takes."""
        from bertcnn_torch.hf import to_transformers

        return to_transformers(self)

    # -- canonical weights (the checkpoint API comes from PretrainedMixin) --------------
    def get_canonical_weights(self) -> dict[str, np.ndarray]:
        """The state_dict as numpy arrays (bfloat16 as ml_dtypes' bfloat16): it is the canonical layout."""
        return {k: to_numpy(v) for k, v in self.state_dict().items()}

    @classmethod
    def _from_tensors(
        cls,
        config: BertCnnConfig,
        tensors: dict[str, np.ndarray],
        *,
        dtype=None,
        torch_dtype=None,
        device_map=None,
        **kwargs,
    ) -> BertCNN:
        """The model holding `tensors`, in their dtype unless `dtype` (`torch_dtype`) says otherwise, on
        `device_map`'s one device: `from_pretrained`'s keywords, as in transformers."""
        stored = str(floating_dtype(tensors.values()))
        want, device = load_dtype(dtype, torch_dtype, stored), load_device(device_map)
        model = cls(config, **kwargs).to(getattr(torch, stored))
        model.load_state_dict({k: to_torch(v) for k, v in tensors.items()}, strict=True)
        return model.to(device=device, dtype=want).eval()


def to_torch(a: np.ndarray) -> torch.Tensor:
    """A canonical array as a tensor; numpy has no bfloat16, so ml_dtypes' is carried over bit for bit."""
    a = np.ascontiguousarray(a)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a canonical array (bfloat16 as ml_dtypes' bfloat16, which numpy cannot make itself)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np_dtype("bfloat16"))
    return t.numpy()


def _np(x: torch.Tensor | None) -> np.ndarray | None:
    if x is None:
        return None
    if not isinstance(x, torch.Tensor):
        return np.asarray(x)
    return x.detach().cpu().numpy()
