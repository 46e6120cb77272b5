"""Device-resident, seeded batches of a :class:`MultiTaskSet` (images and every task's targets).

As :class:`uebench.data.DeviceLoader`, the whole split lives on the device and batches are
gathered by index; the order and the flips of an epoch come from one CPU generator, so a run is
reproducible on CPU. The only augmentation is the horizontal flip, applied to the image *and* to
every dense target (segmentation, depth, keypoint heat maps), which keeps them aligned; random
crops would need padded targets with ignore values and are not offered.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from uebench.errors import UebenchError
from uebench.multitask.dataset import MultiTaskSet

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


class MultiTaskLoader:
    """Batches ``(x float in [0, 1], {task: target})`` of a multi-task split.

    Args:
        data: the split.
        batch_size: samples per batch.
        device: where the data lives and batches are produced.
        shuffle: a new order every pass (from the generator given to :meth:`batches`).
        drop_last: drop the last incomplete batch.
        flip: flip each sample horizontally with probability 1/2 (image and dense targets).
        images: float images in [0, 1] used instead of ``data.x`` (same shape), e.g. a poison
            search's ``x + delta`` before quantization.
    """

    def __init__(self, data: MultiTaskSet, *, batch_size: int, device: torch.device | str = "cpu",
                 shuffle: bool = False, drop_last: bool = False, flip: bool = False,
                 images: torch.Tensor | None = None) -> None:
        self.device = torch.device(device)
        if images is not None and tuple(images.shape) != tuple(data.x.shape):
            raise UebenchError(f"images {tuple(images.shape)} differ from the data's "
                               f"{tuple(data.x.shape)}")
        self.x = (data.x if images is None else images).to(self.device)
        self.targets = {t: v.to(self.device) for t, v in data.targets.items()}
        self.dense = {t: spec.dense for t, spec in data.tasks.items()}
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last, self.flip = shuffle, drop_last, flip

    def __len__(self) -> int:
        n = int(self.x.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, gen: torch.Generator | None = None) -> Iterator[Batch]:
        """One pass over the data; ``gen`` is required when shuffling or flipping."""
        n = int(self.x.shape[0])
        if (self.shuffle or self.flip) and gen is None:
            raise ValueError("a shuffling or flipping loader needs a generator")
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            xb = self.x[idx].float().div_(255.0) if self.x.dtype == torch.uint8 else self.x[idx]
            targets = {t: v[idx] for t, v in self.targets.items()}
            if self.flip:
                mask = (torch.rand(len(idx), generator=gen) < 0.5).to(self.device)
                xb = _flip_where(mask, xb)
                targets = {t: _flip_where(mask, v) if self.dense[t] else v
                           for t, v in targets.items()}
            yield xb, targets


def _flip_where(mask: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` flipped along its last (width) axis where ``mask`` (one bool per sample)."""
    return torch.where(mask.view(-1, *([1] * (v.dim() - 1))), v.flip(-1), v)
