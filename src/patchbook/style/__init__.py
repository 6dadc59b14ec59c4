"""Neural style transfer: pretrained features, losses and methods.

- :mod:`.features`: named activations of the ImageNet VGG16 (offline) or VGG19.
- :mod:`.losses`: Gram, mean/std and covariance statistics; STROTSS' relaxed
  EMD, Sinkhorn variant, moment and self-similarity losses; total variation.
- :mod:`.optimize`: Gatys (L-BFGS / Adam) and STROTSS (coarse to fine, RMSprop).
- :mod:`.feedforward`: AdaIN, WCT, MST and Magenta's network.
- :mod:`.methods`: the registry ``METHODS`` and :func:`stylize`.
- :mod:`.metrics`: style and content distances (AlexNet features).
"""

from .methods import INFO, METHODS, stylize, stylize_cached, to_numpy, to_tensor

__all__ = ["INFO", "METHODS", "stylize", "stylize_cached", "to_numpy", "to_tensor"]
