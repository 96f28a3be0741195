"""reprolab — a notebook-first kit for model reprogramming of text-image encoders.

Implements Geng & Chen, "Model Reprogramming Outperforms Fine-tuning on Out-of-distribution Data in Text-Image
Encoders" (SaTML 2024, arXiv 2403.10800) next to the fine-tuning methods it is compared with.
"""

__version__ = "0.1.0"
