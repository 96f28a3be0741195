"""The paper: Geng & Chen's Reprogrammer and Residual Reprogrammer (arXiv 2403.10800, Sec. 4), one equation a file.

``image_reprogrammer`` (the learned frame δ = M ⊙ tanh W around a shrunk image), ``text_reprogrammer`` (trainable
token and positional embeddings), ``residual`` (RRP: f = (1−α)·f_RP + α·f_zero-shot, α on the ZERO-SHOT side) and
``losses`` (the symmetric in-batch focal contrastive loss). May import only :mod:`reprolab.errors` and torch.
"""
