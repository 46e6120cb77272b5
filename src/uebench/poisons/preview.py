"""Preview image of a poison: per class one column of clean / amplified delta / poisoned.

The delta row shows ``delta / (2 * max|delta|) + 0.5`` per image (grey = unchanged), so even a
one-pixel or 2/255 perturbation is visible. Rendered on a matplotlib Agg canvas (no display, no
pyplot state).
"""

from __future__ import annotations

import io

import torch


def pick_examples(labels: torch.Tensor, max_classes: int = 10) -> list[tuple[int, int]]:
    """(class, first sample index) for up to ``max_classes`` classes present in ``labels``."""
    picks: list[tuple[int, int]] = []
    for cls in torch.unique(labels).tolist()[:max_classes]:
        picks.append((int(cls), int(torch.nonzero(labels == cls)[0, 0])))
    return picks


def amplify(delta: torch.Tensor) -> torch.Tensor:
    """Map a delta (C x H x W, any units) to [0, 1] for display: ``d / (2 max|d|) + 0.5``."""
    peak = float(delta.abs().max())
    if peak == 0.0:
        return torch.full_like(delta, 0.5, dtype=torch.float32)
    return (delta.float() / (2 * peak) + 0.5).clamp(0, 1)


def render_preview(
    clean: torch.Tensor,
    delta: torch.Tensor,
    labels: torch.Tensor,
    classes: tuple[str, ...] | list[str] = (),
    *,
    title: str = "",
    max_classes: int = 10,
) -> bytes:
    """PNG bytes of the preview grid.

    Args:
        clean: uint8 images N x C x H x W.
        delta: integer pixel-unit perturbation (int16) N x C x H x W.
        labels: int64 labels (N,).
        classes: class names for the column titles.
        title: figure title (e.g. the method).
        max_classes: at most this many columns (the first classes present).
    """
    # an explicit Agg canvas: no pyplot, no global backend switch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picks = pick_examples(labels, max_classes)
    cols = max(len(picks), 1)
    fig = Figure(figsize=(1.4 * cols, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, cols, squeeze=False)
    rows = ("clean", "delta (amplified)", "poisoned")
    for col, (cls, idx) in enumerate(picks):
        x = clean[idx].long()
        d = delta[idx].long()
        poisoned = (x + d).clamp(0, 255).float() / 255.0
        for row, img in enumerate((x.float() / 255.0, amplify(d), poisoned)):
            ax = axes[row][col]
            _show(ax, img)
            if row == 0:
                ax.set_title(classes[cls] if cls < len(classes) else str(cls), fontsize=7)
            if col == 0:
                ax.set_ylabel(rows[row], fontsize=7)
    for col in range(len(picks), cols):
        for row in range(3):
            axes[row][col].axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _show(ax: object, img: torch.Tensor) -> None:
    """Draw one C x H x W image in [0, 1] (1 channel as grey, 3 as RGB, else the first)."""
    arr = img.permute(1, 2, 0).numpy()
    if arr.shape[2] == 3:
        ax.imshow(arr, interpolation="nearest")  # type: ignore[attr-defined]
    else:
        ax.imshow(arr[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")  # type: ignore[attr-defined]
    ax.set_xticks([])  # type: ignore[attr-defined]
    ax.set_yticks([])  # type: ignore[attr-defined]
