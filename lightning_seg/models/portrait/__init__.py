"""Mobile portrait segmentation networks: PortraitNet (with its consistency constraint)."""

from lightning_seg.models.portrait.portraitnet import PortraitNet

__all__ = ["PortraitNet"]
