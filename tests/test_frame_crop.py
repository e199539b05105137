"""A frame of the other orientation than the video: its size read from the file's header,
and a warning naming both shapes and the option that fits, before anything is sent."""

from __future__ import annotations

import fractions
import json
import struct
import typing
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from _cli import FAST_POLL, cli
from _helpers import total_requests
from _images import png_bytes
from _video import decode
from av.video.codeccontext import VideoCodecContext
from hypothesis import given, settings
from hypothesis import strategies as st

from leonardo_async import (
    BatchItem,
    BatchSubmitter,
    FrameCropWarning,
    LeonardoClient,
    Orientation,
    VideoSpec,
)
from leonardo_async._files import frame_misfit, image_size
from leonardo_async.simulator import Simulator

sizes = st.tuples(st.integers(1, 64), st.integers(1, 64))


def encoded(codec: str, width: int, height: int, **options: str) -> bytes:
    """A real image file from FFmpeg's encoder (``png``, ``mjpeg``, ``libwebp``)."""
    pix = {"png": "rgb24", "mjpeg": "yuvj444p", "libwebp": "yuv420p"}[codec]
    context = typing.cast(VideoCodecContext, av.CodecContext.create(codec, "w"))
    context.width, context.height, context.pix_fmt = width, height, pix
    context.time_base = fractions.Fraction(1, 1)
    context.options = options
    pixels = np.full((height, width, 3), 90, np.uint8)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix)
    return b"".join(bytes(packet) for packet in [*context.encode(frame), *context.encode(None)])


def with_exif_orientation(jpeg: bytes, orientation: int, order: str) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding only the orientation tag."""
    fmt = "<" if order == "II" else ">"
    tiff = (
        order.encode()
        + struct.pack(f"{fmt}HI", 42, 8)
        + struct.pack(f"{fmt}H", 1)
        + struct.pack(f"{fmt}HHIHH", 0x0112, 3, 1, orientation, 0)
        + struct.pack(f"{fmt}I", 0)
    )
    body = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def portrait(tmp_path: Path, name: str = "portrait.png") -> Path:
    path = tmp_path / name
    path.write_bytes(png_bytes(72, 128))  # 9:16
    return path


def landscape(tmp_path: Path, name: str = "landscape.png") -> Path:
    path = tmp_path / name
    path.write_bytes(png_bytes(128, 72))  # 16:9
    return path


# --- the size in the header ------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(size=sizes, codec=st.sampled_from(["png", "mjpeg", "libwebp", "libwebp-lossless"]))
def test_the_size_comes_from_the_header_of_what_real_encoders_write(
    size: tuple[int, int], codec: str
) -> None:
    """PNG, baseline JPEG, lossy (VP8) and lossless (VP8L) WebP, at any size."""
    if codec == "libwebp-lossless":
        data = encoded("libwebp", *size, lossless="1")
        assert data[12:16] == b"VP8L"
    else:
        data = encoded(codec, *size)
    assert image_size(data) == size


@pytest.mark.parametrize("order", ["II", "MM"])
@pytest.mark.parametrize(("orientation", "turned"), [(1, False), (3, False), (6, True), (8, True)])
def test_a_jpegs_exif_orientation_turns_its_size_as_viewers_show_it(
    order: str, orientation: int, turned: bool
) -> None:
    """A phone's portrait photo stored landscape with "turn 90 degrees" is portrait."""
    data = with_exif_orientation(encoded("mjpeg", 64, 36), orientation, order)
    assert image_size(data) == ((36, 64) if turned else (64, 36))


def test_an_extended_webp_gives_its_canvas_size() -> None:
    """VP8X (alpha, animation, metadata) carries the canvas size, minus one, in 24 bits."""
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x10\0\0\0" + (1999).to_bytes(3, "little")
    chunk += (2999).to_bytes(3, "little")
    data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
    assert image_size(data) == (2000, 3000)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 400), codec=st.sampled_from(["png", "mjpeg", "libwebp"]))
def test_a_header_cut_short_gives_no_size_or_the_right_one(cut: int, codec: str) -> None:
    """Any prefix of a real file reads as its size or as unknown: never a wrong size,
    never an exception."""
    data = encoded(codec, 40, 30)
    right = (40, 30)
    if codec == "mjpeg":  # the EXIF segment first, so that a cut may fall in it
        data, right = with_exif_orientation(data, 6, "II"), (30, 40)
    assert image_size(data[:cut]) in (None, right)


def test_not_an_image_has_no_size() -> None:
    assert image_size(b"GIF89a" + bytes(20)) is None
    assert image_size(b"") is None


# --- which frames misfit ---------------------------------------------------------------


@given(size=st.tuples(st.integers(1, 4000), st.integers(1, 4000)), portrait=st.booleans())
def test_a_frame_misfits_exactly_when_the_other_orientation_keeps_more_of_it(
    size: tuple[int, int], portrait: bool
) -> None:
    """A square frame, or a 4:3 one in a 16:9 video, is no misfit: no option would help."""
    spec = VideoSpec(prompt="p", orientation="portrait" if portrait else "landscape")
    width, height = size
    video = 9 / 16 if portrait else 16 / 9
    frame = width / height
    keeps = min(frame / video, video / frame)
    other = min(frame * video, 1 / (frame * video))
    misfit = frame_misfit(image_size(png_bytes(width, height)), spec, "image")
    assert (misfit is not None) == (other > keeps)
    if misfit is not None:
        assert misfit.fits is (Orientation.LANDSCAPE if portrait else Orientation.PORTRAIT)


# --- in Python -------------------------------------------------------------------------


async def test_a_portrait_frame_in_a_landscape_video_warns_naming_both_and_the_fix(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """The warning names the frame's size and shape, the video's, and ``orientation=``;
    the job is still made as asked (a warning, not an error), from the caller's line."""
    frame = portrait(tmp_path)
    with pytest.warns(FrameCropWarning) as caught:
        job = await client.image_to_video(prompt="waves", image=frame)
    (warning,) = caught
    text = str(warning.message)
    assert f"image {frame} is 72x128 (portrait 9:16)" in text
    assert "the video is 1280x720 (landscape 16:9)" in text
    assert "keeping 32%" in text
    assert "orientation=Orientation.PORTRAIT makes a 720x1280 video" in text
    assert warning.filename == __file__
    assert sim.generation(job.id) is not None


async def test_the_warning_comes_before_any_request(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """Made an error by a filter, the warning stops the call with nothing sent: no
    upload, no submit."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameCropWarning)
        with pytest.raises(FrameCropWarning):
            await client.generate(prompt="waves", image=portrait(tmp_path), out=tmp_path / "v.mp4")
        with pytest.raises(FrameCropWarning, match="end_image "):
            await client.image_to_video(
                prompt="waves", image=landscape(tmp_path), end_image=portrait(tmp_path, "e.png")
            )
    assert total_requests(sim) == 0


@pytest.mark.parametrize(
    ("frame", "options"),
    [
        ((128, 72), {}),
        ((72, 128), {"orientation": "portrait"}),
        ((72, 128), {"orientation": Orientation.PORTRAIT, "resolution": "1080p"}),
        ((100, 100), {}),
        ((4, 3), {}),
    ],
)
async def test_a_frame_that_fits_its_video_gives_no_warning(
    client: LeonardoClient, tmp_path: Path, frame: tuple[int, int], options: dict[str, object]
) -> None:
    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes(*frame))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await client.image_to_video(prompt="waves", image=path, **options)  # type: ignore[arg-type]
    assert [w for w in caught if issubclass(w.category, FrameCropWarning)] == []


async def test_a_size_given_is_answered_with_the_size_that_fits(
    client: LeonardoClient, tmp_path: Path
) -> None:
    """Asked for 1920x1080 with a portrait frame's bytes, the fix named is the size."""
    with pytest.warns(FrameCropWarning, match=r"width=1080, height=1920 makes a 1080x1920"):
        await client.image_to_video(
            prompt="waves", image=png_bytes(72, 128), width=1920, height=1080
        )
    with pytest.warns(FrameCropWarning, match=r"^image \(bytes\) is 72x128"):
        await client.image_to_video(prompt="waves", image=png_bytes(72, 128))


# --- on the command line ---------------------------------------------------------------


async def test_generate_warns_in_its_own_options_before_anything_is_sent(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning names --orientation, comes before the submit, and only once (not
    again in the library's Python words); the run goes on as asked."""
    frame = portrait(tmp_path)
    args: list[str | Path] = ["generate", "--image", frame, "--prompt", "waves", *FAST_POLL]
    assert await cli(*args, "--out", tmp_path / "v.mp4") == 0
    err = capsys.readouterr().err
    warning = (
        f"leonardo-async: warning: --image {frame} is 72x128 (portrait 9:16) but the video is "
        "1280x720 (landscape 16:9): Leonardo crops the frame to the video's shape, keeping "
        "32% of the picture; --orientation portrait makes a 720x1280 video that keeps 100%"
    )
    assert warning in err
    assert err.index(warning) < err.index("submitted generation")
    assert "Orientation.PORTRAIT" not in err
    assert err.count("warning:") == 1
    (generation,) = sim.generations
    assert (generation.width, generation.height) == (1280, 720)

    assert await cli(*args, "--out", tmp_path / "p.mp4", "--orientation", "portrait") == 0
    assert "warning" not in capsys.readouterr().err
    assert sim.generations[-1].width == 720


async def test_generate_dry_run_warns_and_sends_nothing(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --width/--height given, the fix named is the size swapped."""
    code = await cli(
        "generate", "--image", portrait(tmp_path), "--prompt", "waves", "--out",
        tmp_path / "v.mp4", "--width", "1920", "--height", "1080", "--dry-run",
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "--width 1080 --height 1920 makes a 1080x1920 video" in err
    assert total_requests(sim) == 0


async def test_generate_with_a_fitting_frame_says_nothing_of_crops(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args: list[str | Path] = [
        "generate", "--image", landscape(tmp_path), "--prompt", "waves", *FAST_POLL
    ]  # fmt: skip
    assert await cli(*args, "--out", tmp_path / "v.mp4") == 0
    assert "warning" not in capsys.readouterr().err


async def test_the_demo_of_a_portrait_frame_makes_and_suggests_a_portrait_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo takes the orientation that fits its frame, and the command it suggests
    for a real key says so: it never suggests one that crops."""
    code = await cli(
        "demo", "--image", portrait(tmp_path), "--out", tmp_path / "demo", "--job-seconds", "0.1"
    )
    assert code == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.err
    assert f"generate --image {tmp_path / 'portrait.png'} --orientation portrait" in printed.out
    decoded = decode(tmp_path / "demo" / "demo.mp4")
    assert (decoded.width, decoded.height) == (720, 1280)


async def test_batch_warns_once_per_frame_and_shape_naming_its_lines(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a batch's own words (the line's fields), before anything is sent; a line that
    asks for the shape that fits, or a frame that fits, is not named."""
    portrait(tmp_path)
    landscape(tmp_path)
    lines = [
        {"prompt": "a", "image": "portrait.png"},
        {"prompt": "b", "image": "landscape.png"},
        {"prompt": "c", "image": "portrait.png", "duration": 4},
        {"prompt": "d", "image": "portrait.png", "orientation": "portrait"},
        {"prompt": "e", "image": "landscape.png", "end_image": "portrait.png"},
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert await cli("batch", jobs, "--out", tmp_path / "out", "--dry-run") == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "leonardo-async: warning: lines 1, 3: image portrait.png is 72x128 (portrait 9:16) "
        "but the video is 1280x720 (landscape 16:9): Leonardo crops the frame to the video's "
        'shape, keeping 32% of the picture; "orientation": "portrait" (or "width": 720, '
        '"height": 1280) makes a 720x1280 video that keeps 100%',
        "leonardo-async: warning: line 5: end_image portrait.png is 72x128 (portrait 9:16) "
        "but the video is 1280x720 (landscape 16:9): Leonardo crops the frame to the video's "
        'shape, keeping 32% of the picture; "orientation": "portrait" (or "width": 720, '
        '"height": 1280) makes a 720x1280 video that keeps 100%',
    ]
    assert total_requests(sim) == 0


async def test_a_python_batch_warns_once_per_frame_and_shape(
    client: LeonardoClient, tmp_path: Path
) -> None:
    """BatchSubmitter warns as the one-job calls do, once per frame and video size however
    many items use it, and not of an item that asks for the shape that fits."""
    frame = portrait(tmp_path)
    items = [
        BatchItem.create(prompt="a", image=frame),
        BatchItem.create(prompt="b", image=frame, duration=4),
        BatchItem.create(prompt="c", image=frame, orientation="portrait"),
        BatchItem.create(prompt="d", image=landscape(tmp_path)),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with BatchSubmitter(client) as batch:
            summary = await batch.run(items)
    crops = [str(w.message) for w in caught if issubclass(w.category, FrameCropWarning)]
    assert len(crops) == 1
    assert f"image {frame} is 72x128 (portrait 9:16)" in crops[0]
    assert "orientation=Orientation.PORTRAIT" in crops[0]
    assert summary.complete == 4  # a warning, not a refusal


async def test_a_batch_run_says_each_crop_once(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line says a crop in the jobs file's words; the library's warning of the
    same frame is not printed as well."""
    portrait(tmp_path)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a", "image": "portrait.png"}) + "\n", encoding="utf-8")
    assert await cli("batch", jobs, "--out", tmp_path / "out", *FAST_POLL) == 0
    err = capsys.readouterr().err
    assert err.count("is 72x128 (portrait 9:16)") == 1
    assert "FrameCropWarning" not in err
