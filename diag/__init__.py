"""diag: a command-line doctor for neural-network training.

Importing ``diag`` is cheap: torch is imported only by the modules that train or
inspect a model, so ``diag --help`` answers without it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
