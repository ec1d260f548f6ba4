"""A nearly full disk: uploads and decodes are refused in words before anything is written, an upload that runs out
of room midway leaves nothing behind, and partial uploads left by an earlier run are removed at start-up."""

import asyncio
import errno
import os
import time

import httpx
import pytest
from gradio_client import Client

from webapp import disk_space
from nsynth_core.exports import files as exports
from webapp.disk_space import DiskFullError, UploadRoomMiddleware, check_room, remove_partial_uploads
from app_helpers import running_app, write_tiny_checkpoints

CORNERS = ["bass_electronic_fluidr3_gm033-036-100", "brass_acoustic_fluidr3_gm056-055-100"]


def test_room_is_refused_when_the_reserve_would_not_stay_free(tmp_path, monkeypatch):
    free_mb = disk_space.free_bytes(tmp_path) / disk_space.MB
    monkeypatch.setenv(disk_space.RESERVE_ENV, str(free_mb + 1))
    with pytest.raises(DiskFullError, match="disk is nearly full"):
        check_room(0, [tmp_path])
    monkeypatch.setenv(disk_space.RESERVE_ENV, str(free_mb / 2))
    check_room(0, [tmp_path / "not" / "made" / "yet"])  # a folder still to be made is on its parent's disk
    with pytest.raises(DiskFullError):
        check_room(round(free_mb * 0.75 * disk_space.MB), [tmp_path])  # what is coming in counts too


def left_an_hour_ago(path):
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    return path


def test_start_up_removes_only_old_partial_uploads(tmp_path):
    (tmp_path / "tmpab12cd").write_bytes(b"half a wav")
    left_an_hour_ago(tmp_path / "tmpab12cd")
    (tmp_path / "tmpinflight").write_bytes(b"an upload another app is receiving now")
    (tmp_path / "8e30037e").mkdir()
    (tmp_path / "8e30037e" / "tmpkept.wav").write_bytes(b"a finished upload")
    (tmp_path / "notes.wav").write_bytes(b"not Gradio's")
    assert remove_partial_uploads(tmp_path, older_than=disk_space.ORPHAN_AGE) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["8e30037e", "notes.wav", "tmpinflight"]


def upload_through(middleware_app, body=b"x" * 1000):
    """POST /gradio_api/upload through the middleware; returns (status, text) of the answer."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/gradio_api/upload",
             "headers": [(b"content-length", str(len(body)).encode())]}
    asyncio.run(middleware_app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"].decode()


def test_an_upload_that_fills_the_disk_midway_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_space.RESERVE_ENV, "0")
    (tmp_path / "tmpother").write_bytes(b"another visitor's upload in flight")

    async def gradio_upload(scope, receive, send):  # writes part of the file, then the disk is full
        (tmp_path / "tmpmine").write_bytes(b"part of the body")
        raise OSError(errno.ENOSPC, "No space left on device")

    status, text = upload_through(UploadRoomMiddleware(gradio_upload, folder=tmp_path))
    assert status == 507 and "disk filled up during this upload" in text
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tmpother"]


def test_an_upload_is_refused_before_it_is_read_when_the_disk_is_nearly_full(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_space.RESERVE_ENV, str(disk_space.free_bytes(tmp_path) / disk_space.MB + 1))
    reached = []

    async def gradio_upload(scope, receive, send):
        reached.append(True)

    status, text = upload_through(UploadRoomMiddleware(gradio_upload, folder=tmp_path))
    assert status == 507 and "disk is nearly full" in text and not reached


def test_an_upload_over_the_request_budget_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_space.RESERVE_ENV, "0")
    reached = []

    async def gradio_upload(scope, receive, send):
        reached.append(True)

    status, text = upload_through(UploadRoomMiddleware(gradio_upload, max_request_bytes=500, folder=tmp_path))
    assert status == 413 and "Upload at most" in text and not reached


@pytest.fixture(scope="module")
def full_disk_app(tmp_path_factory):
    """(url, client, log, Gradio's folder) of `python app.py` that sees its disk as nearly full (the reserve is
    larger than the disk), started over a partial upload left by an earlier run."""
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    gradio_folder = tmp_path_factory.mktemp("gradio")
    (gradio_folder / "tmp_left_by_a_crash").write_bytes(b"half a wav")
    left_an_hour_ago(gradio_folder / "tmp_left_by_a_crash")
    write_tiny_checkpoints(checkpoints)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(gradio_folder))
        patch.setenv(exports.OUTPUTS_ENV, str(tmp_path_factory.mktemp("outputs")))
        patch.setenv(disk_space.RESERVE_ENV, str(10 ** 9))
        with running_app(checkpoints, checkpoints / "app.log") as url:
            yield url, Client(url, verbose=False), checkpoints / "app.log", gradio_folder


def test_a_full_disk_refuses_uploads_and_decodes_in_words_and_the_page_still_serves(full_disk_app, write_tone):
    url, client, log, gradio_folder = full_disk_app
    assert "Removed 1 partly written upload(s)" in log.read_text()
    assert not (gradio_folder / "tmp_left_by_a_crash").exists()
    with open(write_tone(), "rb") as tone:
        answer = httpx.post(f"{url}gradio_api/upload", files=[("files", ("tone.wav", tone))], timeout=60)
    assert answer.status_code == 507 and "disk is nearly full" in answer.text
    with pytest.raises(Exception, match="disk is nearly full"):
        client.predict(*CORNERS, None, None, "line (A to B)", 2, "bilinear", "DDSP", 1.0, 0.1, api_name="/grid")
    assert "Refused (run_grid): The server's disk is nearly full" in log.read_text()
    assert "Traceback" not in log.read_text()
    assert httpx.get(url, timeout=30).status_code == 200
