"""The poison store: one directory per poison (quantised δ, indices, labels, manifest, preview),
safe to load (safetensors, checked against the clean data), with imports from and exports to other
tools' formats. Depends only on :mod:`uebench.data`; generation is :mod:`uebench.attacks`'s.
"""

from uebench.poisons.apbench import export_apbench, import_apbench
from uebench.poisons.api import clean_train_set, export_poison, import_poison
from uebench.poisons.interop import import_array, load_array
from uebench.poisons.manifest import manifest_attack, read_manifest
from uebench.poisons.store import load_delta, load_poisoned, save_poison
from uebench.poisons.validation import fingerprint, validate

__all__ = [
    "clean_train_set", "export_apbench", "export_poison", "fingerprint", "import_apbench",
    "import_array", "import_poison", "load_array", "load_delta", "load_poisoned",
    "manifest_attack", "read_manifest", "save_poison", "validate",
]
