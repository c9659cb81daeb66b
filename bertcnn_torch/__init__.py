"""PyTorch build of BERT-CNN. `from bertcnn_torch import BertCNN`; never loads TensorFlow/Keras.

Importing it registers the model with transformers' Auto classes (`bertcnn_torch.hf`), so a bertcnn
checkpoint loads through `AutoModelForSequenceClassification` and `pipeline` without `trust_remote_code`.
"""

from bertcnn_torch.hf import register, to_transformers
from bertcnn_torch.model import BertCNN
from bertcnn_torch.modeling_bertcnn import BertCnnForSequenceClassification, BertCnnHfConfig
from parity.config import BertCnnConfig

register()

__all__ = ["BertCNN", "BertCnnConfig", "BertCnnForSequenceClassification", "BertCnnHfConfig", "to_transformers"]
