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
every planned layer for one batch, so one forward feeds all layers' suffixes (docs/sal.md,
"Shared machinery").
The plumbing shared by the engines (``SALTask``, ``SALData``, ``SALResult``, ``measuring``, ...)
lives in :mod:`.task` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.func import vmap

from uebench.learnability.task import (  # noqa: F401  (re-exported: engine plumbing)
    ORIGINS,
    SALData,
    SALResult,
    SALTask,
    clone_losses,
    full_precision,
    measuring,
)
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
