"""Visual reprogramming (VR) of a frozen ImageNet classifier with a label mapping — reprogramming before CLIP.

Elsayed et al. (2019, adversarial reprogramming) → Tsai et al. (2020, BAR: frequency mapping) → Chen et al.
(CVPR 2023, ILM-VP: iterative mapping) → Tsao et al. (ICLR 2024, AutoVP: input scaling, full mapping). The network
f: image → 1000 ImageNet logits stays frozen; only the input frame (and the full map, and the scale) are trained:

    x̃ = clamp( zoom_s( pad_S( up_u(x) ) ) + ½·B + M ⊙ tanh(W), 0, 1 )   (the kit's ImageReprogrammer frame, reused)
    z = f(x̃) ∈ R^1000 ,     logits_c = z_{m(c)}   (rlm / flm / ilm / semantic)   or   W_map z + b   (full)
    loss = cross-entropy(logits, y)

* the frame is :class:`~reprolab.reprogramming.image_reprogrammer.ImageReprogrammer` on the classifier's canvas S:
  the image is resized to u = ``up_res`` (default ¾·S: 96 px on a 128 canvas), centred, and the learned δ fills the
  border outside the ``mr_res`` square (default u, so δ never covers the image). B is 1 on the border, 0 on the
  image: the border starts mid-grey, the network's normalised zero, so W = 0 is ILM-VP's zero prompt added to a
  zero-padded normalised image. (On the frame's usual black border, every δ ≤ 0 is clamped to 0 and gets no
  gradient, so a zero-initialised frame could never move.) W starts at 0 (``init_std=0``: the
  first forward pass is the plain padded image, as ILM-VP's zero-initialised prompt). Adam, ``lr`` 0.05 for the
  frame (ILM-VP: 0.01 over 200 epochs; the kit's runs are a few hundred steps) and ``map_lr`` 1e-4 for the full map
  (it acts on 1000 raw logits, so one Adam step of size lr moves a target logit by up to lr·Σ|z_k|).
* zoom_s (``learn_scale=True``, AutoVP's learnable input scaling): the placed image is scaled about the centre by
  s = exp(ρ), ρ a learned scalar starting at 0, with bilinear ``grid_sample`` (differentiable in s).
* the label map m and its five kinds: :mod:`reprolab.reprogramming.label_mapping` (equations there). ``flm`` is
  computed once at the start of training, ``ilm`` again at the start of every epoch (:meth:`epoch_start`, called
  by :func:`reprolab.training.fit`), from ``map_samples`` training images (all by default). The map is part of the
  trainable state, so checkpoints and resumed runs keep it; :attr:`mapping_history` records each re-mapping.

OOD score: ``clip_style = False``, so the harness scores maximum softmax probability over the C mapped logits (MSP),
or energy (T = 1) with ``score: energy``. Encoders: anything with ``imagenet_logits`` — ``load_encoder("classifier")``
(EfficientNet-Lite, no text tower) or the offline stand-in (whose image tower is the same EfficientNet-Lite).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import CheckpointError, ConfigError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method
from reprolab.reprogramming import label_mapping as LM
from reprolab.reprogramming.image_reprogrammer import ImageReprogrammer

MAPPINGS = ("rlm", "flm", "ilm", "semantic", "full")
GREY = 0.5  # the border's value before the frame: EfficientNet-Lite's normalised zero (mean 0.5, std 0.5)


def imagenet_classnames() -> list[str]:
    import open_clip

    return list(open_clip.IMAGENET_CLASSNAMES)


@functools.lru_cache(maxsize=8)
def name_embeddings(names: tuple[str, ...], template: str) -> Tensor:
    """MiniLM sentence embeddings (normalised) of ``template.format(name)`` — cached per process and on disk
    (encoding the 1000 ImageNet names takes ~20 s on 2 cores)."""
    import hashlib
    import os

    from safetensors.torch import load_file, save_file

    from reprolab.encoders.standin_weights import cache_dir, sentence_encoder

    key = hashlib.sha256("\n".join([template, *names]).encode()).hexdigest()[:16]
    path = cache_dir() / f"names-minilm-{key}.safetensors"
    if path.is_file():
        try:
            return load_file(path)["E"]
        except Exception:  # a damaged cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    st = sentence_encoder("minilm")
    emb = st.encode([template.format(n) for n in names], convert_to_tensor=True, normalize_embeddings=True)
    emb = emb.detach().cpu().float().contiguous()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"E": emb}, str(tmp))
    os.replace(tmp, path)
    return emb


class VisualReprogrammer(Method):
    name = "visual_reprogrammer"
    clip_style = False

    def __init__(
        self,
        encoder,
        mapping: str = "ilm",
        lr: float = 0.05,
        map_lr: float = 1e-4,
        weight_decay: float = 0.0,
        up_res: int | None = None,
        mr_res: int | None = None,
        init_std: float = 0.0,
        learn_scale: bool = False,
        map_samples: int | None = None,
        seed: int = 0,
        template: str = DEFAULT_TEMPLATE,
    ):
        super().__init__(encoder, template)
        if not hasattr(encoder, "imagenet_logits"):
            raise ConfigError(
                f"visual_reprogrammer needs an ImageNet classifier; {encoder.display_name} has none: "
                "use encoder 'classifier' (EfficientNet-Lite) or 'standin'"
            )
        if mapping not in MAPPINGS:
            raise ConfigError(f"mapping={mapping!r}; use one of {', '.join(MAPPINGS)}")
        S = encoder.image_size
        up = round(0.75 * S) if up_res is None else up_res
        mr = up if mr_res is None else mr_res
        self.hp = dict(
            mapping=mapping, lr=lr, map_lr=map_lr, weight_decay=weight_decay, up_res=up, mr_res=mr, init_std=init_std,
            learn_scale=learn_scale, map_samples=map_samples, seed=seed,
        )  # fmt: skip
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.frame = ImageReprogrammer(canvas=S, image_res=up, up_res=up, mr_res=mr, init_std=init_std)
        self.log_scale = nn.Parameter(torch.zeros(())) if learn_scale else None
        self.source_names = imagenet_classnames()
        self.head: nn.Linear | None = None
        self.register_buffer("mapping", torch.full((0,), -1, dtype=torch.long))
        self.mapping_history: list[dict] = []  # {"epoch", "mapping"} after each (re-)mapping
        self.to(encoder.device)

    # ----- set-up and the label map -------------------------------------------------------------------------------
    def setup(self, classnames):
        super().setup(classnames)
        K, C, kind = len(self.source_names), len(self.classnames), self.hp["mapping"]
        m = torch.full((C,), -1, dtype=torch.long)
        if kind == "rlm":
            m = LM.random_mapping(K, C, self.hp["seed"])
        elif kind == "semantic":
            src = name_embeddings(tuple(self.source_names), self.template)
            m = LM.semantic_mapping(src, name_embeddings(tuple(self.classnames), self.template))
        elif kind == "full":
            with torch.random.fork_rng():
                torch.manual_seed(self.hp["seed"])
                self.head = nn.Linear(K, C).to(self.encoder.device)
        self.mapping = m.to(self.encoder.device)
        self.mapping_history = [{"epoch": None, "mapping": m.tolist()}] if kind in ("rlm", "semantic") else []
        return self

    def _need_setup(self):
        if not self.classnames:
            raise ConfigError(f"{self.name}: call setup(classnames) before training or evaluating")

    @torch.no_grad()
    def remap(self, dataset, batch_size: int = 128, epoch: int | None = None) -> Tensor:
        """Frequency mapping with the current frame on ``dataset`` (or ``map_samples`` of it); returns the map."""
        self._need_setup()
        idx = torch.arange(len(dataset))
        if self.hp["map_samples"] and self.hp["map_samples"] < len(dataset):
            g = torch.Generator().manual_seed(self.hp["seed"])
            idx = torch.randperm(len(dataset), generator=g)[: self.hp["map_samples"]]
        was_training = self.training
        self.eval()
        try:
            zs, ys = [], []
            for b in idx.split(batch_size):
                items = [dataset[int(i)] for i in b]
                x = torch.stack([x for x, _ in items]).to(self.encoder.device)
                zs.append(self.source_logits(x).float().cpu())
                ys.append(torch.tensor([y for _, y in items]))
        finally:
            self.train(was_training)
        m = LM.frequency_mapping(torch.cat(zs), torch.cat(ys), len(self.classnames))
        self.mapping = m.to(self.encoder.device)
        self.mapping_history.append({"epoch": epoch, "mapping": m.tolist()})
        return m

    def epoch_start(self, epoch: int, train_set) -> None:
        """FLM: map once (if not mapped yet); ILM: re-map at the start of every epoch with the current frame."""
        kind = self.hp["mapping"]
        if kind == "ilm" or (kind == "flm" and (self.mapping < 0).any()):
            self.remap(train_set, epoch=epoch)

    def mapped_names(self) -> list[str]:
        """The ImageNet class name each target class is mapped to (empty names for ``full``)."""
        if self.hp["mapping"] == "full":
            return ["" for _ in self.classnames]
        return [self.source_names[k] if k >= 0 else "" for k in self.mapping.tolist()]

    # ----- the reprogrammed input and the logits ------------------------------------------------------------------
    def scale(self) -> float:
        return 1.0 if self.log_scale is None else float(self.log_scale.detach().exp())

    def reprogrammed(self, images: Tensor) -> Tensor:
        """x̃ in [0,1] on the classifier's canvas: placed (optionally zoomed) on a grey canvas, plus the frame."""
        x = self.frame.place(images)
        inside = self.frame.place(torch.ones_like(images[:1]))  # 1 where the image is, 0 on the border
        if self.log_scale is not None:
            inv = torch.exp(-self.log_scale)
            theta = torch.zeros(x.shape[0] + 1, 2, 3, dtype=x.dtype, device=x.device)
            theta[:, 0, 0] = inv
            theta[:, 1, 1] = inv
            both = torch.cat([x, inside])
            grid = F.affine_grid(theta, list(both.shape), align_corners=False)
            both = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            x, inside = both[:-1], both[-1:]
        return (x + GREY * (1 - inside) + self.frame.delta()).clamp(0, 1)

    def source_logits(self, images: Tensor) -> Tensor:
        return self.encoder.imagenet_logits(self.reprogrammed(images))

    def logits(self, images: Tensor) -> Tensor:
        self._need_setup()
        z = self.source_logits(images)
        return self.head(z) if self.head is not None else LM.apply_mapping(z, self.mapping)

    def image_features(self, images: Tensor) -> Tensor:
        return self.encoder.encode_image(self.reprogrammed(images))

    # ----- training -----------------------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[dict]:
        self._need_setup()
        params = [self.frame.W] + ([self.log_scale] if self.log_scale is not None else [])
        groups = [dict(params=params, lr=self.hp["lr"], weight_decay=self.hp["weight_decay"], optimizer="adam")]
        if self.head is not None:  # the full map acts on raw logits (|z| up to ~15 × 1000 inputs): a far smaller rate
            groups.append(dict(params=list(self.head.parameters()), lr=self.hp["map_lr"], optimizer="adam"))
        return groups

    def training_loss(self, images, labels):
        logits = self.logits(images)
        return F.cross_entropy(logits, labels), logits.argmax(dim=1)

    # ----- state: the learned tensors and the label map -----------------------------------------------------------
    def trainable_state(self) -> dict[str, Tensor]:
        state = super().trainable_state()
        state["mapping"] = self.mapping.detach().clone()
        return state

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        state = dict(state)
        if "mapping" in state:
            m = state.pop("mapping").long()
            if m.shape != (len(self.classnames),):
                raise CheckpointError(
                    f"checkpoint label map has {tuple(m.shape)} entries, {self.name} has {len(self.classnames)} "
                    "classes; load it into a method set up with the classes it was trained on"
                )
            self.mapping = m.to(self.encoder.device)
        super().load_trainable_state(state)

    def config(self) -> dict:
        return dict(super().config(), **self.hp)
