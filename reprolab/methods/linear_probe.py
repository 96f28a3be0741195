"""Linear probe (Radford et al., 2021, §3.2; the paper's "LP" baseline): a linear classifier on frozen features.

With the encoder frozen and f_I(x) its L2-normalised image feature,

    logits(x) = W f_I(x) + b          (W: C×D, b: C)

Two ways to fit (W, b), both on features extracted **once** under ``torch.no_grad`` (:meth:`LinearProbe.fit_features`):

* ``backend="sklearn"`` (CLIP's protocol): multinomial L2-regularised logistic regression (scikit-learn,
  L-BFGS). The inverse regularisation strength C is picked from ``C_grid`` by accuracy on a stratified held-out
  ``val_fraction`` of the *training* data, then the model is refitted on all training features with that C.
  ``coef_``/``intercept_`` are copied into a torch ``nn.Linear`` head, so ``logits`` are torch tensors, the head is
  the checkpoint (safetensors) and the logits equal ``decision_function``. These logits are log-odds, not
  100·cosines: MCM/energy on them are computed on the classifier's own scale.
* ``backend="torch"`` (the paper's settings): the same head trained with cross-entropy, Adam lr 0.01, 25 epochs,
  minibatches over the cached features, zero-initialised; no validation split. Alternatively the torch head can
  be trained through :func:`reprolab.training.fit` (re-encoding every image batch: slower, same loss); ``fit`` has
  nothing to train for the sklearn backend or once :meth:`LinearProbe.fit_features` has run.

``clip_style`` is False (no text side); :meth:`image_features` still returns the frozen encoder features (drift).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from reprolab.errors import ConfigError, ReprolabError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method


@torch.no_grad()
def extract_features(method: Method, dataset, batch_size: int = 256, progress: bool = True) -> tuple[Tensor, Tensor]:
    """(features N×D on CPU, labels N) of ``method.image_features`` over ``dataset``, in order."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    feats, labels = [], []
    dev = method.encoder.device
    for x, y in tqdm(loader, desc=f"features {method.name}", disable=not progress):
        feats.append(method.image_features(x.to(dev)).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels).long()


class LinearProbe(Method):
    name = "linear_probe"
    clip_style = False

    def __init__(
        self,
        encoder,
        backend: str = "sklearn",
        C_grid=(0.1, 1.0, 10.0, 100.0, 1000.0),
        val_fraction: float = 0.2,
        seed: int = 0,
        lr: float = 0.01,
        epochs: int = 25,
        weight_decay: float = 0.0,
        max_iter: int = 1000,
        template: str = DEFAULT_TEMPLATE,
    ):
        super().__init__(encoder, template)
        if backend not in ("sklearn", "torch"):
            raise ConfigError(f"backend={backend!r}; use 'sklearn' (logistic regression) or 'torch' (Adam)")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction={val_fraction!r} must be in [0, 1); 0 skips the C search")
        self.backend, self.C_grid = backend, [float(c) for c in C_grid]
        self.val_fraction, self.seed = val_fraction, seed
        self.hp = dict(lr=lr, epochs=epochs, weight_decay=weight_decay, max_iter=max_iter)
        self.chosen_C: float | None = None
        self.val_accuracy: dict[str, float] = {}
        self.head: nn.Linear | None = None
        self.fitted = False  # True once fit_features / fit_arrays has fitted the head

    def setup(self, classnames):
        super().setup(classnames)
        dim = self.zero_shot_text_features().shape[1]
        self.head = nn.Linear(dim, len(self.classnames)).to(self.encoder.device)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
        return self

    def _need_setup(self):
        if self.head is None:
            raise ConfigError(f"{self.name}: call setup(classnames) (or fit_features) before using the probe")

    # ----- fitting ------------------------------------------------------------------------------------------------
    def fit_features(self, train_set, batch_size: int = 256, progress: bool = True) -> LinearProbe:
        """Extract the frozen features of ``train_set`` once, then fit the head with the chosen backend."""
        if self.head is None:
            self.setup(train_set.classnames)
        X, y = extract_features(self, train_set, batch_size, progress)
        return self.fit_arrays(X, y, batch_size)

    def fit_arrays(self, X: Tensor, y: Tensor, batch_size: int = 256) -> LinearProbe:
        """Fit the head on given features (N×D) and labels (N) — e.g. features cached by the harness."""
        self._need_setup()
        if self.backend == "sklearn":
            self._fit_sklearn(X.detach().float().cpu().numpy(), y.cpu().numpy())
        else:
            self._fit_torch(X, y, batch_size)
        self.fitted = True
        return self

    def _fit_sklearn(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        def make(C):
            return LogisticRegression(C=C, max_iter=self.hp["max_iter"], random_state=self.seed)

        counts = np.bincount(y)
        n_cls, n_val = int((counts > 0).sum()), int(np.ceil(self.val_fraction * len(y)))
        if n_cls < 2:
            raise ReprolabError(
                f"linear probe needs training images of at least 2 classes, got {len(y)} image(s) "
                f"of {n_cls}; raise train_subset"
            )
        best = self.C_grid[0]
        if self.val_fraction > 0 and len(self.C_grid) > 1 and 1 <= n_val <= len(y) - 2:
            # stratify when every class can appear on both sides; tiny sets split at random instead
            strat = y if counts[counts > 0].min() >= 2 and n_cls <= n_val <= len(y) - n_cls else None
            Xa, Xv, ya, yv = train_test_split(X, y, test_size=n_val, random_state=self.seed, stratify=strat)
            if len(np.unique(ya)) >= 2:  # else: too few images to choose C; keep the first of C_grid
                self.val_accuracy = {str(C): float(make(C).fit(Xa, ya).score(Xv, yv)) for C in self.C_grid}
                best = max(self.C_grid, key=lambda C: (self.val_accuracy[str(C)], -C))  # ties: stronger reg.
        clf = make(best).fit(X, y)
        self.chosen_C = best
        coef = torch.as_tensor(clf.coef_, dtype=torch.float32)
        bias = torch.as_tensor(clf.intercept_, dtype=torch.float32)
        W = torch.zeros_like(self.head.weight, device="cpu")
        b = torch.zeros_like(self.head.bias, device="cpu")
        cls = torch.as_tensor(clf.classes_).long()
        if len(cls) == 2:  # binary: one decision score d; rows ±d/2 give the same softmax / argmax
            coef, bias = torch.cat([-coef / 2, coef / 2]), torch.cat([-bias / 2, bias / 2])
        W[cls], b[cls] = coef, bias  # classes absent from the training data keep a zero row
        with torch.no_grad():
            self.head.weight.copy_(W)
            self.head.bias.copy_(b)

    def _fit_torch(self, X: Tensor, y: Tensor, batch_size: int) -> None:
        dev = self.head.weight.device
        X, y = X.to(dev), y.to(dev)
        opt = torch.optim.Adam(self.head.parameters(), lr=self.hp["lr"], weight_decay=self.hp["weight_decay"])
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.hp["epochs"]):
            for idx in torch.randperm(len(X), generator=g).split(batch_size):
                loss = F.cross_entropy(self.head(X[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    # ----- the Method protocol ------------------------------------------------------------------------------------
    def image_features(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encoder.encode_image(self.encoder.resize(images))

    def logits(self, images: Tensor) -> Tensor:
        self._need_setup()
        return self.head(self.image_features(images))

    def trainable_parameters(self) -> list[dict]:
        """The head for ``fit`` — only with the torch backend and only if ``fit_features`` has not fitted it
        already (so ``prepare`` followed by ``fit`` does not train twice; the sklearn head is never touched)."""
        self._need_setup()
        if self.backend == "sklearn" or self.fitted:
            return []
        return [
            dict(
                params=list(self.head.parameters()),
                lr=self.hp["lr"],
                weight_decay=self.hp["weight_decay"],
                optimizer="adam",
            )
        ]

    def training_loss(self, images, labels):
        logits = self.logits(images)
        return F.cross_entropy(logits, labels), logits.argmax(dim=1)

    def prepare(self, train_set, batch_size: int = 256, progress: bool = True) -> LinearProbe:
        """Harness hook run before :func:`~reprolab.training.fit`: the probe is fitted here, on cached features."""
        return self.fit_features(train_set, batch_size, progress)

    def trainable_state(self) -> dict[str, Tensor]:
        self._need_setup()
        return {"head.weight": self.head.weight.detach().clone(), "head.bias": self.head.bias.detach().clone()}

    def config(self) -> dict:
        return dict(
            super().config(),
            backend=self.backend,
            C_grid=self.C_grid,
            val_fraction=self.val_fraction,
            seed=self.seed,
            chosen_C=self.chosen_C,
            val_accuracy=self.val_accuracy,
            **self.hp,
        )
