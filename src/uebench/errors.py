"""User-facing errors: the CLI prints their message and exits non-zero without a traceback."""


class UebenchError(Exception):
    """A problem with the user's input or environment. The message names the problem and the fix."""


class UnknownNameError(UebenchError, KeyError):
    """An unknown registry name (dataset, model, attack, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(UebenchError, FileNotFoundError):
    """Dataset files are missing; the message lists where we looked and how to get them."""


class ConfigError(UebenchError, ValueError):
    """An unknown key, a wrong type or an invalid value in a config or override."""


class PoisonValidationError(UebenchError, ValueError):
    """A stored poison does not match the clean data or violates its declared budget."""
