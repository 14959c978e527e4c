"""DataModules: the embedded synthetic dataset, a generic folder loader and public benchmarks."""

import logging

from lightning_seg.data.ade20k import ADE20KDataModule
from lightning_seg.data.base import SampleSource, SegmentationDataModule, SegmentationDataset
from lightning_seg.data.camvid import CamVidDataModule
from lightning_seg.data.cityscapes import CityscapesDataModule
from lightning_seg.data.drive import DRIVEDataModule
from lightning_seg.data.files import FileDataModule, FileSample, FileSource
from lightning_seg.data.folder import FolderDataModule
from lightning_seg.data.image_folder import ImageFolderDataModule
from lightning_seg.data.kvasir import KvasirSEGDataModule
from lightning_seg.data.stats import ClassStats
from lightning_seg.data.synthetic import SyntheticDataModule
from lightning_seg.data.voc import VOCDataModule
from lightning_seg.figures.masks import colorize

# Say where caches go and how many workers run, once, on the console (as Lightning does for its own
# messages), unless the application has configured logging itself.
_log = logging.getLogger(__name__)
if not logging.getLogger().hasHandlers() and not _log.handlers:
    _log.setLevel(logging.INFO)
    _log.addHandler(logging.StreamHandler())

__all__ = [
    "ADE20KDataModule",
    "CamVidDataModule",
    "CityscapesDataModule",
    "ClassStats",
    "DRIVEDataModule",
    "FileDataModule",
    "FileSample",
    "FileSource",
    "FolderDataModule",
    "ImageFolderDataModule",
    "KvasirSEGDataModule",
    "SampleSource",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SyntheticDataModule",
    "VOCDataModule",
    "colorize",
]
