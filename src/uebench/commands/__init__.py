"""The core ``uebench`` commands, one module per family; importing the package registers them all
(:func:`uebench.commandline.command`), the way :mod:`uebench.cli` loads them."""

from uebench.commands import catalog, measure, poison, runs  # noqa: F401  (registration)
