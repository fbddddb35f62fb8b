from django.apps import AppConfig


class CoopConfig(AppConfig):
    name = "coop"
    verbose_name = "Cooperative"

    def ready(self):
        from django_q.signals import pre_enqueue

        from coop.task_registry import refuse_unregistered

        # Every task django-q2 queues (the scheduler's included) is checked against the
        # registered tasks; see coop/task_registry.py.
        pre_enqueue.connect(refuse_unregistered, dispatch_uid="coop.refuse_unregistered_tasks")
