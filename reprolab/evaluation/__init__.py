"""Evaluation: features, metrics and scores — what the paper judges a method on (Sec. 5).

``features`` (frozen and method outputs, cached on disk), ``evaluate`` (ID / shift accuracy and OOD rows, the α
sweeps), ``metrics`` (the one metric convention: ID positive, FPR95, AUROC, AUPR), ``scores`` (MCM, energy,
max-logit) and ``drift`` (how far features moved). May import the methods, the paper core, training, checkpoint,
encoders, datasets and errors — never the experiment, course or bench packages.
"""
