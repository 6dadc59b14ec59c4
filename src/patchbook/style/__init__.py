"""Neural style transfer: pretrained features, losses and methods."""
