"""Fine-tuning OpenVLA-OFT with this package's model (pure torch, no ROS).

`objectives` (batched L1 / diffusion losses as upstream finetune.py), `episodes` (npz episodes,
statistics, chunking, cached preprocessing), `architectures` (from-scratch sizes), `trainer`
(loop, open-loop L1), `export` (released hub layout), `cli` (`openvla-train`). Import the
submodules directly; this package imports nothing.
"""
