"""Part 3 of the talk, neural style transfer: losses, methods and metrics on the
named-layer features of :mod:`patchbook.features`.

- :mod:`.statistics`: Gram, mean/std and covariance of feature maps.
- :mod:`.images`: image tensors, conversions and resizing.
- :mod:`.losses`: Gatys' and AdaIN's losses; STROTSS' relaxed EMD, Sinkhorn
  variant, moment and self-similarity losses; total variation.
- :mod:`.optimize`: Gatys (L-BFGS / Adam) and STROTSS (coarse to fine, RMSprop).
- :mod:`.transforms`, :mod:`.decoder`, :mod:`.feedforward`, :mod:`.magenta`:
  AdaIN, WCT, MST and Magenta's network.
- :mod:`.methods`: the registry ``METHODS`` and :func:`~.methods.stylize`.
- :mod:`.metrics`: style and content distances (AlexNet features).
- :mod:`.comparison`, :mod:`.projections`: what the pages measure (distances
  of renderings to a painting and a photograph; iterated projections).

The package imports none of them, so ``import patchbook.style.losses`` loads
only what the losses need.
"""
