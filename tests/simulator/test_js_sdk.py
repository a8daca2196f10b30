"""The official ``openai`` JS SDK (npm) against the simulator over WebSocket.

``tests/simulator/js/realtime_ws.mjs`` mints an ephemeral key with
``client.realtime.clientSecrets.create`` and runs a text turn with ``OpenAIRealtimeWS``. The SDK
only speaks ``wss://``, so the simulator serves TLS with a self-signed certificate the script
trusts (``NODE_EXTRA_CA_CERTS``). Skipped unless ``node`` is installed and
``npm ci --prefix tests/simulator/js`` has been run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import trio

from duplex.simulator import SimulatorConfig, open_simulator

from .._support import SelfSignedCert

JS = Path(__file__).with_name("js")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (JS / "node_modules" / "openai").is_dir(),
    reason="needs node and `npm ci --prefix tests/simulator/js`",
)


async def test_openai_js_sdk_websocket_turn_with_a_minted_key(
    self_signed: SelfSignedCert,
) -> None:
    assert NODE is not None
    cert, key = self_signed
    config = SimulatorConfig(api_key="sk-backend", tls_certfile=str(cert), tls_keyfile=str(key))
    with trio.fail_after(60):
        async with open_simulator(config) as sim:
            assert sim.base_url is not None
            env = {
                **os.environ,
                "SIM_BASE_URL": sim.base_url,
                "SIM_API_KEY": "sk-backend",
                "NODE_EXTRA_CA_CERTS": str(cert),
            }
            env.pop("OPENAI_API_KEY", None)
            env.pop("OPENAI_BASE_URL", None)
            done = await trio.run_process(
                [NODE, str(JS / "realtime_ws.mjs")],
                cwd=JS,
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert re.fullmatch(r"ek_[0-9a-f]{32}", result["secret"])
    assert result["secretSession"]["instructions"] == "Be brief."
    assert result["text"] == "You said: hello from node."
    types = result["types"]
    assert types[0] == "session.created"
    assert "session.updated" in types
    assert types[-1] == "response.done"
