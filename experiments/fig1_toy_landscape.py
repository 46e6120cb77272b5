"""Paper Fig. 1 (Ye et al., ICLR 2025, arXiv 2509.08058, §3.1): the toy task's optimisation paths.

Command (from the repository root)::

    PYTHONPATH=src python experiments/fig1_toy_landscape.py --out runs/landscape-toy

Setup: ``make_classification`` 5000 x 12, 10 classes (the ``toy`` dataset, 4000 train / 1000 test),
one linear layer 12 -> 10, SGD lr 0.1 (no momentum), batch 64, 10 epochs = 630 steps, a snapshot
every 5 steps (+ every epoch end: 135 snapshots); the unlearnable run trains on class-wise OPS
(one feature per class set to 0 or 1, chosen by OPS's score). Both runs start from the same
weights. Runtime: about 30 s on one busy CPU core.

Expected result (measured, seed 0): clean test accuracy 0.59; OPS train accuracy 1.00, test
accuracy 0.06 (below chance: the shortcut feature points at the wrong class on clean data).

Expected pictures (``OUT/figures``):

- ``landscape_pca_pc1_pc2.png``: both paths are nearly straight (PC1 explains 98 % / 99 %); on
  its own (poisoned) training loss the OPS run descends much further (final loss 0.02 vs 1.21).
- ``clean-data/path_loss.png``: the *clean* training loss along each recorded path: the clean
  run falls from 2.48 to 1.21; the OPS run dips only briefly (2.48 -> 2.44 at step 10) and then
  climbs to 3.66 - a faint version of the paper's "initially approaches the global optimum and
  then gradually deviates" (clearer on LeNet-5, experiments/fig10_lenet_landscape.py).
  ``clean-data/landscape_pca_pc1_pc2.png`` shows the same paths on the clean loss in the plane.
- ``landscape_pca_pc3_pc4.png``: PC3/PC4 carry < 0.2 % of the variance: SGD noise around the path.
- ``interpolation.png``, ``explained_variance.png``, ``parameter_cdf*.png``.
"""

from __future__ import annotations

import argparse
import json

from uebench.landscape.experiments import run_toy

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/landscape-toy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", type=int, default=31)
    args = ap.parse_args()
    result = run_toy(args.out, seed=args.seed, grid=args.grid)
    print(json.dumps({k: {"test_acc": v["test_acc"], "train_acc": v["train_acc"]}
                      for k, v in result["runs"].items()}, indent=2))
    print("figures:", *result["figures"]["files"], sep="\n  ")
    print("clean-data view:", result["clean_data_figures"])
