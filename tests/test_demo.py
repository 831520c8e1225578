"""``dispatcher demo --keep`` as a person runs it: a process, its output, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

DEMO_TIMEOUT_S = 600.0


def test_demo_keep_serves_until_ctrl_c_and_stops_without_noise(tmp_path: Path) -> None:
    """Embedded Redis and Postgres under a tmp dir, its own Ray: the machine's are untouched."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISPATCHER_", "RAY_ADDRESS", "WHATSAPP_", "META_"))
    }
    env.update(PYTHONUNBUFFERED="1", DISPATCHER_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dispatcher.cli",
            "demo",
            "--keep",
            "--recipients",
            "40",
            "--numbers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = []
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(out)
            out.append(line)
            if "Ctrl-C stops it" in line:
                break
        text = "".join(out)
        console_url = re.search(r"Console: (http://\S+)/console", text)
        assert console_url, text
        token_file = re.search(r"API token in the file (\S+)", text)
        assert token_file, text
        token = Path(token_file.group(1)).read_text().strip()
        assert token not in text
        assert Path(token_file.group(1)).stat().st_mode & 0o077 == 0
        campaign_id = re.search(r"dispatcher campaign show (\S+)", text)
        assert campaign_id, text

        page = httpx.get(f"{console_url.group(1)}/console", timeout=30)
        assert page.status_code == 200
        assert 'id="token-form"' in page.text
        # Still serving after the campaign, with the token from the file.
        shown = httpx.get(
            f"{console_url.group(1)}/api/whatsapp/campaigns/{campaign_id.group(1)}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "completed"

        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopping" in rest
    # Library lines only with -v; an environment's own warning (e.g. where the embedded
    # Postgres may live) is fine, an error or a slow stop is not.
    for noise in ("ERROR", "Traceback", "HTTP Request", " INFO ", "did not stop"):
        assert noise not in err, err
