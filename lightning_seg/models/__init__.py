"""Segmentation networks; ``__all__`` is the model zoo that ``lightning-seg models`` lists.

Every network maps ``N×3×H×W`` images to logits ``N×C×H×W`` or ``{"logits": N×C×H×W, ...}`` with named
auxiliary outputs.
"""

from lightning_seg.models.context import DFN, CCNet, EncNet, GALDNet
from lightning_seg.models.portrait import ExtremeC3Net, PortraitNet, SINet
from lightning_seg.models.realtime import (
    BiSeNetV1,
    BiSeNetV2,
    CGNet,
    ContextNet,
    DABNet,
    EDANet,
    ENet,
    ERFNet,
    ESNet,
    ESPNet,
    FastSCNN,
    LEDNet,
)
from lightning_seg.models.smp_net import SMPNet
from lightning_seg.models.unet import AttentionUNet, R2UNet

__all__ = [
    "DFN",
    "AttentionUNet",
    "BiSeNetV1",
    "BiSeNetV2",
    "CCNet",
    "CGNet",
    "ContextNet",
    "DABNet",
    "EDANet",
    "ENet",
    "ERFNet",
    "ESNet",
    "ESPNet",
    "EncNet",
    "ExtremeC3Net",
    "FastSCNN",
    "GALDNet",
    "LEDNet",
    "PortraitNet",
    "R2UNet",
    "SINet",
    "SMPNet",
]
