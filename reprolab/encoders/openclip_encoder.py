"""open_clip models behind the :class:`~reprolab.encoders.base.Encoder` interface.

* ``OpenClipEncoder.from_pretrained("ViT-B-32", "openai")`` — any open_clip architecture with a pretrained tag
  (downloaded by open_clip when online) or a local checkpoint file (``pretrained="/path/to/weights.bin"``).
  The OpenAI ViT-B/32 weights were trained with QuickGELU, so the tag ``openai`` selects the ``-quickgelu``
  variant of the architecture (open_clip otherwise warns and the features are subtly wrong); a local file gets
  the activation the rule in :mod:`reprolab.encoders.clip_weights` chooses, or a one-line refusal. OpenAI's
  TorchScript ``.pt`` archive is read too (its tensors copied into the open_clip model).
* ``tiny_openclip()`` — a tiny random-init CLIP (32 px, width 32, one layer) for fast unit tests.

The text-tower forward is written out here (it mirrors ``open_clip.model.CLIP.encode_text``) because the text
reprogrammer and CoOp need to run it on *given* word embeddings and a *given* positional table. It runs only the
first L = (last EOT position in the batch) + 1 of the 77 context positions: with the causal mask the rest cannot
reach the features (:func:`_text_length`), and a class prompt is ~10 tokens, so text steps cost ~1/8 as much.
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch
from torch import Tensor, nn

from reprolab.encoders.base import Encoder
from reprolab.encoders.clip_weights import is_torchscript, quickgelu_for
from reprolab.encoders.frozen_fast_paths import use_frozen_fast_paths
from reprolab.errors import ConfigError, MissingWeightsError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

TINY_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1),
)

NO_WEIGHTS_HELP = (
    "pass a local checkpoint (encoder='openclip:{arch}:/path/to/open_clip_weights.bin', or set "
    "REPROLAB_CLIP_WEIGHTS) or use the offline stand-in (encoder='standin')"
)


class OpenClipEncoder(Encoder):
    def __init__(self, model, *, id: str, display_name: str, tokenizer, mean=OPENAI_MEAN, std=OPENAI_STD):
        super().__init__()
        self.model = model
        self.id, self.display_name = id, display_name
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean, self.std = tuple(mean), tuple(std)
        self._tokenizer = tokenizer
        self.freeze()
        use_frozen_fast_paths(model)  # cheap input gradients through frozen weights (see that module)

    # ----- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, arch: str = "ViT-B-32", pretrained: str = "openai", *, assume_openai: bool = False
    ) -> OpenClipEncoder:
        """``pretrained``: an open_clip tag or a local file (a state dict, or OpenAI's TorchScript ``.pt``).

        For a file, QuickGELU or GELU is chosen by the rule in :mod:`reprolab.encoders.clip_weights`; a file it
        cannot place is refused, unless ``assume_openai`` (the file is known to hold OpenAI's weights).
        """
        import open_clip

        is_file = os.path.sep in pretrained or os.path.exists(pretrained)
        if is_file and not os.path.isfile(pretrained):
            raise MissingWeightsError(
                f"open_clip checkpoint {pretrained!r} does not exist; " + NO_WEIGHTS_HELP.format(arch=arch)
            )
        quick = _quickgelu(arch, pretrained, is_file, assume_openai)
        arch = arch.removesuffix("-gelu")
        force = False
        if quick and not arch.endswith("-quickgelu"):
            if arch + "-quickgelu" in open_clip.list_models():
                arch += "-quickgelu"
            else:
                force = True  # an architecture without a -quickgelu twin: open_clip switches the activation
        jit = is_file and is_torchscript(pretrained)
        try:
            with _quiet_root_log(jit):  # open_clip would log "initialized randomly"; the tensors come next
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=None if jit else pretrained, force_quick_gelu=force
                )
            if jit:  # OpenAI's release format; open_clip's file loader refuses TorchScript archives
                _load_torchscript_weights(model, pretrained)
        except Exception as exc:  # network errors, missing cache, bad file: all mean "no weights"
            raise MissingWeightsError(
                f"cannot load open_clip {arch} weights {pretrained!r} ({type(exc).__name__}: {exc}); "
                + NO_WEIGHTS_HELP.format(arch=arch)
            ) from None
        norm = [t for t in preprocess.transforms if type(t).__name__ == "Normalize"]
        mean, std = (norm[0].mean, norm[0].std) if norm else (OPENAI_MEAN, OPENAI_STD)
        tag = os.path.basename(pretrained) if is_file else pretrained
        name = arch + ("-quickgelu" if force else "")
        return cls(
            model,
            id=f"openclip-{name}-{tag}",
            display_name=f"CLIP {name} ({tag})",
            tokenizer=open_clip.get_tokenizer(arch),
            mean=mean,
            std=std,
        )

    # ----- primitives ---------------------------------------------------------------------------------------------
    def _image_forward(self, x: Tensor) -> Tensor:
        return self.model.encode_image(x)

    def _text_forward(self, embeds: Tensor, tokens, positional_embedding: Tensor) -> Tensor:
        from open_clip.transformer import text_global_pool

        m = self.model
        L = _text_length(m, tokens, embeds.shape[1])
        embeds, tokens = embeds[:, :L], tokens[:, :L]
        mask = None if m.attn_mask is None else m.attn_mask[:L, :L]
        x = embeds + positional_embedding[:L]
        x = m.transformer(x, attn_mask=mask)
        x = m.ln_final(x)
        x = text_global_pool(x, tokens, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection
        return x

    def tokenize(self, texts):
        return self._tokenizer(list(texts))

    def vocab(self) -> list[str]:
        tok = getattr(self._tokenizer, "tokenizer", self._tokenizer)
        decoder = getattr(tok, "decoder", None)
        if decoder is None:
            raise NotImplementedError("this open_clip tokenizer has no id→token table")
        return [decoder.get(i, "").replace("</w>", " ").strip() for i in range(self.token_embedding.num_embeddings)]

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.model.token_embedding

    @property
    def positional_embedding(self) -> Tensor:
        return self.model.positional_embedding

    def image_parameters(self):
        return self.model.visual.parameters()


def _text_length(model, tokens: Tensor, context: int) -> int:
    """How many leading positions of the context can reach the pooled text feature.

    CLIP's text transformer is causal (``attn_mask`` is −∞ above the diagonal) and the feature is read at one
    position per prompt, p_b (the EOT token, ``argmax`` of the ids; or the first ``eos`` id). Position j feeds
    position i only if j ≤ i, so every position after L = max_b p_b + 1 leaves the features — and the gradients
    of the token table and the positional embedding — exactly unchanged: the tower runs on the first L tokens
    with the mask cut to L×L. Anything else (no causal mask, pooling at the last position) keeps the full context.
    """
    pool = model.text_pool_type
    if model.attn_mask is None or pool not in ("argmax", "eos") or tokens.ndim != 2 or tokens.shape[0] == 0:
        return context
    if pool == "argmax":
        pos = tokens.argmax(dim=-1)
    else:
        eos = getattr(model, "text_eos_id", None)
        if eos is None:
            return context
        pos = (tokens == eos).int().argmax(dim=-1)
    return min(context, int(pos.max()) + 1)


def _quickgelu(arch: str, pretrained: str, is_file: bool, assume_openai: bool) -> bool:
    """QuickGELU or not: a tag says it in open_clip's table; a file by :func:`clip_weights.quickgelu_for`."""
    import open_clip

    if not is_file:
        if arch.endswith("-gelu"):
            return False
        cfg = open_clip.get_pretrained_cfg(arch.removesuffix("-quickgelu"), pretrained) or {}
        return arch.endswith("-quickgelu") or bool(cfg.get("quick_gelu", False))
    quick = quickgelu_for(pretrained, arch)
    if quick is None and assume_openai:
        return True
    if quick is None:
        base = arch.removesuffix("-quickgelu")
        raise ConfigError(
            f"cannot tell whether {pretrained} holds OpenAI's CLIP weights (trained with QuickGELU) or GELU ones: "
            f"write openclip:{base}-quickgelu:{pretrained} for OpenAI's weights, openclip:{base}-gelu:{pretrained} "
            "for others, or keep open_clip's file name (the rule: reprolab/encoders/clip_weights.py)"
        )
    return quick


@contextlib.contextmanager
def _quiet_root_log(quiet: bool):
    root = logging.getLogger()
    old = root.level
    if quiet:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(old)


def _load_torchscript_weights(model, path: str) -> None:
    """Copy the tensors of a TorchScript archive (OpenAI's ``.pt``) into an open_clip model of the same shape."""
    state = torch.jit.load(path, map_location="cpu").state_dict()
    for key in ("input_resolution", "context_length", "vocab_size"):  # OpenAI's archive stores these as tensors
        state.pop(key, None)
    kept = model.state_dict()
    for key in [k for k, _ in model.named_buffers() if k not in kept]:  # non-persistent buffers (attn_mask)
        state.pop(key, None)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def tiny_openclip(seed: int = 0) -> OpenClipEncoder:
    """A tiny random-init open_clip CLIP (32 px canvas) for unit tests: same code paths, ~2 M parameters."""
    import open_clip
    from open_clip.model import CLIP

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIP(**TINY_CFG)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=TINY_CFG["text_cfg"]["context_length"])
    return OpenClipEncoder(
        model, id=f"openclip-tiny-random-s{seed}", display_name="tiny random-init CLIP (tests)", tokenizer=tokenizer
    )
