"""Everything that touches the disk: the one weight reader, checkpoints, formats, atomic writes.

`read_weights` turns any supported source into config + canonical tensors;
`parity.io.files` is the one atomic writer (plus umask, sha256, JSON reading).
Framework-neutral: torch is imported only to read a `.pt` pickle, h5py only for Keras files,
and the Keras h5 layout is passed in by the Keras build.
"""

from parity.io.checkpoint import CONFIG_NAME, TOKENIZER_FILES, WEIGHTS_NAME, load_checkpoint, save_checkpoint
from parity.io.formats import FORMAT_HELP, Weights
from parity.io.reader import read_weights

__all__ = [
    "CONFIG_NAME",
    "FORMAT_HELP",
    "TOKENIZER_FILES",
    "WEIGHTS_NAME",
    "Weights",
    "load_checkpoint",
    "read_weights",
    "save_checkpoint",
]
