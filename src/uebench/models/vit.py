"""Small Vision Transformer for 32x32 images (Dosovitskiy et al., 2021, arXiv:2010.11929).

APBench's ``vit`` configuration: patch 4, dim 512, depth 6, heads 8, MLP dim 512, dropout 0.1 (after
the attention projection, in the MLP and on the embeddings), a learned class token and position
embedding, pre-norm blocks, a final LayerNorm and a Linear head on the class token. Differences from
APBench: APBench uses the "ViT for small datasets" tokenizer and attention (SPT/LSA; Lee et al.,
2021, arXiv:2112.13492); this is the plain ViT with a strided-conv patch embedding (equivalent to a
Linear on flattened patches).

Attention is written out with one ``qkv`` Linear and one ``proj`` Linear instead of
``nn.MultiheadAttention``, so every weight matrix is a Conv2d/Linear the layer count sees: 26 layers
(patch embedding, 6 x {qkv, proj, fc1, fc2}, head), as in APBench's SPT/LSA ViT
(``nets/vit_small.py``, from lucidrains' ``vit_for_small_dataset``). At width 1 with 10 classes:
9,523,722 parameters. ``width`` scales dim and MLP dim (dim rounded to a multiple of heads).

Input: float N x C x H x W with H and W divisible by 4; output: N x num_classes logits.
"""

from __future__ import annotations

import torch
from torch import nn

from uebench.models.base import register_model, scaled

PATCH = 4


class Attention(nn.Module):
    """Multi-head self-attention over N x T x dim tokens."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x T x 3*dim -> 3 x N x heads x T x head_dim; build-time constants keep torch.fx happy
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # no dropout on the attention weights (APBench's LSA has none either)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = (attn @ v).transpose(1, 2).flatten(2)  # N x T x dim
        return self.proj_drop(self.proj(out))


class MLP(nn.Module):
    """Linear -> GELU -> Dropout -> Linear -> Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding + class token + position embedding, ``depth`` blocks, LayerNorm, ``head``."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        *,
        dim: int = 512,
        depth: int = 6,
        heads: int = 8,
        mlp_dim: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        h, w = image_size
        if h % PATCH or w % PATCH:
            raise ValueError(
                f"vit needs an image size divisible by the patch size {PATCH}, got {h}x{w}; "
                f"resize or pad the images (e.g. to {(h + 3) // 4 * 4}x{(w + 3) // 4 * 4})"
            )
        if dim % heads:
            raise ValueError(f"vit dim {dim} must be divisible by heads {heads}")
        num_tokens = (h // PATCH) * (w // PATCH) + 1  # + class token
        self.patch_embed = nn.Conv2d(in_channels, dim, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, dim))
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_dim, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # N x patches x dim
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # fx records the batch size as a graph node
        tokens = self.emb_drop(torch.cat([cls, tokens], dim=1) + self.pos_embed)
        tokens = self.norm(self.blocks(tokens))
        return self.head(tokens[:, 0])


@register_model("vit", description="ViT for 32x32 (patch 4, dim 512, depth 6, heads 8; 26 layers)")
def vit(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    heads = 8
    dim = heads * max(1, round(512 * width / heads))
    return ViT(
        in_channels, image_size, num_classes, dim=dim, heads=heads, mlp_dim=scaled(512, width)
    )
