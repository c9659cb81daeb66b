"""`from_pretrained` / `from_backbone` / `save_pretrained`, written once for both builds.

The two builds differ only in how tensors get in and out of the framework; a
build supplies `_from_tensors(config, tensors, **kwargs)` and
`get_canonical_weights()`, and this mixin gives both the same public API.
"""

from __future__ import annotations

import os
from pathlib import Path

from parity.io.backbone import backbone_checkpoint
from parity.io.checkpoint import load_checkpoint, save_checkpoint
from parity.io.hub import resolve


class PretrainedMixin:
    name_or_path: str | None = None  # where the weights came from; its tokenizer travels on save

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs):
        """Load a canonical checkpoint (config.json + model.safetensors), in its own dtype."""
        where = resolve(directory, flag="checkpoint")  # a directory, or a hub id of a bertcnn checkpoint
        config, tensors = load_checkpoint(where)
        model = cls._from_tensors(config, tensors, **kwargs)
        model.name_or_path = str(where)
        return model

    @classmethod
    def from_backbone(cls, backbone_dir: str | os.PathLike, *, seed: int = 0, revision: str | None = None, **head):
        """A pretrained Hugging Face BERT (a directory or a hub id such as `bert-base-uncased`) plus a fresh head.

        The head comes from `parity.io.backbone.init_head` (numpy), so both builds'
        `from_backbone` with the same seed give the same function, bit for bit.
        """
        config, tensors, hf = backbone_checkpoint(backbone_dir, seed=seed, revision=revision, **head)
        model = cls._from_tensors(config, tensors)
        model.name_or_path = str(hf.directory)
        return model

    def save_pretrained(self, directory: str | os.PathLike, *, tokenizer_from: str | os.PathLike | None = None) -> Path:
        """Write a canonical checkpoint; the tokenizer of `name_or_path` travels with it."""
        src = tokenizer_from or self.name_or_path
        return save_checkpoint(directory, self.config, self.get_canonical_weights(), tokenizer_from=src)
