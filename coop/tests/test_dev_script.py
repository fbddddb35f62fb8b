"""./dev's set-up waits for a Debian package lock held by another apt process instead of failing,
and the start banner names only pages that exist.

The apt tests source ./dev (which then only defines its functions) with fake apt-get, dpkg-query,
fuser and sudo on PATH, so nothing is installed."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest
from django.conf import settings
from django.urls import resolve

DEV = pathlib.Path(settings.BASE_DIR) / "dev"
LOCK_MESSAGE = (
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"
)


def fake(bin_dir: pathlib.Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(0o755)


@pytest.fixture
def fake_debian(tmp_path):
    """A PATH whose apt-get fails with the lock message `locked_tries` times, then succeeds; every
    call's arguments are logged to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    fake(bin_dir, "dpkg-query", "exit 1\n")  # nothing is installed
    fake(bin_dir, "sudo", 'exec "$@"\n')
    fake(
        bin_dir,
        "apt-get",
        f"""echo "$*" >> {calls}
n=$(cat {tmp_path}/tries 2>/dev/null || echo 0)
echo $((n + 1)) > {tmp_path}/tries
if [ "$n" -lt "$(cat {tmp_path}/locked_tries)" ]; then
  cat >&2 <<'MSG'
{LOCK_MESSAGE}
MSG
  exit 100
fi
""",
    )
    (tmp_path / "locked_tries").write_text("1")
    fake(bin_dir, "fuser", "exit 1\n")  # no lock held when asked
    return tmp_path


def run_dev_function(tmp_path, call: str, **env) -> subprocess.CompletedProcess:
    path = f"{tmp_path / 'bin'}:{os.path.dirname(shutil.which('bash'))}:/usr/bin:/bin"
    return subprocess.run(
        ["bash", "-c", f'source "{DEV}"; {call}'],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": path, "HOME": str(tmp_path), "APT_LOCK_POLL": "0", **env},
    )


def test_set_up_waits_for_another_apt_process_holding_the_lock_and_says_so(fake_debian):
    result = run_dev_function(fake_debian, "ensure_debian_packages libpango-1.0-0")
    assert result.returncode == 0, result.stderr
    assert "Waiting for another apt process (pid 4242) to finish" in result.stdout
    calls = (fake_debian / "calls.log").read_text().splitlines()
    # update was refused once by the lock, tried again, then install ran.
    assert [c.split()[-1] for c in calls] == ["-qq", "-qq", "libpango-1.0-0"]
    assert all(re.search(r"-o DPkg::Lock::Timeout=\d+ ", c) for c in calls), calls


def test_a_lock_seen_before_apt_get_runs_is_reported_with_its_pid(fake_debian):
    (fake_debian / "locked_tries").write_text("0")
    fake(fake_debian / "bin", "fuser", 'echo " 777" ; echo "/var/lib/dpkg/lock-frontend: F" >&2\n')
    result = run_dev_function(fake_debian, "ensure_debian_packages libpango-1.0-0")
    assert result.returncode == 0, result.stderr
    assert "Waiting for another apt process (pid 777) to finish" in result.stdout


def test_a_lock_that_is_never_released_fails_after_the_timeout_with_apts_message(fake_debian):
    (fake_debian / "locked_tries").write_text("1000000")
    result = run_dev_function(fake_debian, "ensure_debian_packages libpango-1.0-0", APT_LOCK_TIMEOUT="1")
    assert result.returncode == 100
    assert "Could not get lock" in result.stderr and "Gave up after 1s" in result.stderr


def test_another_apt_failure_is_not_retried(fake_debian):
    fake(fake_debian / "bin", "apt-get", 'echo "E: Unable to locate package nosuch" >&2; exit 100\n')
    result = run_dev_function(fake_debian, "ensure_debian_packages nosuch")
    assert result.returncode == 100
    assert "Unable to locate package" in result.stderr and "Waiting" not in result.stdout


def test_the_start_banner_names_the_admin_at_the_address_dev_start_uses():
    script = DEV.read_text()
    banner_urls = re.findall(r"http://\$addr(/[\w/]*)", script)
    assert banner_urls, "./dev start prints no URL"
    for url in banner_urls:
        resolve(url)
    assert '--base-url "http://$addr"' in script
