"""`.ci/audit-requirements`, the pip-audit step of `.ci/run`, against a fake OSV vulnerability
service on loopback (the real one is out of reach from the machines this project is built on):
a pinned package with a known vulnerability fails the step and is named with its fixed version;
a clean one passes. pip-audit reads only the pins here (--no-deps --disable-pip), so nothing is
installed."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VULN = {
    "id": "PYSEC-0000-TEST",
    "summary": "a test vulnerability",
    "affected": [
        {
            "package": {"name": "django", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.2.99"}]}],
        }
    ],
}


@pytest.fixture
def osv():
    """A fake OSV query endpoint: Django has VULN, every other package nothing. Yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"vulns": [VULN]} if query["package"]["name"] == "django" else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()


def audit(tmp_path, osv_url, *pins):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{pin}\n" for pin in pins))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_AUDIT_VULNERABILITY_SERVICE": "osv",
        "PIP_AUDIT_OSV_URL": osv_url,
    }
    args = ["-r", str(requirements), "--no-deps", "--disable-pip", "--cache-dir", str(tmp_path / "cache")]
    return subprocess.run(
        [str(ROOT / ".ci/audit-requirements"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_pinned_package_with_a_known_vulnerability_fails_the_step_and_is_named(tmp_path, osv):
    done = audit(tmp_path, osv, "Django==5.2.19", "segno==1.6.6")
    assert done.returncode != 0
    assert "VULNERABLE django 5.2.19: PYSEC-0000-TEST (fixed in 5.2.99)" in done.stdout
    assert "1 pinned package(s) with a known vulnerability: upgrade the pins." in done.stderr


def test_pins_with_no_known_vulnerability_pass(tmp_path, osv):
    done = audit(tmp_path, osv, "segno==1.6.6", "holidays==0.108")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip-audit: no known vulnerabilities in 2 packages." in done.stdout
