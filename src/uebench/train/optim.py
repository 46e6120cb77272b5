"""Optimizer and learning-rate schedule from a :class:`TrainCfg`."""

from __future__ import annotations

import math

import torch
from torch import nn

from uebench.config import TrainCfg


def make_optimizer(model: nn.Module, cfg: TrainCfg) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )


def milestone_epochs(cfg: TrainCfg) -> list[int]:
    """Milestones in whole epochs (fractions < 1 are taken relative to ``cfg.epochs``)."""
    out = []
    for m in cfg.milestones:
        out.append(int(math.floor(m * cfg.epochs)) if m < 1 else int(m))
    return sorted(set(e for e in out if e > 0))


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainCfg
) -> torch.optim.lr_scheduler.LRScheduler:
    """An epoch-level scheduler (``step()`` once per epoch)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=milestone_epochs(cfg), gamma=cfg.gamma
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _epoch: 1.0)
