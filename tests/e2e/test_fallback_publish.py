"""`fairline dialplan publish`: the fallback dialplan follows the configuration, over an AMI user
that can do that and nothing more (decision 0022)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ari_app.ami.session import AmiSession
from ari_app.errors import AmiRefused
from ari_app.settings import ami_from_arguments
from tests.e2e.conftest import LiveStack

pytestmark = pytest.mark.e2e

ROUTED = "+31201230006"  # its route's first target, +31201230925, answers and hangs up after 2 s
OLD_TARGET = "+31201230925"
NEW_TARGET = "+31612340775"  # a mobile; the stand-in phones answer a number ending in 5 the same way


def fairline(live: LiveStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`fairline ARGS` with the environment the stack gives the fairline it runs."""
    exe = Path(sys.executable).parent / "fairline"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          env=live.stack.fairline_env())


def messages_log(live: LiveStack) -> Path:
    return live.stack.asterisk_dir / "log" / "messages.log"


@pytest.fixture
def changed_config(live: LiveStack) -> Iterator[Path]:
    """The stack's configuration with ROUTED's first target changed; put back and published again after."""
    s = live.stack
    original = s.app_config.read_text()
    assert f'targets: ["{OLD_TARGET}"]' in original
    s.app_config.write_text(original.replace(f'targets: ["{OLD_TARGET}"]', f'targets: ["{NEW_TARGET}"]'))
    try:
        yield s.app_config
    finally:
        s.app_config.write_text(original)
        restored = fairline(live, "dialplan", "publish")
        assert restored.returncode == 0, restored.stderr
        if s.fairline is None or s.fairline.poll() is not None:
            s.start_fairline()


def test_published_fallback_rings_the_new_first_target_while_fairline_is_down(
        live: LiveStack, changed_config: Path) -> None:
    s = live.stack
    assert f"PJSIP/{OLD_TARGET}@carrier-out" in s.asterisk_rx("dialplan show fairline-fallback")

    published = fairline(live, "dialplan", "publish", "--config", str(changed_config))

    assert published.returncode == 0, published.stderr
    assert "Asterisk runs it (sha256:" in published.stdout and str(s.fallback_file) in published.stdout
    shown = s.asterisk_rx(f"dialplan show {ROUTED}@fairline-fallback")
    assert f"Dial(PJSIP/{NEW_TARGET}@carrier-out,5)" in shown and OLD_TARGET not in shown

    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=10) == 0
    offset = messages_log(live).stat().st_size
    result = live.call(ROUTED, "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    log = messages_log(live).read_bytes()[offset:].decode(errors="replace")
    assert f"Executing [{ROUTED}@fairline-fallback:1] Dial(" in log
    assert f"PJSIP/{NEW_TARGET}@carrier-out,5" in log and OLD_TARGET not in log
    assert live.cdrs() == []  # the dialplan served it, not fairline


async def test_fairlines_ami_user_can_neither_run_commands_nor_originate(live_stack: LiveStack) -> None:
    s = live_stack.stack
    env = s.fairline_env()
    ami = ami_from_arguments(ami_host=env["FAIRLINE_AMI_HOST"], ami_port=env["FAIRLINE_AMI_PORT"],
                             secrets=env["FAIRLINE_SECRETS"], asterisk_fallback=env["FAIRLINE_ASTERISK_FALLBACK"])
    marker = s.state_dir / f"ami-shell-{secrets.token_hex(4)}"
    async with AmiSession(ami) as session:
        for name, headers in [
            ("Command", {"Command": f"system touch {marker}"}),
            ("Originate", {"Channel": "Local/s@from-carrier-out", "Application": "System",
                           "Data": f"touch {marker}"}),
            ("Getvar", {"Variable": f"SHELL(touch {marker})"}),
            ("ModuleLoad", {"Module": "chan_pjsip.so", "LoadType": "unload"}),
        ]:
            with pytest.raises(AmiRefused) as refused:
                await session.action(name, **headers)
            assert refused.value.message == "Permission denied", name
        # What it is for still works.
        assert (await session.action("Reload", Module="pbx_config.so"))["Response"] == "Success"
    assert not marker.exists()


def test_wrong_ami_secret_is_refused_and_the_error_names_the_setting(live_stack: LiveStack, tmp_path: Path) -> None:
    s = live_stack.stack
    wrong = tmp_path / "secrets.env"
    lines = [line if not line.startswith("AMI_SECRET=") else f"AMI_SECRET={secrets.token_urlsafe(32)}"
             for line in s.secrets_file.read_text().splitlines()]
    fd = os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")

    refused = fairline(live_stack, "dialplan", "publish", "--secrets", str(wrong))

    assert refused.returncode == 2
    assert "refused user 'fairline'" in refused.stderr
    assert "AMI_SECRET" in refused.stderr and str(wrong) in refused.stderr
    assert s.secrets()["AMI_SECRET"] not in refused.stderr + refused.stdout


def test_ami_port_where_nothing_listens_is_named(live_stack: LiveStack) -> None:
    unreachable = fairline(live_stack, "dialplan", "publish", "--ami-port", "1")

    assert unreachable.returncode == 3
    assert "127.0.0.1:1" in unreachable.stderr and "FAIRLINE_AMI_PORT" in unreachable.stderr
