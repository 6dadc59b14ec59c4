"""Part 2 of the talk, the patch k-NN binary encoding (Thiry et al. 2021):
patches and their moments (:mod:`.patches`), whitening (:mod:`.whitening`),
the exact K-nearest-atom selection (:mod:`.knn`), the encoder
(:mod:`.encoding`), the linear heads and their training (:mod:`.classifier`),
the one pipeline every Part 2 page measures with (:mod:`.pipeline`), the
resumable, data-parallel runs (:mod:`.resumable`), fixed-feature baselines
(:mod:`.baselines`), how the code changes with its input (:mod:`.sensitivity`) and
the dimensionality study (:mod:`.dimension`)."""
