"""Real-time segmentation networks, one file each, written from their papers."""

from lightning_seg.models.realtime.bisenet_v1 import BiSeNetV1
from lightning_seg.models.realtime.bisenet_v2 import BiSeNetV2
from lightning_seg.models.realtime.contextnet import ContextNet
from lightning_seg.models.realtime.fast_scnn import FastSCNN

__all__ = ["BiSeNetV1", "BiSeNetV2", "ContextNet", "FastSCNN"]
