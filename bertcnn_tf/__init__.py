"""Keras 3 build of BERT-CNN. `from bertcnn_tf import BertCNN`; never loads torch
(unless Keras itself runs on the torch backend)."""

from bertcnn_tf.model import BertCNN
from bertcnn_tf.optimizers import LinearWarmupDecay, TorchAdamW, weight_table_decay
from parity.config import BertCnnConfig

__all__ = ["BertCNN", "BertCnnConfig", "LinearWarmupDecay", "TorchAdamW", "weight_table_decay"]
