"""Image data sets as tensors in ``[0, 1]`` (the paper's scaling), from torchvision or a folder.

:func:`image_dataset` is the one entry point. MNIST and Fashion-MNIST come through
torchvision. CIFAR-10 comes from torchvision's own format when ``root/cifar-10-batches-py``
is there, otherwise from a folder of image files ``train/<class>/*.png|jpg`` and
``test/<class>/...`` (for example the offline JPEG copy that ``dev.py`` unpacks into
``data/cifar10-jpeg/``), otherwise from torchvision's download. ``"folder"`` reads any
folder of images, with class sub-folders or flat.

Every data set returned carries ``.source`` (one line saying exactly what was read, so
that a result made on a lossy JPEG copy cannot pass for one made on the original; it
does not depend on whether the cache was used, which folder data sets say in ``.cache``),
``.channels``, ``.image_size``, and ``.data`` / ``.targets`` holding the whole split
(``.data`` is ``uint8``; for folders it is an array ``(N, H, W, C)`` like torchvision's
CIFAR-10).

A data set that is not on disk is downloaded by torchvision (``download=True``, the
default, as on Colab). Where that cannot happen the error says which cause it was:
:class:`DatasetDownloadError` (a ``ConnectionError``) when the download was tried and the
network failed, ``FileNotFoundError`` when ``download=False`` forbade it.

Decoding tens of thousands of image files takes a while, so the decoded ``uint8`` array
is cached in ``<data root>/cache/`` (keyed by the folder's file names, sizes and
modification times and by the crop and resize settings); a read-only place just means no
cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ncsn_edu.progress import progress_bar
from ncsn_edu.resources import data_root

DATASETS = ("mnist", "fashion_mnist", "cifar10", "folder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Folders under the data root searched for CIFAR-10 as image files, in order.
CIFAR10_FOLDERS = ("cifar10-jpeg", "cifar10")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_CACHE_VERSION = 1


class DatasetDownloadError(ConnectionError):
    """A data set that is not on disk could not be downloaded: torchvision tried and the
    network failed (no connection, a blocked or unknown host). A ``ConnectionError``, so
    ``except OSError`` still catches it, but never a ``FileNotFoundError``: the files are
    missing because the download failed, and the remedy is the network (or a copy)."""


def _network_failure(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a failed download: torchvision's MNIST
    classes wrap every mirror's ``URLError`` into ``RuntimeError("Error downloading ...")``,
    CIFAR-10's download lets the ``URLError`` (an ``OSError``) through."""
    import socket
    import urllib.error

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (urllib.error.URLError, ConnectionError, socket.timeout, socket.gaierror, TimeoutError)):
            return True
        if isinstance(err, RuntimeError) and str(err).startswith("Error downloading"):
            return True
        err = err.__cause__ or err.__context__
    return False


class ImageArrayDataset(Dataset):
    """A whole split held as one ``uint8`` array ``data`` of shape ``(N, H, W, C)`` with
    integer ``targets``; items are ``(x, label)`` with ``x`` float in ``[0, 1]`` of shape
    ``(C, H, W)``. ``flip`` mirrors each item left-right with probability 1/2 (drawn from
    torch's global generator, as torchvision's ``RandomHorizontalFlip`` does)."""

    #: the decoded-image cache file used, with "(hit)" or "(written)"; None without one
    cache: str | None = None

    def __init__(self, data: np.ndarray, targets, classes, source: str, flip: bool = False, files=None):
        if data.dtype != np.uint8 or data.ndim != 4:
            raise ValueError(f"data must be a uint8 array (N, H, W, C), got {data.dtype} {data.shape}")
        self.data = data
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.source = source
        self.flip = flip
        self.files = files
        self.channels = int(data.shape[3])
        self.image_size = int(data.shape[1]) if data.shape[1] == data.shape[2] else tuple(data.shape[1:3])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        x = torch.from_numpy(np.ascontiguousarray(self.data[i])).permute(2, 0, 1).float().div(255)
        if self.flip and torch.rand(1).item() < 0.5:
            x = x.flip(-1)
        return x, self.targets[i]

    def __repr__(self) -> str:
        return f"ImageArrayDataset({len(self)} images, {self.source})"


# ----------------------------------------------------------------------------- folders

def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _list_dir(folder: Path) -> tuple[list[str], list[str]]:
    """Sorted names of the image files and of the sub-folders of ``folder`` (one
    ``scandir``; plain string sorting, which is fast for tens of thousands of files)."""
    images, dirs = [], []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                dirs.append(e.name)
            elif e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(e.name)
    return sorted(images), sorted(dirs)


def scan_folder(folder) -> tuple[list[str], list[int], list[str]]:
    """The image files of ``folder`` (absolute paths), their labels and the class names.

    With class sub-folders (each holding images) the classes are the sorted sub-folder
    names and labels index them; a flat folder of images is one class (label 0) named
    after the folder. Files other than .png/.jpg/.jpeg and hidden entries are ignored.
    Raises ``ValueError`` for a missing or empty folder or for loose images beside class
    folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    names, subdirs = _list_dir(folder)
    base = os.path.abspath(folder)
    loose = [os.path.join(base, n) for n in names]
    class_files = {}
    for d in subdirs:
        imgs = _list_dir(folder / d)[0]
        if imgs:
            class_files[d] = [os.path.join(base, d, n) for n in imgs]
    if loose and class_files:
        raise ValueError(
            f"{folder} holds both loose images (e.g. {os.path.basename(loose[0])}) and class folders "
            f"({', '.join(class_files)}); use either class folders or a flat folder of images")
    if class_files:
        classes = sorted(class_files)
        files = [f for c in classes for f in class_files[c]]
        labels = [i for i, c in enumerate(classes) for _ in class_files[c]]
        return files, labels, classes
    if loose:
        return loose, [0] * len(loose), [folder.name]
    raise ValueError(
        f"{folder} holds no images: put .png/.jpg/.jpeg files in it, either directly or in "
        f"one sub-folder per class")


def _crop_resize(img, crop: int | None, image_size: int | None, name: str):
    """Centre crop to ``crop`` x ``crop`` (when given), then resize to
    ``image_size`` x ``image_size`` (bilinear with antialiasing, as torchvision's
    ``Resize`` on PIL images; a non-square image has its shorter side resized and is then
    centre-cropped square)."""
    from PIL import Image

    if crop is not None:
        w, h = img.size
        if w < crop or h < crop:
            raise ValueError(f"{name} is {w}x{h}, smaller than the centre crop {crop}")
        left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
        img = img.crop((left, top, left + crop, top + crop))
    if image_size is not None and img.size != (image_size, image_size):
        w, h = img.size
        s = image_size / min(w, h)
        nw, nh = max(image_size, int(round(w * s))), max(image_size, int(round(h * s)))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - image_size) // 2, (nh - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
    return img


def jpeg_quality(path) -> int | None:
    """The IJG quality factor of a JPEG file, estimated from its luminance quantisation
    table (``None`` for other files)."""
    from PIL import Image

    # IJG's standard luminance table (JPEG standard, Annex K), in natural order.
    std = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
           14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
    with Image.open(path) as img:
        q = getattr(img, "quantization", None)
        if img.format != "JPEG" or not q:
            return None
        table = list(q[0])
    scale = 100.0 * sum(table) / sum(std)
    quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
    return int(round(min(max(quality, 1), 100)))


def decode_images(files, crop: int | None = None, image_size: int | None = None,
                  progress: bool | None = None) -> np.ndarray:
    """Decode ``files`` into one ``uint8`` array ``(N, H, W, C)`` (C = 1 for grey, 3 for
    colour images), after an optional centre crop and resize. Raises ``ValueError``
    naming the file for an unreadable image, for grey and colour images mixed, and for
    images of different sizes when no ``image_size`` makes them equal. ``progress``: show a
    progress bar (default: for 1,000 files or more, which take seconds; CIFAR-10's 60,000
    JPEGs take 25-45 s on a 2-core machine)."""
    from PIL import Image, UnidentifiedImageError

    if not files:
        raise ValueError("no image files to decode")
    if progress is None:
        progress = len(files) >= 1000
    out, first_mode, first_size = None, None, None
    bar = progress_bar(files, enabled=progress, desc="decoding images", unit="img",
                       leave=False, mininterval=0.5)
    for i, f in enumerate(bar):
        try:
            with Image.open(f) as img:
                grey = img.mode in _GREY_MODES
                img = img.convert("L" if grey else "RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"cannot read the image file {f}: {err}") from err
        if first_mode is None:
            first_mode, first_name = grey, f
        elif grey != first_mode:
            g, c = (f, first_name) if grey else (first_name, f)
            raise ValueError(
                f"grey and colour images are mixed: {g} is grey, {c} is colour; a data set "
                f"must be all grey or all colour (convert the images first)")
        img = _crop_resize(img, crop, image_size, str(f))
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if out is None:
            first_size = arr.shape
            out = np.empty((len(files),) + arr.shape, dtype=np.uint8)
        elif arr.shape != first_size:
            raise ValueError(
                f"images have different sizes: {first_name} is {first_size[1]}x{first_size[0]}, "
                f"{f} is {arr.shape[1]}x{arr.shape[0]}; pass image_size (--image-size) to resize "
                f"them all (and optionally crop / --crop for a centre crop first)")
        out[i] = arr
    return out


def _cache_key(files, crop, image_size) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": _CACHE_VERSION, "crop": crop, "image_size": image_size}).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def load_folder_arrays(files, crop=None, image_size=None, cache_dir=None, tag: str = "folder"):
    """``decode_images(files, crop, image_size)``, read from / written to a ``.npy``
    cache in ``cache_dir`` when given. Returns ``(array, cache_path_or_None, hit)``."""
    if cache_dir is None:
        return decode_images(files, crop, image_size), None, False
    path = Path(cache_dir) / f"{tag}-{_cache_key(files, crop, image_size)}.npy"
    if path.exists():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.dtype == np.uint8 and arr.ndim == 4 and len(arr) == len(files):
                return arr, path, True
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    arr = decode_images(files, crop, image_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"could not write the image cache {path} ({err}); decoding again next time")
        return arr, None, False
    return arr, path, False


def folder_dataset(folder, crop=None, image_size=None, flip=False, cache_dir=None, name="folder",
                   what=None) -> ImageArrayDataset:
    """All images under ``folder`` (class folders or flat) as an :class:`ImageArrayDataset`.
    ``what`` replaces the start of ``.source`` (the default describes the folder)."""
    for k, v in (("crop", crop), ("image_size", image_size)):
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    files, labels, classes = scan_folder(folder)
    arr, cache, hit = load_folder_arrays(files, crop, image_size, cache_dir, tag=name)
    kinds = sorted({os.path.splitext(f)[1].lower().lstrip(".").replace("jpeg", "jpg") for f in files})
    flat = os.path.dirname(files[0]) == os.path.abspath(folder)
    layout = "flat folder" if flat else f"{len(classes)} class folders"
    if what is None:
        what = f"{name}: {len(files)} {'/'.join(k.upper() for k in kinds)} images ({layout})"
        if "jpg" in kinds:
            q = jpeg_quality(files[0])
            what += f", JPEG quality {q}" if q else ""
    size = f"{arr.shape[2]}x{arr.shape[1]}x{arr.shape[3]}"
    steps = (f"centre crop {crop}, " if crop else "") + (f"resized to {image_size}, " if image_size else "")
    source = f"{what} from folder {Path(folder).resolve()} ({steps}{size})"
    ds = ImageArrayDataset(arr, labels, classes, source, flip=flip, files=files)
    ds.cache = None if cache is None else f"{cache} ({'hit' if hit else 'written'})"
    return ds


# ----------------------------------------------------------------------------- entry point

def _default_cache_dir() -> Path:
    return data_root() / "cache"


def _cifar10_folder(root: Path, split: str) -> Path | None:
    for sub in CIFAR10_FOLDERS:
        d = root / sub / split
        if d.is_dir():
            return d
    return None


def _missing_cifar10(root: Path, err=None) -> FileNotFoundError:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.tar.gz"
    return FileNotFoundError(
        f"CIFAR-10 was not found under {root}" + (f" and could not be downloaded ({err})" if err else "") + ".\n"
        f"Provide it in one of these ways:\n"
        f"  - torchvision's format: {root}/cifar-10-batches-py/ (data_batch_1..5, test_batch, "
        f"batches.meta; unpack cifar-10-python.tar.gz there);\n"
        f"  - image files: {root}/cifar10-jpeg/train/<class>/*.png|jpg and "
        f"{root}/cifar10-jpeg/test/<class>/... (or under {root}/cifar10/); `python3 dev.py setup` "
        f"unpacks the offline JPEG copy {shared} there when it sits beside the checkout;\n"
        f"  - let torchvision download it (download=True, with network access), or set NCSN_EDU_DATA "
        f"to a folder holding one of the above.")


def _annotate(ds, source: str, channels: int, image_size: int):
    ds.source, ds.channels, ds.image_size = source, channels, image_size
    return ds


def _torchvision(name: str, root: Path, train: bool, flip: bool, download: bool):
    import torchvision
    from torchvision import transforms

    tf = transforms.Compose(([transforms.RandomHorizontalFlip()] if flip else []) + [transforms.ToTensor()])
    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10,
           "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    return cls(str(root), train=train, download=download, transform=tf)


def image_dataset(name: str, train: bool = True, root=None, flip: bool = False, download: bool = True,
                  image_size: int | None = None, crop: int | None = None, *, cache_dir=None):
    """Data set ``name`` yielding ``(x, label)`` with ``x`` float in ``[0, 1]``, ``(C, H, W)``.

    name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"folder"``.
    root: the data root (default :func:`ncsn_edu.resources.data_root`); for ``"folder"``
        the image folder itself (required). A folder holding ``train/`` and ``test/``
        sub-folders is split by ``train``; any other folder is one split used for both.
    flip: random horizontal flips (the paper uses them for CIFAR-10 and CelebA, not MNIST).
    download: let torchvision download a data set that is not found.
    image_size, crop: optional centre crop to ``crop`` pixels, then resize to
        ``image_size`` (the paper's CelebA: crop 140, resize 32).
    cache_dir: where decoded folders are cached (default ``<data root>/cache``; ``False``
        for none).

    The result has ``.source``, ``.channels``, ``.image_size``, ``.data`` and ``.targets``.
    """
    name = name.lower().replace("-", "_")
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    split = "train" if train else "test"
    if cache_dir is None:
        cache_dir = _default_cache_dir()
    elif cache_dir is False:
        cache_dir = None

    if name == "folder":
        if root is None:
            raise ValueError("the 'folder' data set needs root (--data-root): the folder of images")
        folder = Path(root).expanduser()
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return folder_dataset(folder / split, crop, image_size, flip, cache_dir, name=f"folder-{split}")
        ds = folder_dataset(folder, crop, image_size, flip, cache_dir, name="folder")
        ds.source += "" if train else " (no train/test split: the test split is the same images)"
        return ds

    root = Path(root).expanduser() if root is not None else data_root()
    native = 32 if name == "cifar10" else 28
    if name == "cifar10" and not (root / "cifar-10-batches-py").is_dir():
        folder = _cifar10_folder(root, split)
        if folder is not None:
            q = None
            first = next((p for p in sorted((folder / CIFAR10_CLASSES[0]).glob("*")) if _is_image(p)), None)
            if first is not None:
                q = jpeg_quality(first)
            what = (f"cifar10: JPEG re-encoding (quality {q}) of CIFAR-10, not the original pixels,"
                    if q else "cifar10: CIFAR-10 as image files")
            ds = folder_dataset(folder, crop, image_size, flip, cache_dir, name=f"cifar10-{split}", what=what)
            if ds.classes != list(CIFAR10_CLASSES):
                raise ValueError(f"{folder} has class folders {ds.classes}, not CIFAR-10's {list(CIFAR10_CLASSES)}")
            return ds
        if not download:
            raise _missing_cifar10(root)
    label = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}[name]
    folder_name = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}[name]
    try:
        ds = _torchvision(name, root, train, flip, download)
    except (RuntimeError, OSError) as err:
        if download and _network_failure(err):
            raise DatasetDownloadError(
                f"{label} is not under {root}, and torchvision could not download it: the network "
                f"failed ({' '.join(str(err).split())}).\n"
                f"Connect to the network and run again (torchvision downloads it into {root}), or "
                f"put a copy there in torchvision's layout ({root}/{folder_name}/), or set "
                f"NCSN_EDU_DATA to a folder that holds one.") from err
        if name == "cifar10":
            raise _missing_cifar10(root, err) from err
        why = ("download=False, so torchvision did not try to download it" if not download
               else "torchvision could not read what is there")
        raise FileNotFoundError(
            f"could not load {label} from {root} ({why}): {err}\n"
            f"Put the data set's files under {root} in torchvision's layout ({root}/{folder_name}/raw/), "
            f"set NCSN_EDU_DATA to a folder that holds them"
            + (", or pass download=True (the default) to let torchvision download them." if not download
               else ", or delete the damaged files so torchvision downloads them again.")
        ) from err
    source = f"{name}: original torchvision {label} ({folder_name}) at {root.resolve()}"
    if crop is None and image_size in (None, native):
        return _annotate(ds, source, 3 if name == "cifar10" else 1, native)
    # Crop / resize a torchvision set: apply the folder pipeline to its images.
    from PIL import Image

    raw = np.asarray(ds.data)
    arr = np.stack([np.asarray(_crop_resize(Image.fromarray(im), crop, image_size, f"{name} image"))
                    for im in raw])
    if arr.ndim == 3:
        arr = arr[..., None]
    steps = (f"centre crop {crop}, " if crop else "") + (f"resized to {image_size}" if image_size else "")
    return ImageArrayDataset(arr, list(map(int, ds.targets)), ds.classes, f"{source} ({steps.rstrip(', ')})", flip)
