"""Tests of `bertcnn_torch`, the PyTorch build (not named `torch`: with tests/ on sys.path it would shadow torch)."""
