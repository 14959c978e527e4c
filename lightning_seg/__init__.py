"""lightning-seg: a PyTorch Lightning template for semantic segmentation with rare classes."""

import os

# albumentations checks PyPI for a newer release at import time; that must never slow or break an
# offline start-up. Set before any submodule imports albumentations.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 (module-level lazy attribute)
    """``lightning_seg.from_config`` without importing torch and Lightning on ``import lightning_seg``."""
    if name in ("from_config", "Experiment"):
        from lightning_seg import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'lightning_seg' has no attribute '{name}'")
