"""Names of the intermediate stages both builds return with `return_taps=True`.

Defined once here so the two builds cannot drift apart. All taps are
channels-last: conv taps are (B, L, F) in both builds (the torch build permutes
back), so the comparison never needs to know which framework produced them.
"""

from __future__ import annotations

from parity.config import BertCnnConfig

EMBEDDINGS = "embeddings"  # (B, T, H) after embedding LayerNorm
LAST_HIDDEN_STATE = "last_hidden_state"  # (B, T, H) == the last encoder layer
POOLED = "pooled"  # (B, n_widths * F) concatenated max over time, before dropout
HIDDEN = "hidden"  # (B, head_hidden_size) only with head_hidden_size
LOGITS = "logits"  # (B, num_labels)


def encoder_layer(i: int) -> str:
    return f"encoder.layer.{i}"  # (B, T, H)


def conv(j: int) -> str:
    return f"convs.{j}"  # (B, L_j, F) ReLU'd; windows touching padding are 0 when masked


def tap_names(config: BertCnnConfig) -> list[str]:
    """Every tap, in forward order: the order the parity report walks them."""
    names = [EMBEDDINGS, *(encoder_layer(i) for i in range(config.num_hidden_layers)), LAST_HIDDEN_STATE]
    names += [conv(j) for j in range(len(config.kernel_sizes))]
    names.append(POOLED)
    if config.head_hidden_size is not None:
        names.append(HIDDEN)
    names.append(LOGITS)
    return names


def is_token_level(name: str) -> bool:
    """Token-level taps are compared on real tokens only: padded positions are free."""
    return name in (EMBEDDINGS, LAST_HIDDEN_STATE) or name.startswith("encoder.layer.")
