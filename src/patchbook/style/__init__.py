"""Part 3 of the talk, neural style transfer: losses, methods and metrics on the
named-layer features of :mod:`patchbook.features`.

- :mod:`.losses`: Gram, mean/std and covariance statistics; STROTSS' relaxed
  EMD, Sinkhorn variant, moment and self-similarity losses; total variation.
- :mod:`.optimize`: Gatys (L-BFGS / Adam) and STROTSS (coarse to fine, RMSprop).
- :mod:`.feedforward`: AdaIN, WCT, MST and Magenta's network.
- :mod:`.methods`: the registry ``METHODS`` and :func:`stylize`.
- :mod:`.metrics`: style and content distances (AlexNet features).
"""

from .methods import INFO, METHODS, stylize, stylize_cached, to_numpy, to_tensor

__all__ = ["INFO", "METHODS", "stylize", "stylize_cached", "to_numpy", "to_tensor"]
