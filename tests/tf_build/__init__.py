"""Tests of `bertcnn_tf`, the Keras build (named like tests/torch_build, which must not be `torch`)."""
