"""Fine-tuning datasets: profile sets, image folders with metadata, and the checks."""

import numpy as np
import pytest
from PIL import Image

from robust_edit.finetune.data import ImageCaptions, check, load
from robust_edit.world import vocab as V

RED, BLUE, GREEN = (220, 30, 30), (30, 60, 220), (30, 160, 50)


def test_world_style_images_captions_and_a_content_hash():
    data = load("world:style", 32)
    n = len(data)
    assert n > 0 and data.images.shape == (n, 32, 32, 3) and data.images.dtype == np.uint8
    assert len(data.captions) == n and data.dataset_id == "world:style"
    assert data.class_prompt is None and len(data.content_hash) == 24
    assert load("world:style", 32).content_hash == data.content_hash  # deterministic
    changed = data.images.copy()
    changed[n - 1, 5, 7, 1] ^= 1
    assert ImageCaptions(changed, data.captions, "x").content_hash != data.content_hash
    recaptioned = [*data.captions[:-1], data.captions[-1] + "!"]
    assert ImageCaptions(data.images, recaptioned, "x").content_hash != data.content_hash


def test_world_dreambooth_subject_carries_its_class_prompt():
    data = load("world:dreambooth:ring", 32)
    assert data.class_prompt == f"a {V.SUBJECTS['ring']['class_noun']}" == "a circle"
    assert len(data) > 0 and all(V.SUBJECT_TOKEN in c for c in data.captions)
    assert data.content_hash != load("world:dreambooth:checker", 32).content_hash


def test_wrong_resolution_is_refused_naming_both_sizes():
    with pytest.raises(ValueError) as err:
        load("world:style", 64)
    assert "32 px" in str(err.value) and "64 px" in str(err.value)


def _banded(size: tuple[int, int], wide: bool) -> Image.Image:
    """Red centre square of the short side, blue beyond it along the long side."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = BLUE
    short = min(w, h)
    if wide:
        img[:, (w - short) // 2:(w + short) // 2] = RED
    else:
        img[(h - short) // 2:(h + short) // 2] = RED
    return Image.fromarray(img)


def test_image_folder_is_centre_cropped_and_resized(tmp_path):
    _banded((64, 32), wide=True).save(tmp_path / "wide.png")
    _banded((32, 96), wide=False).save(tmp_path / "tall.png")
    Image.new("L", (64, 64), 90).save(tmp_path / "grey.png")  # grey, larger: resized
    (tmp_path / "metadata.csv").write_text(
        "file_name,text\nwide.png,a wide one\ntall.png,a tall one\ngrey.png,a grey one\n")
    data = load(str(tmp_path), 32)
    assert data.images.shape == (3, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.captions == ["a wide one", "a tall one", "a grey one"]
    assert data.dataset_id == str(tmp_path) and data.class_prompt is None
    assert (data.images[0] == RED).all() and (data.images[1] == RED).all()
    assert (data.images[2] == 90).all()


def test_folder_resize_keeps_the_centre(tmp_path):
    _banded((96, 48), wide=True).save(tmp_path / "a.png")  # 96x48 -> 64x32 -> centre 32x32
    (tmp_path / "metadata.csv").write_text("file_name,caption\na.png,banded\n")
    data = load(str(tmp_path), 32)
    assert data.captions == ["banded"]
    centre = data.images[0, :, 2:-2].reshape(-1, 3).astype(int)
    assert np.abs(centre - RED).max() <= 8  # the blue bands are cropped away


def test_folder_without_metadata_names_the_fix(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    with pytest.raises(ValueError) as err:
        load(str(tmp_path), 32)
    assert "metadata.csv" in str(err.value) and str(tmp_path) in str(err.value)
    (tmp_path / "metadata.csv").write_text("file_name,label\na.png,x\n")
    with pytest.raises(ValueError, match="file_name column and one of"):
        load(str(tmp_path), 32)


def test_check_refuses_a_missing_folder_in_one_line_naming_the_field(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(ValueError) as err:
        check(missing, "finetunes[0].dataset")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("finetunes[0].dataset") and repr(missing) in msg
    with pytest.raises(ValueError, match=r"^finetunes\[1\].dataset 'world:nope'"):
        check("world:nope", "finetunes[1].dataset")
    (tmp_path / "metadata.csv").write_text("file_name,text\na.png,a red circle\n")
    with pytest.raises(ValueError, match=r"^finetunes\[2\].dataset .*not in the folder, e.g. a.png"):
        check(str(tmp_path), "finetunes[2].dataset")
    (tmp_path / "a.png").write_bytes(b"")  # named, present: the images are read later
    for ok in ("world:style", "world:dreambooth:ring", str(tmp_path)):
        check(ok, "dataset")  # raises nothing
