"""The CDN's MP4s are real videos: H.264 that PyAV and ffprobe decode, per generation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _images import png_bytes
from _video import decode, ffprobe, top_level_boxes

from leonardo_async.simulator import Simulator, SimulatorConfig

from ._support import Api

RED = (220, 30, 30)
BLUE = (30, 30, 220)


async def _download(api: Api, gid: str, folder: Path) -> Path:
    done = await api.finished(gid)
    assert done["status"] == "COMPLETE"
    reply = await api.raw("GET", done["generated_images"][0]["motionMP4URL"])
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "video/mp4"
    path = folder / f"{gid}.mp4"
    path.write_bytes(reply.body)
    return path


async def _upload(api: Api, png: bytes) -> str:
    upload = await api.new_init_image("png")
    assert (await api.post_form(upload, file=png)).status == 204
    image_id: str = upload["id"]
    return image_id


async def test_default_video_is_the_clip_tagged_per_generation(
    api: Api, sim: Simulator, tmp_path: Path
) -> None:
    """Two generations get the same playable clip, each followed by a box naming it."""
    image = await api.uploaded_image()
    first, second = [await api.submit_ok(image, seed=seed) for seed in (1, 2)]
    paths = [await _download(api, gid, tmp_path) for gid in (first, second)]
    for gid, path in zip((first, second), paths, strict=True):
        data = path.read_bytes()
        assert data == sim.video_bytes(gid)
        boxes = top_level_boxes(data)
        assert boxes[:2] == ["ftyp", "moov"]  # moov first: a player starts at once
        assert "mdat" in boxes
        assert boxes[-1] == "free"
        assert gid.encode() in data[-200:]
        video = decode(path)
        assert (video.codec, video.width, video.height, video.frames) == ("h264", 640, 360, 32)
        assert video.seconds == pytest.approx(4.0)
        probed = ffprobe(path)
        assert (probed["codec_name"], probed["nb_read_frames"]) == ("h264", "32")
    assert paths[0].read_bytes() != paths[1].read_bytes()


async def test_video_size_pads_without_breaking_the_video(
    api: Api, sim: Simulator, tmp_path: Path
) -> None:
    """A ``video_size`` above the clip's pads the trailing box; the file still decodes."""
    sim.configure(video_size=200_000)
    gid = await api.submit_ok(await api.uploaded_image())
    path = await _download(api, gid, tmp_path)
    assert path.stat().st_size == 200_000
    assert top_level_boxes(path.read_bytes())[-1] == "free"
    assert decode(path).frames == 32


@pytest.mark.parametrize(
    ("size", "duration"), [({"width": 1280, "height": 720}, 4), ({"width": 720, "height": 1280}, 6)]
)
async def test_frames_video_crossfades_start_to_end(
    api: Api, sim: Simulator, tmp_path: Path, size: dict[str, int], duration: int
) -> None:
    """With ``video="frames"`` the MP4 starts on the start frame and ends on the end frame,
    at the requested size and duration."""
    sim.configure(video="frames")
    start = await _upload(api, png_bytes(32, 18, RED))
    end = await _upload(api, png_bytes(32, 18, BLUE))
    gid = await api.submit_ok(
        start, endFrameImage={"id": end, "type": "UPLOADED"}, duration=duration, **size
    )
    path = await _download(api, gid, tmp_path)
    assert path.read_bytes() == sim.video_bytes(gid)
    video = decode(path)
    assert (video.codec, video.width, video.height) == ("h264", size["width"], size["height"])
    assert video.seconds == pytest.approx(duration, abs=0.3)
    assert video.frames >= 2 * duration
    assert video.first_rgb == pytest.approx(RED, abs=12)
    assert video.last_rgb == pytest.approx(BLUE, abs=12)
    assert ffprobe(path)["width"] == str(size["width"])


async def test_frames_video_without_end_frame_fades_to_black(
    api: Api, sim: Simulator, tmp_path: Path
) -> None:
    """Only a start frame: the video goes from that frame to black."""
    sim.configure(video="frames")
    gid = await api.submit_ok(await _upload(api, png_bytes(16, 9, RED)), duration=4)
    video = decode(await _download(api, gid, tmp_path))
    assert video.first_rgb == pytest.approx(RED, abs=12)
    assert video.last_rgb == pytest.approx((0, 0, 0), abs=12)


def test_frames_knob_names_the_extra_when_pyav_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without PyAV, ``video="frames"`` is refused when configured, naming the extra."""
    monkeypatch.setitem(sys.modules, "av", None)  # makes ``import av`` raise ImportError
    with pytest.raises(ValueError, match=r"video='frames' needs PyAV.*leonardo-async\[video\]"):
        SimulatorConfig(video="frames")
    assert SimulatorConfig(video="clip").video == "clip"
