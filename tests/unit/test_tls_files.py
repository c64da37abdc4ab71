"""The TLS files `raymesh up --tls` makes: who may read them, what they name, when renewed."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mesh.errors import ConfigError
from mesh.security import (
    TLS_DIR_ENV,
    _certificates,
    _tls,
    ensure_certificates,
    read_certificates,
    tls_directory,
    tls_enabled,
)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with a umask that lets everyone read new files: the modes must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in san}


def test_the_directory_is_0700_and_every_file_0600(tmp_path: Path, open_umask: None) -> None:
    files = ensure_certificates(tmp_path / "tls")
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    names = sorted(p.name for p in files.directory.iterdir())
    assert names == ["ca.crt", "ca.key", "node.crt", "node.key"]
    for path in files.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_file_is_0600_before_it_holds_anything_and_under_its_name(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a reader could see: the temporary file just before it takes the real name.
    seen: dict[str, tuple[int, int]] = {}
    rename = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        info = os.stat(src)
        seen[Path(dst).name] = (stat.S_IMODE(info.st_mode), info.st_size)
        rename(src, dst)

    monkeypatch.setattr(_tls.os, "replace", spy)
    ensure_certificates(tmp_path / "tls")
    assert set(seen) == {"ca.crt", "ca.key", "node.crt", "node.key"}
    for name, (mode, size) in seen.items():
        assert mode == 0o600, name
        assert size > 0, name


def test_a_wider_directory_is_narrowed(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    ensure_certificates(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_the_node_certificate_is_signed_by_the_ca_and_names_this_machine(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls", hosts=["10.1.2.3", "head.example"])
    ca, node = _cert(files.ca_cert), _cert(files.cert)
    node.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not node.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = _names(node)
    assert {"127.0.0.1", "::1", "localhost", socket.gethostname(), "head.example"} <= names
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in san.get_values_for_type(x509.IPAddress)
    key = serialization.load_pem_private_key(files.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == node.public_key()


def test_the_environment_names_the_three_files(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    env = files.env()
    assert tls_enabled(env)
    assert env == {
        "RAY_USE_TLS": "1",
        "RAY_TLS_SERVER_CERT": str(files.cert),
        "RAY_TLS_SERVER_KEY": str(files.key),
        "RAY_TLS_CA_CERT": str(files.ca_cert),
    }
    assert not tls_enabled({})
    assert not tls_enabled({"RAY_USE_TLS": "0"})


def test_valid_files_are_reused(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    before = {p.name: p.read_bytes() for p in files.directory.iterdir()}
    ensure_certificates(tmp_path / "tls")
    assert {p.name: p.read_bytes() for p in files.directory.iterdir()} == before


def test_a_new_host_makes_a_new_node_certificate_under_the_same_ca(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    ca_before, node_before = files.ca_cert.read_bytes(), files.cert.read_bytes()
    ensure_certificates(tmp_path / "tls", hosts=["10.9.8.7"])
    assert files.ca_cert.read_bytes() == ca_before
    assert files.cert.read_bytes() != node_before
    assert "10.9.8.7" in _names(_cert(files.cert))


def _ca(files: _tls.TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _cert(files.ca_cert), key


def test_an_expiring_node_certificate_is_renewed(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=364)
    cert, _ = _certificates._make_node(_ca(files), ["127.0.0.1"], long_ago)  # ends tomorrow
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ensure_certificates(tmp_path / "tls")
    renewed = _cert(files.cert)
    assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
        days=300
    )
    renewed.verify_directly_issued_by(_cert(files.ca_cert))


def test_an_expired_ca_is_made_again_with_its_node_certificate(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3651)
    cert, key = _certificates._make_ca(long_ago)
    files.ca_key.write_bytes(_certificates._key_pem(key))
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ensure_certificates(tmp_path / "tls")
    ca = _cert(files.ca_cert)
    assert ca.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
    _cert(files.cert).verify_directly_issued_by(ca)  # the old node certificate went too


def test_a_node_certificate_of_another_ca_is_replaced(tmp_path: Path) -> None:
    ours = ensure_certificates(tmp_path / "ours")
    theirs = ensure_certificates(tmp_path / "theirs")
    ours.cert.write_bytes(theirs.cert.read_bytes())
    ours.key.write_bytes(theirs.key.read_bytes())
    ensure_certificates(tmp_path / "ours")
    _cert(ours.cert).verify_directly_issued_by(_cert(ours.ca_cert))


def test_a_client_reads_a_complete_private_directory(tmp_path: Path) -> None:
    made = ensure_certificates(tmp_path / "tls")
    assert read_certificates(made.directory) == made


def test_a_client_is_told_which_file_is_missing(tmp_path: Path) -> None:
    made = ensure_certificates(tmp_path / "tls")
    made.cert.unlink()
    with pytest.raises(ConfigError, match=r"lacks node\.crt") as caught:
        read_certificates(made.directory)
    assert TLS_DIR_ENV in str(caught.value)  # the hint


def test_a_client_key_others_can_read_is_refused(tmp_path: Path) -> None:
    made = ensure_certificates(tmp_path / "tls")
    made.key.chmod(0o644)
    with pytest.raises(ConfigError, match="0644"):
        read_certificates(made.directory)


def test_the_directory_is_raymesh_tls_dir_else_under_the_home(tmp_path: Path) -> None:
    assert tls_directory(tmp_path, {}) == tmp_path / "tls"
    assert tls_directory(tmp_path, {TLS_DIR_ENV: "/srv/certs"}) == Path("/srv/certs")
