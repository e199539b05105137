"""``generate --dry-run``: the request a run would send, checked and priced, sending nothing.

A dry run goes through the same checks as a run (the Veo rules, the frames, ``--out``,
the key and the API root) and then prints the submit as the client would send it: the
method, the URL, the headers with the key shown as ``[redacted]``, and the JSON body.
A frame that is a local file would be uploaded first; its id, which only the upload
gives, stands as a placeholder in the body.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, TextIO

from .._batch._pricing import CostEstimator
from .._client import LeonardoClient
from .._files import read_image
from ..models import FrameRef, ImageToVideoRequest, VideoSpec
from ._common import EXIT_OK

__all__ = ["dry_run"]

#: aiohttp adds this for a JSON body; the client's own headers are the rest.
_JSON_TYPE: Final = {"content-type": "application/json"}


def dry_run(
    client: LeonardoClient,
    spec: VideoSpec,
    image: Path | str,
    end_image: Path | str | None,
    *,
    as_json: bool,
    stdout: TextIO,
) -> int:
    """Print what a run would upload and submit, and its estimated cost; returns 0.

    :param image: the start frame as ``generate`` reads it: a file (a ``Path``, uploaded
        first) or an image id
    :raises ValidationError: a frame file is not an image
    """
    uploads: list[dict[str, str]] = []
    frames: list[FrameRef | None] = []
    for name, value in (("image", image), ("end_image", end_image)):
        if isinstance(value, Path):
            content_type = read_image(value, name=name).content_type
            uploads.append({"field": name, "file": str(value), "type": content_type})
            frames.append(FrameRef(f"<id from the upload of {value}>"))
        else:
            frames.append(None if value is None else FrameRef(value))
    start, end = frames
    assert start is not None  # the start frame is never None
    request = client.preview_submit(ImageToVideoRequest.of(spec, start, end))
    headers = {**request.headers, **_JSON_TYPE}
    estimate = CostEstimator().estimate(spec)
    if as_json:
        view = {
            "dry_run": True,
            "uploads": uploads,
            "request": {
                "method": request.method,
                "url": request.url,
                "headers": headers,
                "body": request.json,
            },
            "auto_seed": spec.seed is None and client.auto_seed,
            "estimated_cost": None
            if estimate.cost is None
            else {
                "amount": str(estimate.cost.amount),
                "unit": estimate.cost.unit,
                "source": estimate.source,
            },
        }
        print(json.dumps(view, ensure_ascii=False), file=stdout, flush=True)
        return EXIT_OK
    print("dry run: nothing was sent", file=stdout)
    for upload in uploads:
        print(
            f"upload {upload['field']}: {upload['file']} ({upload['type']}), first "
            f"POST {client.base_url}/init-image, then the file to the storage URL it names",
            file=stdout,
        )
    for name, value in (("image", image), ("end_image", end_image)):
        if isinstance(value, str):
            print(f"{name}: {value!r} is sent as an image id (not a file here)", file=stdout)
    print(f"{request.method} {request.url}", file=stdout)
    for name, value in headers.items():
        print(f"{name}: {value}", file=stdout)
    print(json.dumps(request.json, indent=2, ensure_ascii=False), file=stdout)
    if spec.seed is None and client.auto_seed:
        print(
            "seed: a random one is added when it is sent, so that a lost answer can be "
            "matched to its job",
            file=stdout,
        )
    if estimate.cost is None:
        print("estimated cost:   unknown", file=stdout)
    else:
        print(f"estimated cost:   {estimate.cost.amount} {estimate.cost.unit}", file=stdout)
    print(f"estimate source:  {estimate.source}", file=stdout)
    stdout.flush()
    return EXIT_OK
