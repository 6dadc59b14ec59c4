"""Part 1 of the talk, why invariance: translations and deformations of
images (:mod:`.deformation`), local averaging (:mod:`.averaging`), wavelets
and the scattering transform (:mod:`.scattering`), the stability measures of
the pages (:mod:`.stability`) and the small convolutional networks they are
compared with (:mod:`.convnets`)."""
