"""Spectrogram figures: right panels, shared scale, written PNGs, no global matplotlib state."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from audiosr.evaluation.plots import (
    PANEL_DPI,
    PANEL_INCHES,
    comparison_figure,
    comparison_grid,
    spectrogram_figure,
    spectrogram_panels,
    write_png,
)

RATE = 44100
CUTOFF = 11025.0


def chirp(n: int = RATE // 4, top_hz: float = 20000.0, seed: int = 0) -> np.ndarray:
    """A linear chirp 0 -> ``top_hz`` plus a little noise: ``(1, n)`` float32."""
    t = np.arange(n) / RATE
    x = 0.5 * np.sin(np.pi * top_hz * t**2 / t[-1]) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    return x[None].astype(np.float32)


def lowpassed(x: np.ndarray, cutoff_hz: float = CUTOFF) -> np.ndarray:
    spectrum = np.fft.rfft(x, axis=-1)
    spectrum[..., np.fft.rfftfreq(x.shape[-1], 1 / RATE) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, x.shape[-1], axis=-1).astype(np.float32)


def item(seed: int = 0) -> dict[str, np.ndarray]:
    target = chirp(seed=seed)
    return {"input": lowpassed(target), "output": 0.9 * target, "target": target}


def test_spectrogram_figure_has_one_panel_per_signal_on_a_shared_scale():
    signals = {**item(), "error": item()["output"] - item()["target"]}
    fig = spectrogram_figure(signals, RATE, title="p360_001", cutoff_hz=CUTOFF)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4 and len(fig.axes) == 5  # + one colour bar
    assert [ax.get_title() for ax in panels] == list(signals)
    assert fig.get_suptitle() == "p360_001"
    images = [np.asarray(ax.images[0].get_array()) for ax in panels]
    for image in images:
        assert image.shape == (1025, 1 + RATE // 4 // 512)
    # Different signals, different pictures: the low-passed input is dark above the cutoff.
    for a in range(4):
        for b in range(a + 1, 4):
            assert not np.allclose(images[a], images[b])
    assert images[0][600:].mean() < images[2][600:].mean() - 30
    for ax in panels:
        assert ax.images[0].get_clim() == (-100.0, 0.0)
        assert ax.get_ylim() == pytest.approx((0.0, RATE / 2000))  # kHz up to Nyquist
        assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == pytest.approx(CUTOFF / 1000) for line in ax.lines)


def test_comparison_grid_rows_are_items_and_error_defaults_to_output_minus_target():
    exact = item(1)
    exact["output"] = exact["target"].copy()
    fig = comparison_grid([item(0), exact, item(2)], ["a", "b", "c"], RATE, CUTOFF)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 12
    assert [ax.get_title() for ax in panels[:4]] == ["input", "output", "target", "error"]
    assert [panels[4 * r].get_ylabel().split("\n")[0] for r in range(3)] == ["a", "b", "c"]
    # A perfect output has a silent error panel (the floor of the shared scale).
    assert np.asarray(panels[7].images[0].get_array()).max() == -100.0
    assert np.asarray(panels[3].images[0].get_array()).max() > -60.0


def test_row_labels_of_files_keep_their_folder_and_name_and_stay_short():
    names = ["/home/me/data/dev/vctk/p360_001_mic1.flac", "music/" + "x" * 60 + ".flac", "U-Net",
             "C:\\data\\vctk\\p361_002_mic1.flac"]
    fig = comparison_grid([item(0), item(1), item(2), item(0)], names, RATE, CUTOFF)
    labels = [ax.get_ylabel().split("\n")[0] for ax in fig.axes if ax.images][::4]
    assert labels[0] == "vctk/p360_001_mic1.flac" and labels[2] == "U-Net" and labels[3] == "vctk/p361_002_mic1.flac"
    assert len(labels[1]) == 28 and labels[1].startswith("music/") and labels[1].endswith("x.flac")


def test_comparison_figure_writes_a_png(tmp_path):
    path = comparison_figure([item(0), item(1)], ["p360_001", "p361_002"], RATE, CUTOFF, tmp_path / "plots" / "spec.png")
    assert path.exists() and path.stat().st_size > 20_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_figure_needs_one_name_per_item(tmp_path):
    with pytest.raises(ValueError):
        comparison_figure([item()], ["a", "b"], RATE, CUTOFF, tmp_path / "x.png")


def test_listening_panels_are_one_picture_per_signal_alike_in_size_and_scale(tmp_path):
    signals = item()
    panels = spectrogram_panels(signals, RATE, CUTOFF)
    size = (round(PANEL_INCHES[1] * PANEL_DPI), round(PANEL_INCHES[0] * PANEL_DPI), 4)
    assert len(panels.images) == 3 and all(image.shape == size for image in panels.images)
    assert panels.colorbar.shape[1] == size[1] and panels.colorbar.dtype == np.uint8
    left, top, right, bottom = panels.plot_box
    assert 0 < left < right < 1 and 0 < top < bottom < 1
    # Cut at the right columns: each picture is its own signal's (the low-passed input's is dark above
    # the dashed edge), and each plot's frame lies on plot_box's lines, to the pixel: the playhead's place.
    height, width = size[:2]
    x0, x1, y0, y1 = round(left * width), round(right * width), round(top * height), round(bottom * height)
    upper = [image[y0 + 2:(y0 + y1) // 3, x0 + 2:x1 - 2, :3].astype(float).mean() for image in panels.images]
    assert upper[0] < upper[2] - 20
    for image in panels.images:
        grey = image[..., :3].astype(float).mean(axis=-1)
        frame = [grey[y0:y1, x0], grey[y0:y1, x1], grey[y0, x0:x1], grey[y1, x0:x1]]
        assert [line.max() for line in frame] == [0, 0, 0, 0]
        assert grey[y0:y1, x0 - 2].mean() > 200 and grey[y0 - 2, x0:x1].mean() > 200  # white outside
    assert write_png(panels.images[1], tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_plots_leave_matplotlib_global_state_alone():
    # A fresh interpreter: importing must not even load matplotlib, and drawing must
    # not go through pyplot (which would pick or switch the global backend).
    code = (
        "import sys, numpy as np\n"
        "import audiosr.evaluation.plots as p\n"
        "assert 'matplotlib' not in sys.modules\n"
        "p.spectrogram_figure({'x': np.zeros(4096, np.float32)}, 44100)\n"
        "p.spectrogram_panels({'x': np.zeros(4096, np.float32)}, 44100)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
