"""BERT-CNN as a Hugging Face custom model: the modeling code every checkpoint carries.

`save_pretrained` copies this file into the checkpoint as `modeling_bertcnn.py`, and the
checkpoint's `config.json` points `auto_map` at it, so
`AutoModelForSequenceClassification.from_pretrained(CK, trust_remote_code=True)` and
`pipeline("text-classification", model=CK, trust_remote_code=True)` build the model from this
file alone. It therefore imports torch and transformers and nothing else: Hugging Face copies
only this module, never the package around it. `bertcnn_torch.BertCNN` runs the same forward
(`bert_cnn_forward`), so the two cannot drift apart.

The state_dict names are the seed's PyTorch class's (`bert.*`, `convs.{j}.*`, `fc.*`, and
`hidden.*` with the Keras seed's extra dense layer), as in every bertcnn checkpoint.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "bert-cnn"
# The BERT part of the config: `transformers.BertConfig`'s own keys.
BERT_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "pad_token_id",
    "initializer_range",
)


class BertCnnHfConfig(PretrainedConfig):
    """BERT hyper-parameters plus the CNN head; `config.json` of a bertcnn checkpoint, as Hugging Face reads it."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int = 0,
        initializer_range: float = 0.02,
        kernel_sizes: tuple[int, ...] | list[int] = (3, 4, 5),
        num_filters: int = 100,
        classifier_dropout: float = 0.5,
        head_hidden_size: int | None = None,
        mask_padding: bool = True,
        max_seq_length: int | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.num_filters = num_filters
        self.classifier_dropout = classifier_dropout
        self.head_hidden_size = head_hidden_size
        self.mask_padding = mask_padding
        self.max_seq_length = max_seq_length
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class BertCnnParts(NamedTuple):
    """What one forward computes: the logits and, for taps, the stages on the way."""

    logits: torch.Tensor  # (B, num_labels): one row per text (per document when read as windows)
    encoder: object  # the BertModel output (last_hidden_state, hidden_states when asked)
    windows: list[torch.Tensor]  # per width k: (B, F, max(T, K) - k + 1) ReLU'd, masked (B * M rows for windows)
    pooled: torch.Tensor  # (B, n_widths * F) max over time (over a document's windows too), before dropout
    hidden: torch.Tensor | None  # (B, head_hidden_size) with the Keras seed's dense layer


def build_bert_cnn(module: nn.Module, config, attn_implementation: str | None) -> None:
    """Give `module` the seed's submodules for `config` (any object with the fields of `BertCnnHfConfig`)."""
    bert = BertConfig(**{k: getattr(config, k) for k in BERT_KEYS}, attn_implementation=attn_implementation)
    module.bert = BertModel(bert, add_pooling_layer=True)
    module.convs = nn.ModuleList(
        nn.Conv1d(config.hidden_size, config.num_filters, kernel_size=k) for k in config.kernel_sizes
    )
    module.dropout = nn.Dropout(config.classifier_dropout)
    fc_in = len(config.kernel_sizes) * config.num_filters
    module.hidden = None
    if config.head_hidden_size is not None:
        module.hidden = nn.Linear(fc_in, config.head_hidden_size)
        fc_in = config.head_hidden_size
    module.fc = nn.Linear(fc_in, config.num_labels)


def bert_cnn_forward(
    module: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    *,
    kernel_sizes,
    mask_padding: bool,
    output_hidden_states: bool = False,
    keep: bool = False,
) -> BertCnnParts:
    """BERT's last hidden state -> Conv1d per width -> ReLU -> max over time -> concat -> dropout -> linear.

    The sequence is padded (as padding) by a constant widest-1 positions, whatever its length: a
    pad that depends on the length (`max(0, K - T)`) puts a guard or a branch on the length into
    every traced graph (torch.export refused lengths <= K, `torch.jit.trace` could not record it,
    and ONNX symbolic shape inference stopped at it). The extra windows are then zeroed, so the
    max is exactly that over the windows of the text padded to max(T, K): ReLU output is >= 0,
    and a zero never raises a max of non-negative values.

    A long document read as windows comes as 3-D inputs (batch, windows, tokens), each window
    `[CLS] ... [SEP]` (Hugging Face's `return_overflowing_tokens` with a `stride`): every window
    runs through BERT and the CNN on its own, and the max over time extends over the whole
    document, the elementwise max of its windows' pooled features. A window of all padding (a
    document with fewer windows than its batch-mates) contributes zeros, which never raise a
    max of ReLU outputs; BERT sees its first position as a token, so nothing in it is undefined.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    documents = None
    if input_ids.dim() == 3:
        documents = input_ids.shape[:2]
        input_ids, attention_mask = input_ids.flatten(0, 1), attention_mask.flatten(0, 1)
        if token_type_ids is not None:
            token_type_ids = token_type_ids.flatten(0, 1)
    encoder_mask = attention_mask
    if documents is not None:  # an all-padding window attends to its first position, never to nothing
        encoder_mask = torch.cat([torch.ones_like(attention_mask[:, :1]), attention_mask[:, 1:]], dim=1)
    # Positions given, not sliced from BERT's buffer: the slice's length, min(max_position_embeddings, T), is
    # one an ONNX export's shape inference (onnxruntime's, before quantization) cannot equate with T.
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    out = module.bert(
        input_ids=input_ids,
        attention_mask=encoder_mask,
        token_type_ids=token_type_ids,
        position_ids=positions,
        output_hidden_states=output_hidden_states,
        return_dict=True,
    )
    hidden = out.last_hidden_state  # (B, T, H)
    widest = max(kernel_sizes)
    length = hidden.shape[1]
    x = F.pad(hidden, (0, 0, 0, widest - 1)).permute(0, 2, 1)  # (B, H, T + K - 1) channels-first for nn.Conv1d
    mask = F.pad(attention_mask.to(hidden.dtype), (0, widest - 1))  # padding: 0
    if mask_padding:
        counted = mask  # windows that touch padding are left out (zeroed after the ReLU)
    else:  # the seeds: every window of the text padded to max(T, K), padding included
        first = (torch.arange(mask.shape[1], device=mask.device) < widest).to(mask.dtype)
        counted = torch.maximum(F.pad(torch.ones_like(attention_mask, dtype=mask.dtype), (0, widest - 1)), first)
    pooled, windows = [], []
    for conv, k in zip(module.convs, kernel_sizes, strict=True):
        c = torch.relu(conv(x)) * valid_windows(counted, k).unsqueeze(1)  # (B, F, T + K - k)
        if keep:
            windows.append(c[:, :, : max(length, widest) - k + 1])
        # topk(1), not amax: the same max, but amax exports as an ONNX ReduceMax, whose axes are an input from
        # opset 18 on, and onnxruntime's symbolic shape inference (quant_pre_process) then loses its shape.
        pooled.append(c.topk(1, dim=2).values.squeeze(2))  # (B, F) max over time
    features = torch.cat(pooled, dim=1)  # (B, n_widths * F)
    if documents is not None:  # (B * M, P) -> (B, P): the max over every window of each document
        present = (attention_mask.sum(dim=1, keepdim=True) > 0).to(features.dtype)
        features = (features * present).unflatten(0, documents).topk(1, dim=1).values.squeeze(1)
    dense = module.dropout(features)
    hidden_out = None
    if module.hidden is not None:
        dense = hidden_out = torch.relu(module.hidden(dense))  # (B, head_hidden_size)
    return BertCnnParts(module.fc(dense), out, windows, features, hidden_out)


def valid_windows(mask: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B, T - k + 1): 1 where a width-k window covers only positions where `mask` is 1."""
    length = mask.shape[1] - k + 1
    valid = mask[:, :length]
    for s in range(1, k):
        valid = valid * mask[:, s : s + length]
    return valid


class BertCnnPreTrainedModel(PreTrainedModel):
    config_class = BertCnnHfConfig
    base_model_prefix = "bert"
    _supports_sdpa = True

    def _init_weights(self, module):
        """A fresh head (`from_config`): BERT's own scheme, normal(0, initializer_range) and zero biases."""
        if isinstance(module, (nn.Linear, nn.Conv1d)):  # BERT's own embeddings and LayerNorms keep BERT's init
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class BertCnnForSequenceClassification(BertCnnPreTrainedModel):
    """BERT-CNN with Hugging Face's classifier interface: `SequenceClassifierOutput`, a loss given `labels`."""

    def __init__(self, config: BertCnnHfConfig):
        super().__init__(config)
        build_bert_cnn(self, config, getattr(config, "_attn_implementation", None))
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        config = self.config
        if output_hidden_states is None:
            output_hidden_states = bool(getattr(config, "output_hidden_states", False))
        parts = bert_cnn_forward(
            self,
            input_ids,
            attention_mask,
            token_type_ids,
            kernel_sizes=config.kernel_sizes,
            mask_padding=config.mask_padding,
            output_hidden_states=output_hidden_states,
        )
        logits = parts.logits
        loss = None if labels is None else self._loss(logits, labels)
        hidden_states = parts.encoder.hidden_states if output_hidden_states else None
        if return_dict is False or (return_dict is None and not getattr(config, "return_dict", True)):
            return tuple(v for v in (loss, logits, hidden_states) if v is not None)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`BertForSequenceClassification`'s rule: regression for one label, else by `problem_type` / label dtype."""
        config, n = self.config, self.config.num_labels
        if config.problem_type is None:
            if n == 1:
                config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                config.problem_type = "single_label_classification"
            else:
                config.problem_type = "multi_label_classification"
        if config.problem_type == "regression":
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        if config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, n), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
