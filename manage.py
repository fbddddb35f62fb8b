#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coop.settings")
    # manage.py is the developer's entry point: DEBUG defaults to on here unless DJANGO_DEBUG
    # (environment or .env) says otherwise. The web entry points (wsgi/asgi) default to off.
    os.environ.setdefault("COOP_DEBUG_DEFAULT", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
