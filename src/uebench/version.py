"""The package version, in a module of its own: the poison store records it in every manifest
without importing the package facade (``uebench/__init__.py`` imports everything)."""

__version__ = "0.1.0"
