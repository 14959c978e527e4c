"""Miniature datasets in each benchmark's exact on-disk layout, written by the tests.

Every writer draws tiny random images and label files with known values (including void / ignore
values) and returns the train-id masks a correct loader must produce, by split and sample name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: (height, width) of fixture images; the second size checks padding of mixed sizes in a batch.
SIZES = ((40, 48), (36, 44))

Expected = dict[str, dict[str, np.ndarray]]


def write_image(path: Path, size: tuple[int, int], seed: int) -> None:
    """A random RGB image; the format follows the extension (.png, .jpg, .tif)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(pixels).save(path)


def write_label(path: Path, values: np.ndarray, palette: bool = False) -> None:
    """A single-channel label file: greyscale, or indexed with a (non-grey) palette like VOC's; GIF by extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.ascontiguousarray(values, dtype=np.uint8)
    if palette:
        image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
        image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    else:
        image = Image.fromarray(values)
    image.save(path)


def random_labels(size: tuple[int, int], values: list[int], seed: int) -> np.ndarray:
    """A label array of ``size`` in which every value of ``values`` occurs."""
    labels = np.random.default_rng(seed).choice(np.asarray(values), size=size)
    labels.ravel()[: len(values)] = values
    return labels.astype(np.uint8)


def make_folder(root: Path, layout: str = "subfolders", mask_format: str = "index") -> Expected:
    """FolderDataModule layout with classes ``bg, a, b`` (0, 1, 2) and ignore 255.

    ``layout`` is ``subfolders`` (images/train/...) or ``lists`` (images/*, splits/train.txt); with
    ``mask_format="rgb"`` masks are colour PNGs using :data:`FOLDER_PALETTE` (white = ignore).
    """
    expected: Expected = {"train": {}, "val": {}, "test": {}}
    counts = {"train": 4, "val": 2, "test": 2}
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for split, count in counts.items():
        for i in range(count):
            name = f"{split}_{i:02d}"
            size = SIZES[i % 2]
            sub = split if layout == "subfolders" else ""
            write_image(root / "images" / sub / f"{name}.jpg", size, seed=i)
            mask = random_labels(size, [0, 1, 2, 255], seed=100 + i + 10 * len(split))
            if mask_format == "rgb":
                colours = np.array([*FOLDER_PALETTE, *([(255, 255, 255)] * 253)], dtype=np.uint8)
                path = root / "masks" / sub / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(colours[mask]).save(path)
            else:
                write_label(root / "masks" / sub / f"{name}.png", mask)
            expected[split][name] = mask
            lines[split].append(name)
    if layout == "lists":
        (root / "splits").mkdir(parents=True, exist_ok=True)
        for split, names in lines.items():
            (root / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return expected


FOLDER_PALETTE = ((0, 0, 0), (200, 30, 30), (30, 200, 30))
FOLDER_CLASSES = ("bg", "a", "b")


def make_voc(root: Path, trainaug: bool = False) -> Expected:
    """VOC2012 layout: palette PNGs with classes 0..20 and 255 borders; optional SBD-augmented masks."""
    expected: Expected = {"train": {}, "val": {}}
    names = {"train": ["2007_000032", "2007_000039", "2007_000063"], "val": ["2007_000033", "2007_000042"]}
    for split, split_names in names.items():
        for i, name in enumerate(split_names):
            size = SIZES[i % 2]
            write_image(root / "JPEGImages" / f"{name}.jpg", size, seed=i)
            mask = random_labels(size, [0, 1, 15, 20, 255], seed=300 + i + 10 * len(split))
            write_label(root / "SegmentationClass" / f"{name}.png", mask, palette=True)
            expected[split][name] = mask
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    for split, split_names in names.items():
        (lists / f"{split}.txt").write_text("\n".join(split_names) + "\n")
    if trainaug:
        expected["trainaug"] = {}
        aug_names = [*names["train"], "2008_000002"]
        write_image(root / "JPEGImages" / "2008_000002.jpg", SIZES[0], seed=9)
        for i, name in enumerate(aug_names):
            size = SIZES[i % 2] if name != "2008_000002" else SIZES[0]
            mask = random_labels(size, [0, 7, 255], seed=500 + i)
            write_label(root / "SegmentationClassAug" / f"{name}.png", mask)
            expected["trainaug"][name] = mask
        lines = [f"/JPEGImages/{n}.jpg /SegmentationClassAug/{n}.png" for n in aug_names]
        (lists / "trainaug.txt").write_text("\n".join(lines) + "\n")
    return expected


#: labelId → trainId pairs the Cityscapes fixture uses (26 car → 13, 3 out-of-roi and 0 unlabelled → 255).
CITYSCAPES_IDS = {7: 0, 26: 13, 3: 255, 0: 255, 24: 11, 33: 18}


def make_cityscapes(root: Path) -> Expected:
    """Cityscapes layout: labelIds PNGs, plus one sample that also has a labelTrainIds PNG."""
    expected: Expected = {"train": {}, "val": {}}
    cities = {"train": ["aachen", "bochum"], "val": ["frankfurt"]}
    lut = np.zeros(256, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_IDS.items():
        lut[label_id] = train_id
    for split, split_cities in cities.items():
        for c, city in enumerate(split_cities):
            for i in range(2):
                name = f"{city}_{i:06d}_000019"
                size = SIZES[i % 2]
                write_image(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", size, seed=c + i)
                label_ids = random_labels(size, list(CITYSCAPES_IDS), seed=10 * c + i + len(split))
                gt = root / "gtFine" / split / city
                write_label(gt / f"{name}_gtFine_labelIds.png", label_ids)
                expected[split][name] = lut[label_ids]
                if split == "train" and c == 0 and i == 0:
                    # Train ids written by cityscapesScripts: must be read as they are (here they differ
                    # from the labelIds mapping, so a loader reading the wrong file fails the test).
                    train_ids = random_labels(size, [1, 2, 5, 255], seed=77)
                    write_label(gt / f"{name}_gtFine_labelTrainIds.png", train_ids)
                    expected[split][name] = train_ids
                (gt / f"{name}_gtFine_color.png").write_bytes(b"")  # present in the real download
    write_image(root / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png", SIZES[0], 5)
    return expected


def make_camvid(root: Path) -> Expected:
    """SegNet's CamVid layout: {split}/ and {split}annot/ with class ids 0..10 and 11 = void."""
    expected: Expected = {"train": {}, "val": {}, "test": {}}
    for split, count in {"train": 3, "val": 2, "test": 2}.items():
        for i in range(count):
            name = f"0001TP_{i:06d}"
            size = SIZES[i % 2]
            write_image(root / split / f"{name}.png", size, seed=i)
            raw = random_labels(size, [0, 3, 10, 11], seed=40 + i + count)
            write_label(root / f"{split}annot" / f"{name}.png", raw)
            expected[split][name] = np.where(raw == 11, 255, raw).astype(np.uint8)
    return expected


def make_ade20k(root: Path) -> Expected:
    """ADEChallengeData2016 layout: 0 = other (→ 255), k → k − 1 (so 5 → 4, 150 → 149)."""
    expected: Expected = {"train": {}, "val": {}}
    folders = {"train": "training", "val": "validation"}
    for split, folder in folders.items():
        for i in range(3 if split == "train" else 2):
            name = f"ADE_{folder[:5]}_{i + 1:08d}"
            size = SIZES[i % 2]
            write_image(root / "images" / folder / f"{name}.jpg", size, seed=i)
            raw = random_labels(size, [0, 1, 5, 150], seed=60 + i + len(split))
            write_label(root / "annotations" / folder / f"{name}.png", raw)
            expected[split][name] = np.where(raw == 0, 255, raw.astype(np.int16) - 1).astype(np.uint8)
    return expected


def _disc(size: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: size[0], : size[1]]
    return (yy - size[0] / 2) ** 2 + (xx - size[1] / 2) ** 2 <= (min(size) / 2 - 2) ** 2


def make_drive(root: Path, test_manual: bool = True) -> Expected:
    """DRIVE layout: TIFF images, GIF vessel annotations (0/255), GIF field-of-view discs (0/255).

    Training ids 21, 22, 23 (train) and 37, 38 (val, DRIVE's fixed hold-out); test ids 01, 02.
    """
    expected: Expected = {"train": {}, "val": {}, "test": {}}
    groups = {"training": ["21", "22", "23", "37", "38"], "test": ["01", "02"]}
    for folder, ids in groups.items():
        for i, name in enumerate(ids):
            size = SIZES[i % 2]
            write_image(root / folder / "images" / f"{name}_{folder}.tif", size, seed=i)
            fov = _disc(size)
            vessels = random_labels(size, [0, 1], seed=80 + i + len(folder)).astype(bool)
            write_label(root / folder / "mask" / f"{name}_{folder}_mask.gif", fov * 255)
            if folder == "training" or test_manual:
                write_label(root / folder / "1st_manual" / f"{name}_manual1.gif", vessels * 255)
            split = "test" if folder == "test" else ("val" if name in ("37", "38") else "train")
            expected[split][name] = np.where(fov, vessels, 255).astype(np.uint8)
    return expected


def make_kvasir(root: Path, count: int = 10) -> dict[str, np.ndarray]:
    """Kvasir-SEG layout: JPEG images and JPEG masks whose flat regions hold values 3 and 250.

    Returns the binary masks (``value > 127``) by name; the JPEG files themselves are not clean 0/255.
    """
    expected = {}
    for i in range(count):
        name = f"cju{i:04d}polyp"
        size = (48, 48) if i % 2 else (32, 48)
        write_image(root / "images" / f"{name}.jpg", size, seed=i)
        blocks = np.random.default_rng(200 + i).integers(0, 2, (size[0] // 16, size[1] // 16))
        blocks[0, 0] = 1
        binary = np.kron(blocks, np.ones((16, 16), dtype=np.int64)).astype(np.uint8)
        path = root / "masks" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(binary == 1, 250, 3).astype(np.uint8)).convert("RGB").save(path, quality=90)
        expected[name] = binary
    return expected
