"""predict's progress: a bar with an ETA in an interactive terminal, plain log lines in a log."""

import fcntl
import os
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
from _checkpoints import save_random_checkpoint
from PIL import Image

from heritage_damage_seg.model.scan_view import ModelView


@pytest.fixture(scope="module")
def command(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("progress")
    (root / "scans").mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (200, 150)), ("b.png", (90, 64))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            root / "scans" / name
        )
    view = ModelView("crops", 64, 1.0).record()  # tile rows to move the bar within a scan
    checkpoint = save_random_checkpoint(root / "model.pt", scan_view=view)
    return [sys.executable, "-m", "heritage_damage_seg.cli", "predict", str(root / "scans"),
            "-o", str(root / "out"), "--checkpoint", str(checkpoint), "--device", "cpu"]  # fmt: skip


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_gets_a_bar_with_eta_and_the_log_lines_above_it(command):
    leader, follower = os.openpty()
    # A terminal of 120 columns (a new pseudo-terminal reports 0, where tqdm draws nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    output = read_all(leader)
    os.close(leader)
    assert process.wait(timeout=300) == 0, output[-3000:]
    assert (
        "MP [" in output and "<" in output and "%|" in output
    )  # tqdm's bar: percent, MP, elapsed<remaining
    assert "100%|" in output
    assert "[2/2] b.png" in output  # the log lines still come, above the bar


@pytest.mark.slow
def test_a_log_file_gets_lines_and_no_bar(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%|" not in result.stderr and "\r" not in result.stderr
    assert "ETA" in result.stderr and "[2/2] b.png" in result.stderr


def test_without_a_readable_header_the_bar_counts_scans(tmp_path, capsys):
    from heritage_damage_seg.inference.progress import RunProgress

    (tmp_path / "broken.png").write_bytes(b"\x89PNG truncated")
    with RunProgress([tmp_path / "broken.png"], interactive=True) as progress:
        with progress.scan(0, "broken.png") as tile_rows:
            tile_rows(1, 2)
    assert "1.0/1.0 scans" in capsys.readouterr().err
