"""Bad input through `snakemake` itself: the user-facing message names the file or key and the
fix, and no partial result is left. (The config typo / wrong type / negative lr / batch 0 / val
fraction 1.0 / unknown encoder cases are
tests/test_workflow.py::test_a_bad_config_fails_naming_the_key;
the Python-level messages are in tests/test_dataset.py, test_models.py, test_split.py,
test_class_weights.py.)"""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, snakemake_command
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX

CACHE_FILES = ("images.npy", "masks.npy", "index.csv")


def snakemake(
    workdir: Path, override: str, *targets: str, dry_run: bool = False
) -> subprocess.CompletedProcess:
    (workdir / "case.yaml").write_text(override)
    command = snakemake_command(
        *(["-n"] if dry_run else []),
        *targets,
        workdir=workdir,
        cores=1,
        configs=(workdir / "case.yaml",),
    )
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def write_pair(
    root: Path, stem: str, size: tuple[int, int] = (64, 48), mask: np.ndarray | None = None
) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(root / "images" / f"{stem}.png")
    if mask is None:
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 2] = 3
        mask[-2:] = IGNORE_INDEX
    Image.fromarray(mask).save(root / "annotations" / f"{stem}.png")


def good_dataset(root: Path) -> Path:
    for stem in ("a", "a_aug1", "b", "c"):
        write_pair(root, stem)
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def upside_down_jpeg(root: Path) -> None:
    """b.png replaced by a JPEG tagged "rotated 180°": its mask fits both ways, auto cannot tell."""
    (root / "images" / "b.png").unlink()
    image = Image.fromarray(np.full((48, 64, 3), 120, np.uint8))
    exif = image.getexif()
    exif[0x0112] = 3
    image.save(root / "images" / "b.jpg", exif=exif)


def multipage_preview_first(root: Path) -> None:
    """c.png replaced by a TIFF whose first page is a small preview of the scan on page 2."""
    (root / "images" / "c.png").unlink()
    Image.fromarray(np.full((12, 16, 3), 120, np.uint8)).save(
        root / "images" / "c.tif",
        save_all=True,
        append_images=[Image.fromarray(np.full((48, 64, 3), 120, np.uint8))],
    )


def rgb_mask_with_unknown_colour(root: Path) -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:5, :5] = (1, 2, 3)
    Image.fromarray(rgb).save(root / "annotations" / "b.png")


# case → (how to break a good dataset, what the message must contain)
DATASET_CASES = {
    "empty dataset": (
        lambda r: [p.unlink() for p in (r / "images").iterdir()],
        ["no images", "images"],
    ),
    "truncated image PNG": (
        lambda r: truncate(r / "images" / "b.png"),
        ["images/b.png", "corrupt or truncated"],
    ),
    "truncated mask PNG": (
        lambda r: truncate(r / "annotations" / "c.png"),
        ["annotations/c.png", "corrupt or truncated"],
    ),
    "image without mask": (
        lambda r: (r / "annotations" / "b.png").unlink(),
        ["without a mask", "'b'", "add the missing files"],
    ),
    "mask without image": (
        lambda r: (r / "images" / "c.png").unlink(),
        ["without an image", "'c'", "add the missing files"],
    ),
    "image and mask sizes differ": (
        lambda r: (
            write_pair(r, "b", size=(64, 48))
            or Image.fromarray(np.zeros((40, 64), np.uint8)).save(r / "annotations" / "b.png")
        ),
        ["images/b.png", "annotations/b.png", "same size"],
    ),
    "mask value outside 0-15/255": (
        lambda r: write_pair(r, "c", mask=np.full((48, 64), 20, np.uint8)),
        ["annotations/c.png", "[20]", "remap"],
    ),
    "RGB mask colour not in palette": (
        rgb_mask_with_unknown_colour,
        ["annotations/b.png", "#010203", "palette"],
    ),
    "EXIF orientation the mask cannot decide": (
        upside_down_jpeg,
        ["images/b.jpg", "EXIF orientation 3", "set prepare.exif_orientation to apply"],
    ),
    "multi-page TIFF with a preview first": (
        multipage_preview_first,
        ["images/c.tif", "page 2", "save the scan as a single-page file"],
    ),
}


@pytest.mark.slow  # a real prepare_cache job each
@pytest.mark.parametrize("case", DATASET_CASES)
def test_a_broken_dataset_folder_stops_the_cache_naming_the_file(tmp_path, case):
    break_it, expected = DATASET_CASES[case]
    data = good_dataset(tmp_path / "data")
    break_it(data)
    result = snakemake(tmp_path, f"dataset: {{path: {data}}}\n", "results/cache/index.csv")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ERROR: DatasetError:" in output, output[-3000:]  # our message, not a bare traceback
    for text in expected:
        assert text in output, (text, output[-3000:])
    leftovers = (
        list((tmp_path / "results/cache").iterdir())
        if (tmp_path / "results/cache").exists()
        else []
    )
    assert not leftovers


@pytest.mark.slow
def test_a_split_with_an_empty_side_is_refused_naming_the_fix(tmp_path):
    data = tmp_path / "data"
    for stem in ("a", "a_aug1", "a_aug2"):  # a single artwork: one side would be empty
        write_pair(data, stem)
    result = snakemake(tmp_path, f"dataset: {{path: {data}}}\n", "results/split.json")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "ERROR: SplitError:" in output, output[-3000:]
    assert (
        "1 artwork group(s)" in output
        and "add images or check the metadata's group column" in output
    )
    assert not (tmp_path / "results/split.json").exists()


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "dataset: {path: /nonexistent/heritage}\n",
            ["dataset.path", "/nonexistent/heritage", "does not exist", "set it to"],
        ),
        (
            "dataset: {path: DATA, images_dir: scans}\n",
            ["dataset.images_dir", "scans", "fix dataset.images_dir"],
        ),
        (
            "encoders: {convnext_tiny: {batch_size: 4, weights: /nonexistent/w.pth}}\n",
            ["encoders.convnext_tiny.weights", "/nonexistent/w.pth", "null (random init)"],
        ),
        (
            "prepare: {image_size: 100}\n",
            ["100 is not a multiple of 32", "image_size"],
        ),  # MaxViT's windows (all encoders': stride 32)
        ("prepare: {image_size: 32}\n", ["32 is less than the minimum of 64", "image_size"]),
        (
            "class_weights: {method: median}\n",
            ["'median' is not one of", "median_frequency", "method"],
        ),
        ("training: {retries: -1}\n", ["-1 is less than the minimum of 0", "retries"]),
        ("prepare: {view: tiles}\n", ["'tiles' is not one of ['resize', 'crops']", "view"]),
        (
            "prepare: {view: crops, crop_scale: 0}\n",
            ["0 is less than or equal to the minimum of 0", "crop_scale"],
        ),
        (
            "prepare: {exif_orientation: rotate}\n",
            ["'rotate' is not one of ['auto', 'apply', 'ignore']", "exif_orientation"],
        ),
        (
            "predict: {iiif_base_url: 'ftp://example.org/iiif/'}\n",
            ["'ftp://example.org/iiif/' does not match", "iiif_base_url"],
        ),
    ],
)
def test_a_bad_config_value_fails_before_any_job_naming_the_key(tmp_path, override, expected):
    data = good_dataset(tmp_path / "data")
    result = snakemake(tmp_path, override.replace("DATA", str(data)), "all", dry_run=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for text in expected:
        assert text in output, (text, output[-3000:])
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_weights_of_another_encoder_stop_training_naming_the_file(tmp_path):
    data = good_dataset(tmp_path / "data")
    weights = tmp_path / "resnet.pth"
    torch.save(
        {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, weights
    )
    override = f"dataset: {{path: {data}}}\nencoders: {{convnext_tiny: {{batch_size: 2, weights: {weights}}}}}\n"
    result = snakemake(tmp_path, override, "results/convnext_tiny/model_best.pt")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "ERROR: ModelConfigError:" in output, output[-3000:]
    assert (
        str(weights) in output
        and "does not match encoder convnext_tiny" in output
        and "use weights" in output
    )
    assert (
        not list((tmp_path / "results/convnext_tiny").glob("*"))
        if (tmp_path / "results/convnext_tiny").exists()
        else True
    )
