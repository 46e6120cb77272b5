"""Paper Fig. 10 analogue (Ye et al., ICLR 2025, arXiv 2509.08058, App. A.5): LeNet-5 paths, clean
vs OPS and EM, on Fashion-MNIST (the paper uses MNIST, which is not available offline).

Command (from the repository root)::

    PYTHONPATH=src python experiments/fig10_lenet_landscape.py --out runs/landscape-lenet

Setup: a stratified 10,000-image Fashion-MNIST training subset (2,000 test images), LeNet-5,
SGD lr 0.01 momentum 0.9 (the paper: lr 0.001; at this scale lr 0.001 leaves LeNet-5
under-trained and no poison bites, see docs/landscape.md), batch 32, 10 epochs = 3,130 steps, a
snapshot every 21 steps + every epoch end (160 snapshots, 38 MB per run); OPS and EM (the demo's
CPU-scaled EM: LeNet-5 surrogate, <= 5 rounds of 5 PGD steps) made from the same subset; all runs
start from the same weights. Landscapes: 21 x 21 grids, 1,000 fixed training images.
Runtime: about 9 min on one busy CPU core (EM generation and 2 x 3 x 2 surfaces dominate).

Expected result (measured, seed 0): test accuracy clean 0.857, EM 0.773, OPS 0.387 (OPS and EM
fit their training sets: 1.00 / 0.985). PC1 + PC2 explain 90 % (clean), 91 % (EM), 94 % (OPS) of
each path's variance (the paper: "over 90 %").

Expected pictures (``OUT/figures``):

- ``landscape_pca_pc1_pc2.png`` / ``_pc3_pc4.png``: on their own training loss all three paths
  have the same arc (PC1/PC2) and loop (PC3/PC4) shapes; the poisoned runs end in much deeper
  minima (train loss 0.21 clean, 0.04 EM, 3e-4 OPS).
- ``clean-data/path_loss.png``: the clean training loss along each recorded path: all three fall
  together for ~750 steps (to 0.44 OPS, 0.49 EM), then OPS climbs to 6.9 and EM drifts up to 0.81
  while the clean run keeps falling to 0.21 - the paper's "initially approaches the global optimum
  and then gradually deviates".
- ``clean-data/landscape_pca_pc1_pc2.png``, ``interpolation.png``, ``parameter_cdf*.png``.
"""

from __future__ import annotations

import argparse
import json

from uebench.landscape.experiments import run_lenet

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/landscape-lenet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    result = run_lenet(args.out, seed=args.seed, train_size=args.train_size,
                       data_dir=args.data_dir)
    print(json.dumps({k: {"test_acc": v["test_acc"], "train_acc": v["train_acc"]}
                      for k, v in result["runs"].items()}, indent=2))
    print("figures:", *result["figures"]["files"], sep="\n  ")
    print("clean-data view:", result["clean_data_figures"])
