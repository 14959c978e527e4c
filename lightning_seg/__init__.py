"""lightning-seg: a PyTorch Lightning template for semantic segmentation with rare classes."""

import os

# albumentations checks PyPI for a newer release at import time; that must never slow or break an
# offline start-up. Set before any submodule imports albumentations.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
