from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo cooperative (`seed_demo`) and the daily-run bench (`bench_daily`).

    The top layer: it may import every other app, and no app imports it. No models."""

    name = "demo"
    verbose_name = "Demo data"
