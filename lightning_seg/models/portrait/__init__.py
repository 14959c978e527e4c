"""Mobile portrait segmentation networks: PortraitNet (with its consistency constraint) and SINet."""

from lightning_seg.models.portrait.portraitnet import PortraitNet
from lightning_seg.models.portrait.sinet import SINet

__all__ = ["PortraitNet", "SINet"]
