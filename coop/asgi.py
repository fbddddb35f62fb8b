"""ASGI entry point. DEBUG is off unless DJANGO_DEBUG says otherwise."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coop.settings")

application = get_asgi_application()
