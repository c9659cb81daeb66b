"""PyTorch build of BERT-CNN. `from bertcnn_torch import BertCNN`; never loads TensorFlow/Keras."""

from bertcnn_torch.model import BertCNN
from parity.config import BertCnnConfig

__all__ = ["BertCNN", "BertCnnConfig"]
