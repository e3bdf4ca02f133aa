"""The embedded broker: a message is in its queue whole or not at all, so a worker polling the folder
never takes one half written (kombu's own filesystem transport lets it, and the worker dies)."""

import os

import pytest
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.transport.virtual import Empty

from dashboard.broker import FilesystemTransport


@pytest.fixture
def channel(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }
    with Connection("filesystem://", transport=FilesystemTransport, transport_options=options) as conn:
        yield conn.default_channel


def test_a_message_being_written_is_not_in_the_queue(channel, monkeypatch):
    renamed = []
    replace = os.replace

    def rename_into_queue(source, destination):
        # The message is written but not yet in place: a consumer polling now sees only the
        # messages put before it (kombu's consumer takes "*.<queue>.msg").
        waiting = [name for name in os.listdir(channel.data_folder_out) if name.endswith(".celery.msg")]
        assert sorted(waiting) == sorted(os.path.basename(name) for name in renamed)
        with open(source, "rb") as written:
            assert b'"body"' in written.read()
        renamed.append(destination)
        replace(source, destination)

    monkeypatch.setattr(os, "replace", rename_into_queue)
    channel._put("celery", {"body": "first"})
    channel._put("celery", {"body": "second"})

    assert len(renamed) == 2
    # Both whole (their order is kombu's: by millisecond, then a random id).
    taken = [channel._get("celery"), channel._get("celery")]
    assert sorted(message["body"] for message in taken) == ["first", "second"]
    with pytest.raises(Empty):
        channel._get("celery")
    assert os.listdir(channel.data_folder_out) == []


def test_a_queue_folder_that_cannot_be_written_is_a_channel_error(channel, tmp_path):
    channel.data_folder_out = str(tmp_path / "missing")
    with pytest.raises(ChannelError, match="Cannot add file"):
        channel._put("celery", {"body": "lost"})
