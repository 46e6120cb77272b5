"""DC: DeepConfuse, a noise generator trained against a classifier's training trajectory.

Feng et al., "Learning to Confuse: Generating Training Time Adversarial Data with
Auto-Encoder", NeurIPS 2019, arXiv 1905.09027 (kingfengji/DeepConfuse, 1f49274).

Distance measure: linf, ``eps`` = 0.032 (the noise is ``eps * tanh(g(x))``). Input ``x`` float in
[0, 1], N x C x H x W; returns ``delta`` shaped like ``x`` with ``x + delta`` in [0, 1].

Algorithm: a UNet generator g is trained in ``outer_epochs`` rounds. Each round starts a fresh
classifier f (SGD lr ``cls_lr``, no momentum) and trains it ``cls_epochs`` epochs on
``clamp(x + eps tanh(g_frozen(x)))`` (g_frozen = g at the round's start). Per batch, before f's
real step:

1. classifier loss on ``clamp(x + eps tanh(g(x)))``;
2. one *virtual* SGD step of f (lr ``cls_lr``) kept differentiable w.r.t. g
   (``torch.func.functional_call``; BN statistics of the virtual pass are not kept);
3. g takes an Adam step (``gen_lr``) that *maximises* the virtually-updated f's cross-entropy
   on the clean batch.

After the round g_frozen <- g. The result is ``eps * tanh(g(x))`` of the final generator.

Defaults are the paper's (1000 outer x 20 classifier epochs, bs 256: "5-7 days on a single
GPU"); preset ``cpu`` (5 x 2 epochs, LeNet-5 classifier, a narrow UNet) finishes on a CPU subset
in minutes. Deviations: the classifier is the zoo's ``resnet18`` (the original VGG11 is not in
the zoo); the UNet is uebench's own (2 pooling levels, ``gen_channels`` base width); the last
generator is kept (the original keeps the one whose scratch-trained classifier had the lowest
*test* accuracy, which needs test data an attack does not get); the classifier runs in fp32.
APBench does not train DC: it ships the authors' pretrained CIFAR-10 generator (not included).
Checkpoints: ``workdir/dc/state.pt`` after every outer epoch (generator, Adam, epoch).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.attacks.surrogate import RunState, batched, build_surrogate, sub_runtime
from uebench.config import TrainCfg
from uebench.runtime import Runtime, derive_seed
from uebench.train.classification import fit
from uebench.utils.progress import bar

STREAM = 8500


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
    )


class UNet(nn.Module):
    """Two-level UNet: images (N x C x H x W, any H, W) -> unbounded maps of the same shape."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.mid = _block(channels, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.up2, self.dec2 = nn.Conv2d(4 * w, 2 * w, 1), _block(4 * w, 2 * w)
        self.up1, self.dec1 = nn.Conv2d(2 * w, w, 1), _block(2 * w, w)
        self.out = nn.Conv2d(w, channels, 1)

    @staticmethod
    def _up(h: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(h, size=like.shape[-2:], mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2, ceil_mode=True))
        m = self.mid(F.max_pool2d(e2, 2, ceil_mode=True))
        d2 = self.dec2(torch.cat([self.up2(self._up(m, e2)), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(self._up(d2, e1)), e1], 1))
        return self.out(d1)


class _Confuse:
    """fit's ``batch_loss``: update the generator through a virtual step, return f's real loss."""

    def __init__(self, gen: UNet, frozen: UNet, opt: torch.optim.Optimizer, eps: float,
                 lr: float) -> None:
        self.gen, self.frozen, self.opt, self.eps, self.lr = gen, frozen, opt, eps, lr

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 info: object) -> tuple[torch.Tensor, torch.Tensor]:
        params = dict(model.named_parameters())
        poisoned = (x + self.eps * torch.tanh(self.gen(x))).clamp(0, 1)
        loss = F.cross_entropy(model(poisoned).float(), y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        virtual = {k: p - self.lr * g for (k, p), g in zip(params.items(), grads)}
        buffers = {k: b.clone() for k, b in model.named_buffers()}  # keep f's BN statistics
        confused = -F.cross_entropy(functional_call(model, {**virtual, **buffers}, (x,)).float(), y)
        gen_params = list(self.gen.parameters())
        for p, g in zip(gen_params, torch.autograd.grad(confused, gen_params)):
            p.grad = g
        self.opt.step()
        with torch.no_grad():
            poisoned = (x + self.eps * torch.tanh(self.frozen(x))).clamp(0, 1)
        logits = model(poisoned)
        return F.cross_entropy(logits.float(), y), logits


def _classifier_cfg(epochs: int, batch_size: int, lr: float) -> TrainCfg:
    return TrainCfg(epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=lr, momentum=0.0,
                    weight_decay=0.0, schedule="constant", augment="none", precision="fp32",
                    channels_last="off")


def _train_generator(
    x: torch.Tensor, y: torch.Tensor, gen: UNet, opt: torch.optim.Optimizer, state: RunState, *,
    num_classes: int, rt: Runtime, eps: float, outer_epochs: int, cls_epochs: int,
    batch_size: int, cls_lr: float, gen_lr: float, gen_channels: int, surrogate: str,
    surrogate_width: float,
) -> None:
    """The outer rounds (resumed from ``state.pt``): a fresh classifier each, fit drives it."""
    saved = state.load("state.pt", rt.device)
    start = 0
    if saved is not None:
        gen.load_state_dict(saved["generator"])
        opt.load_state_dict(saved["optimizer"])
        start = int(saved["epoch"])
    pbar = bar(outer_epochs, enabled=rt.show_progress, desc="dc", unit="round", initial=start)
    for epoch in range(start + 1, outer_epochs + 1):
        frozen = copy.deepcopy(gen).eval()
        gen.train()
        model = build_surrogate(surrogate, x, num_classes, width=surrogate_width, rt=rt,
                                stream=(STREAM, 1, epoch))
        rows = fit(model, x, y, cfg=_classifier_cfg(cls_epochs, batch_size, cls_lr),
                   rt=sub_runtime(rt, STREAM, 2, epoch), desc="dc classifier",
                   batch_loss=_Confuse(gen, frozen, opt, eps, cls_lr))
        state.save("state.pt", {"generator": gen.state_dict(), "optimizer": opt.state_dict(),
                                "epoch": epoch})
        pbar.update(1)
        if rows:
            pbar.set_postfix(cls_acc=f"{rows[-1]['train_acc']:.3f}")
    pbar.close()


@register_attack(
    "dc",
    norm="linf",
    presets={
        "cpu": {"outer_epochs": 5, "cls_epochs": 2, "surrogate": "lenet5", "gen_channels": 16},
    },
    surrogate=True,
    # small settings for the registry-driven contract tests (64 tiny images, seconds)
    test_params={"surrogate": "tiny", "outer_epochs": 2, "cls_epochs": 1, "batch_size": 32,
                 "gen_channels": 4},
    description="DeepConfuse: UNet noise generator trained against a classifier's trajectory",
    paper="Feng et al., NeurIPS 2019, arXiv 1905.09027",
)
def dc(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 0.032,
    outer_epochs: int = 1000,
    cls_epochs: int = 20,
    batch_size: int = 256,
    cls_lr: float = 0.01,
    gen_lr: float = 1e-4,
    gen_channels: int = 64,
    surrogate: str = "resnet18",
    surrogate_width: float = 1.0,
) -> torch.Tensor:
    """DeepConfuse noise.

    Args:
        x: clean images, float in [0, 1], N x C x H x W, on ``rt.device``.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime (device, seed, progress).
        workdir: checkpoint directory (``workdir/dc``); resumes at the last finished outer epoch.
        eps: noise scale (linf radius).
        outer_epochs: generator rounds, each with a fresh classifier.
        cls_epochs: classifier epochs per round.
        batch_size: batch size.
        cls_lr: the classifier's (real and virtual) SGD learning rate.
        gen_lr: the generator's Adam learning rate.
        gen_channels: UNet base width.
        surrogate, surrogate_width: zoo model of the classifier and its width multiplier.

    Returns:
        ``delta`` shaped like ``x``.
    """
    config = dict(eps=eps, cls_epochs=cls_epochs, batch_size=batch_size, cls_lr=cls_lr,
                  gen_lr=gen_lr, gen_channels=gen_channels, surrogate=surrogate,
                  surrogate_width=surrogate_width)
    torch.manual_seed(derive_seed(rt.seed, STREAM, 0))
    gen = UNet(x.shape[1], gen_channels).to(rt.device)
    opt = torch.optim.Adam(gen.parameters(), lr=gen_lr)
    with RunState(workdir, "dc", config) as state:
        _train_generator(x, y, gen, opt, state, num_classes=num_classes, rt=rt, **config,
                         outer_epochs=outer_epochs)
    gen.eval()

    def craft(i: int, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            delta = clamp_to_image(xb, eps * torch.tanh(gen(xb)))
        return delta, torch.zeros(xb.shape[0], device=xb.device)

    return batched(x, y, craft, batch_size=batch_size, store=None, rt=rt, desc="dc noise")[0]
