"""ncsn_edu.images.data: CIFAR-10 from its torchvision format or an image folder, any image folder,
the decoded-image cache and the messages for bad input, and ``flip=True`` mirroring half the images."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_cifar import trust_fake_cifar10, write_fake_cifar10
from image_train_helpers import write_idx
from PIL import Image

from ncsn_edu.images.data import CIFAR10_CLASSES, DatasetDownloadError, image_dataset, jpeg_quality
from ncsn_edu.resources import data_root

SHARED_ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.tar.gz"


def _write(path: Path, arr: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(path, **kw)


def _images(rng, n, h=8, w=8, c=3):
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)


# ----------------------------------------------------------------------------- the offline copy

def test_offline_cifar10_jpeg_copy_gives_50000_and_10000_and_says_so():
    root = data_root()
    if not (root / "cifar10-jpeg" / "train").is_dir():
        if not SHARED_ARCHIVE.is_file():
            pytest.skip(
                "the offline CIFAR-10 copy is absent: put ../shared/data/cifar10-jpeg/cifar10_jpeg.tar.gz "
                "beside the checkout and run `python3 dev.py setup` (it unpacks into data/cifar10-jpeg/), "
                "or unpack train/<class>/*.jpg and test/<class>/*.jpg there yourself")
        pytest.skip(f"{SHARED_ARCHIVE} is there but not unpacked: run `python3 dev.py setup`")
    if (root / "cifar-10-batches-py").is_dir():
        pytest.skip("torchvision's CIFAR-10 is in the data root and takes precedence over the JPEG copy")
    train = image_dataset("cifar10", train=True, download=False)
    test = image_dataset("cifar10", train=False, download=False)
    assert (len(train), len(test)) == (50000, 10000)
    for ds in (train, test):
        assert "JPEG re-encoding (quality 75)" in ds.source and "cifar10-jpeg" in ds.source
        assert "original" not in ds.source.replace("not the original", "")
        assert (ds.channels, ds.image_size, ds.data.shape[1:]) == (3, 32, (32, 32, 3))
        assert ds.classes == list(CIFAR10_CLASSES)
    # 5,000 / 1,000 images per class, each class's label its index in CIFAR-10's order
    assert np.bincount(train.targets).tolist() == [5000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    i = train.targets.index(3)
    assert "/cat/" in train.files[i]
    x, y = train[i]
    assert y == 3 and x.shape == (3, 32, 32) and x.dtype == torch.float32
    ref = np.array(Image.open(train.files[i]).convert("RGB"))
    assert torch.equal(x, torch.from_numpy(ref).permute(2, 0, 1).float() / 255)


# ----------------------------------------------------------------------------- CIFAR-10 sources

def test_cifar10_torchvision_format_wins_over_a_folder(tmp_path, monkeypatch):
    md5s = write_fake_cifar10(tmp_path, n_per_batch=4, n_test=3)
    trust_fake_cifar10(monkeypatch, md5s)
    _write(tmp_path / "cifar10-jpeg" / "train" / "airplane" / "0.png", _images(np.random.default_rng(0), 1)[0])
    ds = image_dataset("cifar10", root=tmp_path, download=False, cache_dir=False)
    assert len(ds) == 20 and ds.source.startswith("cifar10: original torchvision CIFAR-10 (cifar-10-batches-py)")
    assert (ds.channels, ds.image_size) == (3, 32)
    assert len(image_dataset("cifar10", train=False, root=tmp_path, download=False, cache_dir=False)) == 3


def test_cifar10_from_class_folders_labels_and_pixels(tmp_path):
    rng = np.random.default_rng(1)
    imgs = {}
    for split, n in (("train", 2), ("test", 1)):
        for c in reversed(CIFAR10_CLASSES):  # creation order must not matter
            for k in range(n):
                a = _images(rng, 1, 32, 32)[0]
                imgs[(split, c, k)] = a
                _write(tmp_path / "cifar10" / split / c / f"{k:04d}.png", a)
    ds = image_dataset("cifar10", root=tmp_path, download=False, cache_dir=False)
    assert len(ds) == 20 and ds.classes == list(CIFAR10_CLASSES)
    assert "CIFAR-10 as image files" in ds.source and "JPEG" not in ds.source
    for i, (f, y) in enumerate(zip(ds.files, ds.targets)):
        c, k = Path(f).parent.name, int(Path(f).stem)
        assert CIFAR10_CLASSES[y] == c
        x, y2 = ds[i]
        assert y2 == y
        assert torch.equal(x, torch.from_numpy(imgs[("train", c, k)]).permute(2, 0, 1).float() / 255)
    assert len(image_dataset("cifar10", train=False, root=tmp_path, download=False, cache_dir=False)) == 10


def test_cifar10_missing_says_where_to_put_which_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        image_dataset("cifar10", root=tmp_path, download=False, cache_dir=False)
    msg = str(e.value)
    for needle in ("cifar-10-batches-py", "cifar10-jpeg/train/<class>", "dev.py setup", "NCSN_EDU_DATA"):
        assert needle in msg


# ----------------------------------------------------------------------------- missing data sets


@pytest.fixture
def offline(monkeypatch):
    """No network, as on CI or a machine without one: every name lookup and connection fails
    the way it does there (torchvision really tries; it is the socket layer that refuses)."""
    import socket

    def refuse(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (offline for this test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_offline_empty_root_is_a_network_error_not_a_missing_file(tmp_path, offline, name):
    # download=True (the default, as every chapter calls it): torchvision tries the download, and the
    # error names the network as the cause; it is a ConnectionError, never a FileNotFoundError
    with pytest.raises(DatasetDownloadError) as e:
        image_dataset(name, train=True, root=tmp_path, cache_dir=False)
    assert isinstance(e.value, ConnectionError) and not isinstance(e.value, FileNotFoundError)
    msg = str(e.value)
    assert "could not download" in msg and "network" in msg and str(tmp_path) in msg
    assert "Name or service not known" in msg  # the underlying cause, not swallowed


def test_download_false_on_an_empty_root_says_that_download_was_off(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        image_dataset("mnist", train=True, root=tmp_path, download=False, cache_dir=False)
    assert not isinstance(e.value, ConnectionError)
    msg = str(e.value)
    assert "download=False" in msg and "MNIST/raw" in msg and "network" not in msg


def test_jpeg_quality_is_read_from_the_file(tmp_path):
    a = _images(np.random.default_rng(2), 1, 16, 16)[0]
    for q in (50, 75, 90):
        _write(tmp_path / f"q{q}.jpg", a, quality=q)
        assert jpeg_quality(tmp_path / f"q{q}.jpg") == q
    _write(tmp_path / "a.png", a)
    assert jpeg_quality(tmp_path / "a.png") is None


# ----------------------------------------------------------------------------- any folder

def test_flat_folder_round_trips_png_and_flip_mirrors(tmp_path):
    rng = np.random.default_rng(3)
    a = _images(rng, 5, 6, 6)
    for i, im in enumerate(a):
        _write(tmp_path / "imgs" / f"im{i}.png", im)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    ds = image_dataset("folder", root=tmp_path / "imgs", cache_dir=False)
    assert len(ds) == 5 and set(ds.targets) == {0} and "flat folder" in ds.source
    assert np.array_equal(ds.data, a)
    x, _ = ds[2]
    assert torch.equal(x, torch.from_numpy(a[2]).permute(2, 0, 1).float() / 255)
    flipped = image_dataset("folder", root=tmp_path / "imgs", flip=True, cache_dir=False)
    torch.manual_seed(0)
    seen = {torch.equal(flipped[2][0], x.flip(-1)) for _ in range(40)}
    assert seen == {True, False}  # mirrored about half the time, unchanged otherwise


def test_class_folders_labels_and_grey_images(tmp_path):
    rng = np.random.default_rng(4)
    for c, n in (("zebra", 2), ("ant", 3), ("moth", 1)):
        for k in range(n):
            _write(tmp_path / c / f"{k}.png", _images(rng, 1, 5, 5, 1)[0])
    ds = image_dataset("folder", root=tmp_path, cache_dir=False)
    assert ds.classes == ["ant", "moth", "zebra"] and ds.channels == 1
    assert ds.targets == [0, 0, 0, 1, 2, 2]
    for f, y in zip(ds.files, ds.targets):
        assert Path(f).parent.name == ds.classes[y]
    x, _ = ds[0]
    assert x.shape == (1, 5, 5)
    assert torch.equal(x[0], torch.from_numpy(np.array(Image.open(ds.files[0]))).float() / 255)


def test_folder_with_train_and_test_is_split(tmp_path):
    rng = np.random.default_rng(5)
    for split, n in (("train", 3), ("test", 2)):
        for k in range(n):
            _write(tmp_path / split / "a" / f"{k}.png", _images(rng, 1)[0])
    assert len(image_dataset("folder", root=tmp_path, cache_dir=False)) == 3
    assert len(image_dataset("folder", root=tmp_path, train=False, cache_dir=False)) == 2


def test_centre_crop_then_resize(tmp_path):
    # A 20x12 image: a 4x4 block of 200 in the centre on 0; crop 4 keeps only the block.
    a = np.zeros((12, 20, 3), np.uint8)
    a[4:8, 8:12] = 200
    a[0, 0] = 255
    _write(tmp_path / "x.png", a)
    ds = image_dataset("folder", root=tmp_path, crop=4, image_size=2, cache_dir=False)
    assert ds.data.shape == (1, 2, 2, 3) and ds.image_size == 2
    assert (ds.data == 200).all()
    assert "centre crop 4" in ds.source and "resized to 2" in ds.source
    # resize alone of a non-square image: shorter side to 6, then centre-cropped square
    ds = image_dataset("folder", root=tmp_path, image_size=6, cache_dir=False)
    assert ds.data.shape == (1, 6, 6, 3)
    big = np.full((8, 8, 3), 100, np.uint8)
    _write(tmp_path / "y" / "big.png", big)
    ds = image_dataset("folder", root=tmp_path / "y", image_size=4, cache_dir=False)
    assert (ds.data == 100).all()  # resizing a constant image keeps it constant


@pytest.mark.parametrize(
    "case", ["empty", "unreadable", "mixed_sizes", "grey_and_colour", "loose_and_classes", "crop_too_big"]
)
def test_bad_folders_get_a_clear_error_before_anything_is_written(tmp_path, case):
    rng = np.random.default_rng(6)
    d = tmp_path / "imgs"
    d.mkdir()
    if case == "empty":
        (d / "readme.txt").write_text("no images here")
        (d / "empty_class").mkdir()
        needle = "holds no images"
    elif case == "unreadable":
        _write(d / "good.png", _images(rng, 1)[0])
        (d / "broken.jpg").write_bytes(b"this is not a JPEG")
        needle = "broken.jpg"
    elif case == "mixed_sizes":
        _write(d / "a.png", _images(rng, 1, 8, 8)[0])
        _write(d / "b.png", _images(rng, 1, 9, 8)[0])
        needle = "different sizes"
    elif case == "grey_and_colour":
        _write(d / "a.png", _images(rng, 1, 8, 8, 1)[0])
        _write(d / "b.png", _images(rng, 1, 8, 8, 3)[0])
        needle = "grey and colour"
    elif case == "loose_and_classes":
        _write(d / "a.png", _images(rng, 1)[0])
        _write(d / "cls" / "b.png", _images(rng, 1)[0])
        needle = "both loose images"
    else:
        _write(d / "a.png", _images(rng, 1, 8, 8)[0])
        needle = "smaller than the centre crop"
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=needle):
        image_dataset("folder", root=d, crop=10 if case == "crop_too_big" else None, cache_dir=cache)
    assert not cache.exists()
    # resizing makes mixed sizes acceptable
    if case == "mixed_sizes":
        assert image_dataset("folder", root=d, image_size=8, cache_dir=cache).data.shape == (2, 8, 8, 3)


def test_folder_needs_a_root():
    with pytest.raises(ValueError, match="needs root"):
        image_dataset("folder")


# ----------------------------------------------------------------------------- the cache

def test_cache_hit_returns_identical_arrays_and_changes_invalidate_it(tmp_path):
    rng = np.random.default_rng(7)
    d = tmp_path / "imgs"
    for c in ("a", "b"):
        for k in range(3):
            _write(d / c / f"{k}.jpg", _images(rng, 1, 8, 8)[0], quality=90)
    cache = tmp_path / "cache"
    first = image_dataset("folder", root=d, cache_dir=cache)
    assert first.cache.endswith("(written)") and len(list(cache.glob("*.npy"))) == 1
    second = image_dataset("folder", root=d, cache_dir=cache)
    assert second.cache.endswith("(hit)") and second.source == first.source
    assert np.array_equal(first.data, second.data) and first.targets == second.targets
    # the cached array really is what is served: a planted change shows through
    f = next(cache.glob("*.npy"))
    arr = np.load(f)
    arr[0, 0, 0, 0] ^= 0xFF
    np.save(f, arr)
    assert image_dataset("folder", root=d, cache_dir=cache).data[0, 0, 0, 0] == arr[0, 0, 0, 0]
    # different settings or a changed folder get a new cache entry
    assert image_dataset("folder", root=d, image_size=4, cache_dir=cache).cache.endswith("(written)")
    _write(d / "b" / "9.jpg", _images(rng, 1, 8, 8)[0], quality=90)
    third = image_dataset("folder", root=d, cache_dir=cache)
    assert third.cache.endswith("(written)") and len(third) == 7


def test_read_only_cache_falls_back_to_decoding(tmp_path):
    d = tmp_path / "imgs"
    _write(d / "a.png", _images(np.random.default_rng(8), 1)[0])
    blocker = tmp_path / "file_not_folder"
    blocker.write_text("x")  # a cache "folder" that cannot be created
    with pytest.warns(UserWarning, match="could not write the image cache"):
        ds = image_dataset("folder", root=d, cache_dir=blocker / "cache")
    assert len(ds) == 1 and ds.cache is None


def test_image_dataset_flip_mirrors_half_the_images(tmp_path):
    # Catches: flips that never or always happen, happen with another probability, or are
    # not left-right mirrors. 2,000 draws: the count of flips is Binomial(2000, 1/2),
    # standard deviation sqrt(2000)/2 = 22; the test allows 4 of them (so it catches a
    # probability off by 0.1 or more with 5 standard deviations to spare).
    img = np.zeros((28, 28), dtype=np.uint8)
    img[:, :7] = 200  # bright on the left only
    img[3, 2] = 17  # and asymmetric up-down
    root = tmp_path / "data"
    write_idx(root, "MNIST", img[None].repeat(2, 0), img[None])
    ds = image_dataset("mnist", train=True, root=root, flip=True, download=False)
    plain = torch.from_numpy(img).float()[None] / 255
    n, flipped = 2000, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for i in range(n):
            x, _ = ds[i % 2]
            if torch.equal(x, plain.flip(-1)):
                flipped += 1
            else:
                assert torch.equal(x, plain)
    assert abs(flipped - n / 2) < 4 * math.sqrt(n) / 2, flipped
    ds = image_dataset("mnist", train=True, root=root, flip=False, download=False)
    assert all(torch.equal(ds[i % 2][0], plain) for i in range(50))


# ----------------------------------------------------------------------------- decoding progress

def test_decoding_many_files_shows_progress_and_few_files_stay_quiet(tmp_path, monkeypatch, capsys):
    """CIFAR-10's first read decodes 60,000 JPEGs (25-45 s on 2 cores): a bar shows it is
    working. Decoding a handful stays silent unless asked, and static mode (the book build)
    switches the bar off. The decoded pixels are the files' pixels either way."""
    from ncsn_edu.images.data import decode_images
    from ncsn_edu.progress import STATIC_ENV

    monkeypatch.delenv(STATIC_ENV, raising=False)
    rng = np.random.default_rng(0)
    arr = _images(rng, 3)
    files = []
    for i, a in enumerate(arr):
        _write(tmp_path / f"{i}.png", a)
        files.append(tmp_path / f"{i}.png")
    assert np.array_equal(decode_images(files), arr)
    assert "decoding images" not in capsys.readouterr().err
    assert np.array_equal(decode_images(files, progress=True), arr)
    assert "decoding images" in capsys.readouterr().err
    monkeypatch.setenv(STATIC_ENV, "1")
    decode_images(files, progress=True)
    assert "decoding images" not in capsys.readouterr().err
