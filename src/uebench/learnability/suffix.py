"""Suffix plans: re-run only the part of a model that a perturbed layer changes (torch.fx).

SAL (Ye et al., ICLR 2025, arXiv:2509.08058, Eq. 3) perturbs one layer's weight ``W_l`` at a time
with every other weight frozen and BatchNorm in eval mode. The logits then depend on ``W_l`` only
through the *descendants* of that layer's call in the traced graph; everything else (the layer's
input, a residual branch, a class token, shape values) is a fixed function of the images. A
:class:`SuffixPlan` traces the model once and, for each layer ``l``:

- finds its ``call_module`` node and the set ``D_l`` of nodes that depend on its output;
- lists its *frontier*: every node outside ``D_l`` that a node of ``D_l`` consumes (the layer's
  input among them; parameters and buffers are re-read instead of cached);
- builds a small ``GraphModule`` ``(delta, *frontier) -> logits`` that recomputes only ``D_l``,
  with the layer replaced by the same op on ``W_l + delta`` (``Conv2d._conv_forward`` / ``F.linear``
  with the module's own stride, padding, dilation, groups and bias).

One *clean* forward (:meth:`SuffixPlan.capture`) returns the logits plus every frontier value of
every planned layer for one batch, so one forward feeds all layers' suffixes (sal_protocol.md §5).
The second half of this file is the plumbing shared by the engines (``compat.py``, ``fast.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.func import vmap

from uebench.models.base import layer_names

Cache = dict[str, Any]


class _WithDelta(nn.Module):
    """``layer`` applied with weight ``layer.weight + delta`` (delta may carry a vmap dimension)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        weight = self.layer.weight + delta
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, weight, self.layer.bias)  # handles padding_mode
        return F.linear(x, weight, self.layer.bias)


@dataclass(frozen=True)
class LayerSuffix:
    """The recompute plan of one layer: ``graph_module(delta, *[cache[n] for n in inputs])``."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    graph_module: fx.GraphModule


def _attr(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


class SuffixPlan:
    """Per-layer suffix functions of a traced model, sharing one clean forward per batch.

    Args:
        model: a ``torch.fx.symbolic_trace``-able model returning one logits tensor. Its modules
            are shared, not copied: put it in eval mode (see :func:`measuring`) before use.
        layers: module paths of Conv2d/Linear layers; default every one (:func:`layer_names`).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None = None) -> None:
        self.model = model
        self.layers = list(layers) if layers is not None else layer_names(model)
        known = set(layer_names(model))
        unknown = [name for name in self.layers if name not in known]
        if unknown:
            raise ValueError(f"not Conv2d/Linear layers of the model: {unknown}")
        self.traced = fx.symbolic_trace(model)
        nodes = list(self.traced.graph.nodes)
        self._output = next(n for n in nodes if n.op == "output")
        if not isinstance(self._output.args[0], fx.Node):
            raise ValueError("SuffixPlan needs a model that returns a single logits tensor")
        self.suffixes = {name: self._plan_layer(name, nodes) for name in self.layers}
        needed = dict.fromkeys(n for s in self.suffixes.values() for n in s.inputs)
        self.cached_nodes = tuple(needed)
        self._clean = self._build_clean(nodes)
        self._batched = {
            name: vmap(s.graph_module, in_dims=(0,) + (None,) * len(s.inputs))
            for name, s in self.suffixes.items()
        }

    # ------------------------------------------------------------------ building
    def _plan_layer(self, name: str, nodes: list[fx.Node]) -> LayerSuffix:
        calls = [n for n in nodes if n.op == "call_module" and n.target == name]
        if len(calls) != 1:
            raise ValueError(f"layer {name!r} is called {len(calls)} times in the traced graph; "
                             "SAL needs exactly one call per layer")
        layer_node = calls[0]
        if len(layer_node.args) != 1 or layer_node.kwargs:
            raise ValueError(f"layer {name!r} must be called with one positional input")
        desc = {layer_node}
        for n in nodes[nodes.index(layer_node) + 1:]:
            if n.op != "output" and any(a in desc for a in n.all_input_nodes):
                desc.add(n)
        if self._output.args[0] not in desc:
            raise ValueError(f"the logits do not depend on layer {name!r}")
        frontier: dict[fx.Node, None] = {}
        for n in nodes:
            if n in desc:
                for a in n.all_input_nodes:
                    if a not in desc and a.op != "get_attr":
                        frontier[a] = None
        module = self.traced.get_submodule(name)
        gm = self._build_suffix(layer_node, desc, list(frontier), module, nodes)
        return LayerSuffix(name, module, tuple(n.name for n in frontier), gm)

    def _build_suffix(self, layer_node: fx.Node, desc: set[fx.Node], frontier: list[fx.Node],
                      module: nn.Module, nodes: list[fx.Node]) -> fx.GraphModule:
        graph = fx.Graph()
        delta = graph.placeholder("delta")
        env: dict[fx.Node, fx.Node] = {n: graph.placeholder(f"cached_{i}")
                                       for i, n in enumerate(frontier)}
        root: dict[str, Any] = {"sal_layer": _WithDelta(module)}
        for n in nodes:
            if n not in desc:
                continue
            if n is layer_node:
                env[n] = graph.call_module("sal_layer", (env[n.args[0]], delta))
                continue
            for a in n.all_input_nodes:
                if a.op == "get_attr" and a not in env:  # parameters/buffers: re-read, not cached
                    env[a] = graph.node_copy(a)
                    root[a.target] = _attr(self.traced, a.target)
            if n.op == "call_module":
                root[n.target] = self.traced.get_submodule(n.target)
            env[n] = graph.node_copy(n, lambda a: env[a])
        graph.output(env[self._output.args[0]])
        return fx.GraphModule(root, graph)

    def _build_clean(self, nodes: list[fx.Node]) -> fx.GraphModule:
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for n in nodes:
            if n.op != "output":
                env[n] = graph.node_copy(n, lambda a: env[a])
        by_name = {n.name: n for n in nodes}
        outs = (env[self._output.args[0]],) + tuple(env[by_name[k]] for k in self.cached_nodes)
        graph.output(outs)
        return fx.GraphModule(self.traced, graph)

    # ------------------------------------------------------------------ running
    def capture(self, x: torch.Tensor,
                nodes: Sequence[str] | None = None) -> tuple[torch.Tensor, Cache]:
        """Clean forward of one batch: ``(logits, {node name: value})`` for every frontier node
        (or only ``nodes``). Run it under ``torch.no_grad()`` unless you need weight gradients."""
        logits, *values = self._clean(x)
        cache = dict(zip(self.cached_nodes, values))
        if nodes is not None:
            cache = {k: cache[k] for k in nodes}
        return logits, cache

    def inputs(self, layer: str) -> tuple[str, ...]:
        """The cached node names the suffix of ``layer`` reads."""
        return self.suffixes[layer].inputs

    def weight(self, layer: str) -> torch.Tensor:
        return self.suffixes[layer].module.weight

    def suffix(self, layer: str, delta: torch.Tensor, cache: Cache) -> torch.Tensor:
        """Logits with ``W_layer + delta`` (``delta`` shaped like the weight)."""
        s = self.suffixes[layer]
        return s.graph_module(delta, *[cache[k] for k in s.inputs])

    def batched_suffix(self, layer: str, deltas: torch.Tensor, cache: Cache) -> torch.Tensor:
        """Logits for a stack of perturbations: ``deltas`` S x weight shape -> S x N x classes."""
        s = self.suffixes[layer]
        args = [cache[k] for k in s.inputs]
        if torch.is_autocast_enabled(deltas.device.type):
            # vmap bypasses autocast (mixed-dtype conv/batch_norm errors): one call per row
            return torch.stack([s.graph_module(d, *args) for d in deltas])
        return self._batched[layer](deltas, *args)


# ---------------------------------------------------------------------- shared engine plumbing
def full_precision(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) logits to float32 for the loss; float32/float64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def clone_losses(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each clone: ``logits`` S x N x C, ``y`` (N,) -> (S,) mean or sum."""
    flat = full_precision(logits.flatten(0, 1))
    ce = F.cross_entropy(flat, y.repeat(logits.shape[0]), reduction="none").view(logits.shape[:2])
    return ce.mean(1) if reduction == "mean" else ce.sum(1)


@contextmanager
def measuring(model: nn.Module, device: torch.device,
              dtype: torch.dtype | None = None) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm running statistics, no dropout), every parameter frozen.

    Yields ``model`` itself, or a deep copy when ``dtype``/``device`` differ from the model's, and
    restores every module's training flag and every parameter's ``requires_grad`` afterwards, so
    the caller's model leaves exactly as it came in (weights are never written).
    """
    param = next(model.parameters())
    same_device = param.device.type == device.type and (
        device.index is None or param.device.index == device.index)
    if (dtype is not None and param.dtype != dtype) or not same_device:
        work = copy.deepcopy(model).to(device=device, dtype=dtype or param.dtype)
    else:
        work = model
    modes = [(m, m.training) for m in work.modules()]
    grads = [(p, p.requires_grad) for p in work.parameters()]
    work.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        yield work
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)


ORIGINS = {"official": "official", "train_running": "official", "exact": "exact", "eval": "exact"}


@dataclass(frozen=True)
class SALTask:
    """What every engine measures: SAL of ``layers`` of ``model`` on ``(x, y)``.

    ``origin``: ``"official"`` = ``origin_loss`` (running train-mode loss, as the paper code; the
    eval-mode value when it is 0, as there) or ``"exact"`` = eval-mode L(θ), measured like the
    clones. ``batch_size``/``augment``/``crop_padding``: the pipeline the compat engine replays.
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    rt: Any  # uebench.runtime.Runtime
    eps: float = 0.05
    layers: tuple[str, ...] | None = None
    origin: str = "exact"
    origin_loss: float | None = None
    batch_size: int = 256
    augment: str = "crop_flip"
    crop_padding: int = 4
    seed_offsets: tuple[int, ...] = (7, 0)
    dtype: torch.dtype | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {sorted(ORIGINS)}, got {self.origin!r}")
        if ORIGINS[self.origin] == "official" and self.origin_loss is None:
            raise ValueError("origin='official' needs origin_loss (the epoch's running train loss)")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")

    def generator(self, *offsets: int) -> torch.Generator:  # rt.generator(*seed_offsets, ...)
        return self.rt.generator(*self.seed_offsets, *offsets)

    def autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.rt.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.rt.device.type, enabled=False)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as float in [0, 1] in the working dtype, on the device."""
        x = x.to(self.rt.device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        return x.to(self.dtype or torch.float32)

    def resolve_origin(self, exact: float) -> float:
        if ORIGINS[self.origin] == "official" and self.origin_loss not in (None, 0.0):
            return float(self.origin_loss)  # type: ignore[arg-type]
        return exact


@dataclass
class SALResult:
    """Per-layer SAL (``values``, ≥ 0) with its two one-sided parts and the origin used."""

    values: dict[str, float]
    s_max: dict[str, float]
    s_min: dict[str, float]
    origin: float
    engine: str
    seconds: float = 0.0
    details: dict[str, Any] | None = None
