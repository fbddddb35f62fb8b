"""django-q2 tasks: thin wrappers that take ids and call one service.

`messages_send_task` is enqueued (one per batch of COOP_NOTIFY_BATCH_SIZE message ids) by
services.messages_queue after the transaction that wrote the messages commits.
`messages_retry_due_task` is the periodic sweep, scheduled every minute (coop/schedules.py):
quiet-hour texts and retries go out when it runs.
"""

import logging

from django_q import tasks as q_tasks

from notifications import services

logger = logging.getLogger(__name__)


def messages_send_task(message_ids: list[int]) -> dict[str, int]:
    return services.messages_send(message_ids=message_ids)


def messages_retry_due_task() -> dict[str, int]:
    return services.messages_retry_due()


def enqueue_send(batches: list[list[int]]) -> int:
    """Hand each batch to a send task. A batch that cannot be enqueued (broker down) is left for
    the sweep, which hands out queued messages whose task was lost."""
    enqueued = 0
    for batch in batches:
        try:
            q_tasks.async_task("notifications.tasks.messages_send_task", batch, group="notifications: send")
            enqueued += 1
        except Exception:  # the rows stay queued: messages_retry_due hands them out later
            logger.exception("could not enqueue sending of messages %s-%s", batch[0], batch[-1])
    return enqueued
