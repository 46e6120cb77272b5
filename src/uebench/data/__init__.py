"""Datasets: ``load_dataset(name, ...)``; ``DATASETS.names()`` lists every registered dataset."""

from uebench.data import cifar, digits, imagenet, mnist, svhn, synthetic  # noqa: F401  (registration)
from uebench.data.base import (
    DATASETS,
    ImageSet,
    Splits,
    find_files,
    load_dataset,
    register_dataset,
    stratified_subset,
)
from uebench.data.loader import DeviceLoader, random_crop_flip

__all__ = [
    "DATASETS", "DeviceLoader", "ImageSet", "Splits", "find_files", "load_dataset",
    "random_crop_flip", "register_dataset", "stratified_subset",
]
