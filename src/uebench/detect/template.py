"""Class-template detector: a class-wise perturbation *is* its class's mean high-pass residual.

A class-wise perturbation adds the same pattern ``delta_c`` to every image of class ``c`` (OPS's
one pixel per class, class-wise noise), and the perturbations of many sample-wise shortcut
poisons (EM, LSP) are correlated within a class. Natural images differ from their 3x3 local
mean mostly at edges that move from image to image, so the class mean of that high-pass residual
is small and blurred, while a shared perturbation survives the averaging. The residual's class
means are therefore templates a linear (nearest-template) classifier recovers the labels with.

Measured with two-fold cross-fitting: templates ``T_c`` (the class means of the residual
``r = x - box3x3(x)`` over one half, minus their mean over classes, each scaled to unit norm)
score the images of the other half, and the other way round. An image's *template z-score* is
the cosine similarity of its residual to its own class's template, standardised over its
similarities to all the class templates (minus their mean, over their standard deviation): a
poisoned image lines up with its class's perturbation. The statistic is the mean held-out
z-score, the sample score the image's own z-score; the nearest-template accuracy is reported
beside them. The z-score does not saturate where the templates already separate the classes
perfectly (the synthetic test set), and noise that carries no label information cannot raise it:
it shrinks every similarity alike, which the standardisation divides out, and only adds
scatter (a raw margin "own minus best other" would drift towards zero, i.e. *up* on data whose
mean margin is negative, under plain random noise).

In the spirit of the linear-separability analysis of availability poisons (Yu et al.,
"Availability Attacks Create Shortcuts", KDD 2022, arXiv 2111.00898).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uebench.data.base import ImageSet
from uebench.detect.base import Measurement, cross_fit, register_detector
from uebench.runtime import Runtime

_STREAM = 9102  # seed stream of this detector


def high_pass(x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``x - box3x3(x)`` per channel with replicated borders, flattened: float64 N x (C*H*W).

    Args:
        x: uint8 images N x C x H x W.
    """
    out = []
    for start in range(0, x.shape[0], chunk):
        xf = x[start:start + chunk].double().div_(255.0)
        blur = F.avg_pool2d(F.pad(xf, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        out.append((xf - blur).flatten(1))
    return torch.cat(out)


def templates(r: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Unit-norm class templates (classes x D): class means of ``r`` minus their mean over
    classes (a class absent from ``y`` gets a zero template)."""
    sums = torch.zeros((num_classes, r.shape[1]), dtype=r.dtype).index_add_(0, y, r)
    counts = torch.bincount(y, minlength=num_classes).clamp_min(1).to(r.dtype)
    means = sums / counts[:, None]
    means = means - means.mean(0, keepdim=True)
    return means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)


@register_detector(
    "template", needs_reference=True, sample_scores=True, floor=0.10,
    statistic="mean held-out template z-score (2-fold cross-fit): cosine similarity of an "
              "image's high-pass residual x - box3x3(x) to its class template, standardised "
              "over its similarities to all class templates",
    cost="two passes over the images, no training (the cheapest)",
    description="class-wise perturbations are recovered as class-mean high-pass templates",
    paper="idea: Yu et al., KDD 2022, arXiv 2111.00898 (shortcuts are linearly separable)",
)
def template(images: ImageSet, *, rt: Runtime) -> Measurement:
    """Class-template z-scores of high-pass residuals.

    Args:
        images: the candidate set, uint8 N x C x H x W.
        rt: seed of the two halves (computed on the CPU).

    Returns:
        value: mean held-out template z-score (in [-sqrt(C-1), sqrt(C-1)] for C classes);
        samples: each image's z-score (N,); details: ``accuracy``, the held-out nearest-template
        accuracy in [0, 1].
    """
    r = high_pass(images.x)
    r = r / r.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def fit_predict(train_idx: torch.Tensor, test_idx: torch.Tensor, fold: int) -> torch.Tensor:
        t = templates(r[train_idx], images.y[train_idx], images.num_classes)
        sims = r[test_idx] @ t.T
        own = images.y[test_idx]
        right = (sims.argmax(1) == own).double()
        spread = sims.std(dim=1, unbiased=False).clamp_min(1e-12)
        z = (sims.gather(1, own[:, None]).squeeze(1) - sims.mean(dim=1)) / spread
        return torch.stack([right, z], 1)

    held = cross_fit(images.y, rt.generator(_STREAM), fit_predict)
    return Measurement(float(held[:, 1].mean()), held[:, 1].numpy(),
                       {"accuracy": float(held[:, 0].mean())})
