"""WSGI entry point. DEBUG is off unless DJANGO_DEBUG says otherwise."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coop.settings")

application = get_wsgi_application()
