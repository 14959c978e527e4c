"""Segmentation networks. Every network maps ``N×3×H×W`` images to logits or ``{"logits": N×C×H×W, ...}``."""

from lightning_seg.models.context import DFN, CCNet, EncNet, GALDNet
from lightning_seg.models.portrait import PortraitNet
from lightning_seg.models.realtime import BiSeNetV1, BiSeNetV2, ContextNet, FastSCNN
from lightning_seg.models.smp_net import SMPNet
from lightning_seg.models.unet import AttentionUNet, R2UNet

__all__ = [
    "DFN",
    "AttentionUNet",
    "BiSeNetV1",
    "BiSeNetV2",
    "CCNet",
    "ContextNet",
    "EncNet",
    "FastSCNN",
    "GALDNet",
    "PortraitNet",
    "R2UNet",
    "SMPNet",
]
