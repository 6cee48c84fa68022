"""Lab certificates, made with the real ``openssl`` CLI (EC P-256 keys: fast to generate).

Two authorities: the lab CA (stands in for balena's CAs; devices trust it) and a foreign
"inspection" CA that the DPI interceptor signs with (devices do not trust it). All certificates
are valid from now for 30 days, so a device whose clock is years behind sees them as not yet valid.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netns import run

LAB_CA_SUBJECT = "/C=US/O=orch lab/OU=balenaCloud stand-in/CN=orch-lab-rootCA"
DPI_CA_SUBJECT = "/C=IE/O=Inspecting Firewall Ltd/OU=IT/CN=LAB-TLS-PROTECT"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pair:
    """A certificate and its key (PEM files)."""

    cert: Path
    key: Path


def make_ca(directory: Path, name: str, subject: str) -> Pair:
    """A self-signed CA."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    run(
        [
            "openssl",
            "req",
            "-x509",
            *_EC,
            "-keyout",
            str(pair.key),
            "-out",
            str(pair.cert),
            "-days",
            "30",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )
    return pair


def issue(ca: Pair, directory: Path, name: str, common_name: str, usage: str) -> Pair:
    """A leaf signed by ``ca``; ``usage`` is ``serverAuth`` or ``clientAuth``."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    extensions = [
        "-addext",
        f"extendedKeyUsage={usage}",
        "-addext",
        "keyUsage=critical,digitalSignature,keyAgreement",
    ]
    if usage == "serverAuth":
        extensions += ["-addext", f"subjectAltName=DNS:{common_name}"]
    run(
        [
            "openssl",
            "req",
            "-new",
            *_EC,
            "-keyout",
            str(pair.key),
            "-out",
            str(csr),
            "-subj",
            f"/O=orch lab/CN={common_name}",
            *extensions,
        ]
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca.cert),
            "-CAkey",
            str(ca.key),
            "-set_serial",
            str(secrets.randbits(62)),
            "-days",
            "30",
            "-copy_extensions",
            "copy",
            "-out",
            str(pair.cert),
        ]
    )
    return pair
