"""Tiny, weight-free stand-ins for tests and the demo: checkpoints, configs and a tokenizer.

`factory` writes complete tiny OpenVLA-OFT checkpoint directories (`write_tiny_checkpoint`,
cached `tiny_checkpoint`, `TINY_VARIANTS`, `example_inputs`); `tokenizer` writes a real
Llama-style `tokenizer.json`. Import the submodules directly; this package imports nothing.
"""
