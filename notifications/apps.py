from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self):
        from notifications import events

        # The member's notices for what billing and meters announce (coop/events.py).
        events.subscribe_handlers()
