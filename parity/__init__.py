"""Framework-neutral core shared by both builds: config, weight table, checkpoints, parity.

Importing this package loads neither torch nor keras/tensorflow.
"""

from parity.config import BertCnnConfig
from parity.io.checkpoint import load_checkpoint, save_checkpoint
from parity.layout import PortError
from parity.tokenize import Tokenizer

__all__ = ["BertCnnConfig", "PortError", "Tokenizer", "load_checkpoint", "save_checkpoint"]
