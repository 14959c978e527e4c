"""Mobile portrait segmentation networks: PortraitNet (with its consistency constraint), SINet, ExtremeC3Net."""

from lightning_seg.models.portrait.extremec3net import ExtremeC3Net
from lightning_seg.models.portrait.portraitnet import PortraitNet
from lightning_seg.models.portrait.sinet import SINet

__all__ = ["ExtremeC3Net", "PortraitNet", "SINet"]
