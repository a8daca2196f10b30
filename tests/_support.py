"""Helpers shared by every test folder (imported relatively: ``from .._support import …``).

- ``wait_until``: the one way a test waits for a condition that has no event to wait on
  (state inside trio-websocket, aiortc, a counter). It always runs under the caller's
  ``trio.fail_after``. Prefer an event, a channel or
  ``trio.testing.wait_all_tasks_blocked()`` when one exists; never a bare ``trio.sleep``.
- ``self_signed_cert`` / the ``self_signed`` fixture (tests/conftest.py): the one self-signed
  certificate for ``127.0.0.1`` and ``localhost``, with the server and client TLS contexts that
  go with it.
- ``package_index_env``: the environment for a ``pip`` subprocess, the one exception to the
  network guard (see there).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import trio

__all__ = ["SelfSignedCert", "package_index_env", "self_signed_cert", "wait_until"]


async def wait_until(predicate: Callable[[], object], interval: float = 0.002) -> None:
    """Return once ``predicate()`` is true; the caller bounds it with ``trio.fail_after``.

    Polls every ``interval`` seconds: only for state that offers nothing to wait on.
    """
    while not predicate():  # noqa: ASYNC110 — polling on purpose, see the module docstring
        await trio.sleep(interval)


def package_index_env() -> dict[str, str]:
    """This environment without the subprocess network guard, for ``pip`` only.

    The packaging tests build a wheel (pip fetches the build backend) and install it into a
    new environment with its dependencies from the package index, as a host would: that is
    the install step, from the one registry the machine reaches (SPEC §8), not something
    duplex does. What runs afterwards in that environment is guarded as usual.
    """
    return {name: value for name, value in os.environ.items() if name != "DUPLEX_NETGUARD_LOG"}


class SelfSignedCert(NamedTuple):
    """A self-signed certificate (``cert``, ``key`` PEM paths; unpacks as a pair). A client
    trusts it by trusting ``cert`` itself."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side TLS context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed_cert(directory: Path) -> SelfSignedCert:
    """Write ``cert.pem`` and ``key.pem`` for ``127.0.0.1`` / ``localhost`` into ``directory``.

    It is its own CA (``BasicConstraints(ca=True)``) so that every client trusts it from a
    CA file: Python's ``ssl``, httpx, and Node's ``NODE_EXTRA_CA_CERTS``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "duplex test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSignedCert(cert_path, key_path)
