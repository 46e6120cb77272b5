"""JPEG compression with a real codec (PIL/libjpeg): the dataset defense and the random-quality
batch codec of UEraser's JPEG variant.

Liu et al., "Image Shortcut Squeezing: Countering Perturbative Availability Poisons with
Compression", ICML 2023, arXiv 2301.13838 (ISS); APBench preset (lafeat/apbench 9a6fb91,
util.py ``JPEGcompression``): PIL ``save(..., "JPEG", quality=10)`` on each training image,
before crop/flip. APBench's ``optimice=True`` is a misspelt keyword PIL ignores, so the encoder
runs with PIL's defaults (4:2:0 chroma subsampling, standard tables); so do we.

kornia's ``RandomJPEG`` / ``jpeg_codec_differentiable`` is a differentiable approximation of
JPEG (rounding replaced by a smooth surrogate), not libjpeg's output, so it is not used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from uebench.defenses.base import DatasetDefense, check_images, check_range, register_defense
from uebench.errors import UebenchError

MAX_JPEG_SIDE = 65_500  # libjpeg's limit is 65,535 pixels per side


def _mode(channels: int) -> str:
    if channels not in (1, 3):
        raise UebenchError(f"JPEG needs 1- or 3-channel images, got {channels} channels")
    return "L" if channels == 1 else "RGB"


def codec(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode one uint8 H x W x C (C = 1 or 3) array with PIL at ``quality``."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image, _mode(image.shape[-1]))
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer))
    return decoded[..., None] if decoded.ndim == 2 else decoded


def jpeg_stacked(x: torch.Tensor, quality: int) -> torch.Tensor:
    """APBench's ``random_JPEG_compression`` codec step at a given quality (defense/ueraser.py).

    The float batch (N x C x H x W in [0, 1], any device) is rounded half up to uint8, stacked
    into one tall image ``(N*H) x W`` and compressed in a single PIL call, as APBench does; stacks
    taller than libjpeg's limit are split. Output: float in [0, 1] on ``x``'s device, no
    gradient. The one host round trip of the step: libjpeg has no GPU implementation.
    Deviation: APBench subtracts 0.5 after decoding (``sub_(0.5).div(255)``), a -0.5/255 shift of
    every pixel; we decode to ``v / 255``.
    """
    n, c, h, w = x.shape
    _mode(c)
    pixels = x.detach().mul(255).add_(0.5).clamp_(0, 255).to("cpu", torch.uint8)
    tall = pixels.permute(0, 2, 3, 1).reshape(n * h, w, c).numpy()
    per_chunk = max(1, MAX_JPEG_SIDE // h) * h
    parts = [codec(tall[i : i + per_chunk], quality) for i in range(0, n * h, per_chunk)]
    out = torch.from_numpy(np.concatenate(parts)).reshape(n, h, w, c).permute(0, 3, 1, 2)
    return out.to(x.device, non_blocking=True).float().div_(255)


@register_defense(
    "jpeg",
    kind="dataset",
    paper="Liu et al., ICML 2023, arXiv 2301.13838 (ISS); APBench arXiv 2308.03258",
    official_origin="running",
    description="JPEG compression of every training image with PIL (quality 10), once",
)
@dataclass(frozen=True)
class JPEG(DatasetDefense):
    """Each image through PIL's JPEG codec at ``quality`` (1..100; 10 = APBench/ISS).

    Input/output: uint8 N x C x H x W with C = 1 (grayscale JPEG) or 3 (RGB, 4:2:0 chroma).
    One PIL call per image, as APBench (about 0.1 ms per 32 x 32 image on one core).
    """

    quality: int = 10

    def __post_init__(self) -> None:
        check_range("jpeg.quality", self.quality, 1, 100)

    def prepare(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor:
        check_images(x, dtype=torch.uint8, what="jpeg")
        _mode(x.shape[1])
        images = x.permute(0, 2, 3, 1).cpu().numpy()
        out = np.stack([codec(image, self.quality) for image in images]) if len(images) else images
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device)

    def describe(self) -> str:
        return f"jpeg(q={self.quality})"
