"""Real-time segmentation networks, one file each, written from their papers."""

from lightning_seg.models.realtime.bisenet_v1 import BiSeNetV1
from lightning_seg.models.realtime.bisenet_v2 import BiSeNetV2
from lightning_seg.models.realtime.cgnet import CGNet
from lightning_seg.models.realtime.contextnet import ContextNet
from lightning_seg.models.realtime.dabnet import DABNet
from lightning_seg.models.realtime.edanet import EDANet
from lightning_seg.models.realtime.enet import ENet
from lightning_seg.models.realtime.erfnet import ERFNet
from lightning_seg.models.realtime.esnet import ESNet
from lightning_seg.models.realtime.espnet import ESPNet
from lightning_seg.models.realtime.fast_scnn import FastSCNN
from lightning_seg.models.realtime.lednet import LEDNet

__all__ = [
    "BiSeNetV1",
    "BiSeNetV2",
    "CGNet",
    "ContextNet",
    "DABNet",
    "EDANet",
    "ENet",
    "ERFNet",
    "ESNet",
    "ESPNet",
    "FastSCNN",
    "LEDNet",
]
