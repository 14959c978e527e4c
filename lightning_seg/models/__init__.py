"""Segmentation networks. Every network maps ``N×3×H×W`` images to logits or ``{"logits": N×C×H×W, ...}``."""

from lightning_seg.models.context import DFN, CCNet, EncNet, GALDNet
from lightning_seg.models.realtime import BiSeNetV1, BiSeNetV2, ContextNet, FastSCNN
from lightning_seg.models.smp_net import SMPNet

__all__ = [
    "DFN",
    "BiSeNetV1",
    "BiSeNetV2",
    "CCNet",
    "ContextNet",
    "EncNet",
    "FastSCNN",
    "GALDNet",
    "SMPNet",
]
