"""PyTorch build: `transformers.BertModel` -> Conv1d per width -> ReLU -> max -> linear.

State_dict keys and shapes are exactly those of the seed's PyTorch class
(`bert.*`, `convs.{j}.*`, `fc.*`), so checkpoints move between the two with
`strict=True`. nn.Conv1d is channels-first, hence the permute (never `view`:
`view` reinterprets memory and silently scrambles features).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

from parity import taps as T
from parity.config import BertCnnConfig
from parity.inputs import check_inputs
from parity.io.formats import floating_dtype
from parity.pretrained import PretrainedMixin


class BertCNN(PretrainedMixin, nn.Module):
    def __init__(self, config: BertCnnConfig, *, attn_implementation: str = "sdpa"):
        super().__init__()
        if not isinstance(config, BertCnnConfig):
            raise ValueError(f"BertCNN takes a parity.BertCnnConfig. Received: {type(config).__name__}")
        self.config = config
        bert_config = BertConfig(**config.to_hf_dict(), attn_implementation=attn_implementation)
        self.bert = BertModel(bert_config, add_pooling_layer=True)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.hidden_size, config.num_filters, kernel_size=k) for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.classifier_dropout)
        fc_in = config.pooled_size
        self.hidden = None
        if config.head_hidden_size is not None:
            self.hidden = nn.Linear(fc_in, config.head_hidden_size)
            fc_in = config.head_hidden_size
        self.fc = nn.Linear(fc_in, config.num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        return_taps: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Logits (B, num_labels); with `return_taps`, every tap of `parity.taps` by name."""
        if not torch.compiler.is_compiling():  # traced (export, compile): values unknown; checked by the caller
            check_inputs(_np(input_ids), _np(attention_mask), _np(token_type_ids), self.config)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        taps: dict[str, torch.Tensor] = {}

        # Embeddings + encoder (transformers.BertModel).
        out = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=return_taps,
        )
        hidden = out.last_hidden_state  # (B, T, H)
        if return_taps:
            taps[T.EMBEDDINGS] = out.hidden_states[0]
            for i, h in enumerate(out.hidden_states[1:]):
                taps[T.encoder_layer(i)] = h
            taps[T.LAST_HIDDEN_STATE] = hidden

        # CNN head. Inputs shorter than the widest kernel are right-padded (as padding).
        # sym_max, not `if`: an exported graph keeps this for every length instead of fixing one branch.
        short = torch.sym_max(self.config.max_kernel_size - hidden.shape[1], 0)
        if not isinstance(short, int) or short > 0:
            hidden = F.pad(hidden, (0, 0, 0, short))  # (B, >=K, H)
            attention_mask = F.pad(attention_mask, (0, short))
        x = hidden.permute(0, 2, 1)  # (B, H, T) channels-first for nn.Conv1d
        mask = attention_mask.to(hidden.dtype)
        pooled = []
        for j, (conv, k) in enumerate(zip(self.convs, self.config.kernel_sizes, strict=True)):
            c = torch.relu(conv(x))  # (B, F, L)
            if self.config.mask_padding:
                # ReLU output is >= 0, so zeroing windows that touch padding leaves the
                # max over valid windows unchanged, and gives 0 if there is none.
                c = c * valid_windows(mask, k)[:, None, :]
            if return_taps:
                taps[T.conv(j)] = c.permute(0, 2, 1)  # (B, L, F) channels-last, like Keras
            pooled.append(c.amax(dim=2))  # (B, F) max over time
        features = torch.cat(pooled, dim=1)  # (B, n_widths * F)
        if return_taps:
            taps[T.POOLED] = features

        # Classifier.
        features = self.dropout(features)
        if self.hidden is not None:
            features = torch.relu(self.hidden(features))  # (B, head_hidden_size)
            if return_taps:
                taps[T.HIDDEN] = features
        logits = self.fc(features)  # (B, num_labels)
        if return_taps:
            taps[T.LOGITS] = logits
            return taps
        return logits

    # -- canonical weights (the checkpoint API comes from PretrainedMixin) --------------
    def get_canonical_weights(self) -> dict[str, np.ndarray]:
        """The state_dict as numpy arrays: it is the canonical layout."""
        return {k: v.detach().cpu().contiguous().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def _from_tensors(cls, config: BertCnnConfig, tensors: dict[str, np.ndarray], **kwargs) -> BertCNN:
        dtype = getattr(torch, str(floating_dtype(tensors.values())))
        model = cls(config, **kwargs).to(dtype)
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}, strict=True)
        return model.eval()


def valid_windows(mask: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B, T - k + 1): 1 where a width-k window covers only real tokens."""
    length = mask.shape[1] - k + 1
    valid = mask[:, :length]
    for s in range(1, k):
        valid = valid * mask[:, s : s + length]
    return valid


def _np(x: torch.Tensor | None) -> np.ndarray | None:
    if x is None:
        return None
    if not isinstance(x, torch.Tensor):
        return np.asarray(x)
    return x.detach().cpu().numpy()
