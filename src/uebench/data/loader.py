"""Device-resident batch loader with batched crop/flip augmentation (airbench style).

The whole split lives on the training device as one uint8 tensor; each batch is gathered,
converted to float in [0, 1] and augmented as a whole (no per-sample Python, no PIL). Random
draws come from a CPU generator the caller seeds per epoch, so runs are reproducible and
resumable on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("none", "flip", "crop", "crop_flip")


def random_crop_flip(
    x: torch.Tensor, gen: torch.Generator, *, padding: int = 4, crop: bool = True, flip: bool = True
) -> torch.Tensor:
    """RandomCrop(size, padding, zero fill) + RandomHorizontalFlip on a whole batch.

    Args:
        x: float images N x C x H x W.
        gen: CPU generator for the draws.
    """
    n, c, h, w = x.shape
    if crop and padding > 0:
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        padded = F.pad(x, (padding, padding, padding, padding))
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    return x


class DeviceLoader:
    """Shuffled (or ordered) batches of an in-memory dataset, augmented on the device.

    Args:
        x: images, uint8 (0..255) or float in [0, 1], N x C x H x W.
        y: int64 labels (N,).
        batch_size: batch size.
        shuffle: reshuffle every pass (with the generator given to :meth:`batches`).
        drop_last: drop the last incomplete batch.
        augment: one of ``none``, ``flip``, ``crop``, ``crop_flip``.
        device: where the data lives and batches are produced.
        padding: crop padding in pixels.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        augment: str = "none",
        device: torch.device | str = "cpu",
        padding: int = 4,
    ) -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.padding = padding

    def __len__(self) -> int:
        n = int(self.x.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    def _to_float(self, xb: torch.Tensor) -> torch.Tensor:
        return xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()

    def batches(
        self, gen: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the data: ``(x float [0,1], y)`` batches."""
        n = self.num_samples
        if self.shuffle:
            if gen is None:
                raise ValueError("a shuffling loader needs a generator")
            order = torch.randperm(n, generator=gen).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            xb = self._to_float(self.x[idx])
            if self.augment != "none":
                if gen is None:
                    raise ValueError("augmentation needs a generator")
                xb = random_crop_flip(
                    xb,
                    gen,
                    padding=self.padding,
                    crop=self.augment in ("crop", "crop_flip"),
                    flip=self.augment in ("flip", "crop_flip"),
                )
            yield xb, self.y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle or self.augment != "none":
            raise ValueError("use .batches(generator) for shuffled or augmented passes")
        return self.batches(None)
