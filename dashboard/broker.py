"""The Redis broker transport, with one kombu defect worked around.

When a worker's connection to Redis drops, kombu 5.7 tears the old channel down, then still uses it:
to restore the worker's unacknowledged messages at once, and to acknowledge the tasks that finish
after the reconnection. Both raise AttributeError and the worker exits ("Unrecoverable error")
instead of carrying on with its new connection. Here both are skipped: Redis keeps those messages
in its unacked set and delivers them again after the visibility timeout, every task is idempotent,
and replay's reconcile tick requeues unfinished work from the database, so nothing is lost.
"""

import logging

from kombu.transport import redis

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


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
