"""patchbook: a reproducible companion to a talk on invariance, patch k-NN
encodings and neural style transfer.

The notebooks under ``notebooks/`` import this library; every computation they
show lives here, where it is tested.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
