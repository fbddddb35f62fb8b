"""Settings for the test suite: the normal settings with development defaults and a fast
password hasher. The database still comes from DATABASE_URL (SQLite when unset)."""

import os

os.environ.setdefault("COOP_DEBUG_DEFAULT", "true")

from coop.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Two-factor sign-in off, as on a development machine, whatever the environment says; the tests of
# it (coop/tests/test_otp.py) switch it on.
COOP_STAFF_OTP_REQUIRED = False
