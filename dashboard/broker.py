"""The broker transports, each with a kombu defect worked around.

Filesystem (the embedded default): kombu writes a message into the queue folder in place, while a
consumer takes any file there without waiting for the writer, so it can take a message still empty
and the worker exits on the JSON error ("Unrecoverable error"). Here a message is written under a
name no consumer takes, then renamed into place: it appears whole or not at all.

Redis: when a worker's connection to Redis drops, kombu 5.7 tears the old channel down, then still uses it:
to restore the worker's unacknowledged messages at once, and to acknowledge the tasks that finish
after the reconnection. Both raise AttributeError and the worker exits ("Unrecoverable error")
instead of carrying on with its new connection. Here both are skipped: Redis keeps those messages
in its unacked set and delivers them again after the visibility timeout, every task is idempotent,
and replay's reconcile tick requeues unfinished work from the database, so nothing is lost.
"""

import logging
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, redis
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except AttributeError:
            logger.warning(
                "broker connection gone: %d unacknowledged message(s) will be delivered again after "
                "the visibility timeout",
                len(self._delivered),
            )

    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except AttributeError:
            logger.warning("broker connection gone: a finished task's message will be delivered again")

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except AttributeError:
            logger.warning("broker connection gone: a rejected message will be delivered again")


class RedisChannel(redis.Channel):
    QoS = QoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel


class FilesystemChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        folder = self.data_folder_out
        # kombu's own name, which orders messages by time; a consumer only takes "*.<queue>.msg".
        final = os.path.join(folder, f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg")
        partial = os.path.join(folder, f".{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class FilesystemTransport(filesystem.Transport):
    Channel = FilesystemChannel
