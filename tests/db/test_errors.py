"""An unusable database gives one clear line without the password, never a traceback."""

from __future__ import annotations

import socket

import pytest

from orchestrator.errors import StoreError
from orchestrator.store import Store, normalise_url

PASSWORD = "s3cr3t-Pa55"


def _closed_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_one_line(error: StoreError) -> str:
    message = str(error)
    assert message and "\n" not in message
    assert PASSWORD not in message
    assert error.exit_code == 3
    return message


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgres"])
def test_unreachable_postgresql(scheme: str) -> None:
    port = _closed_loopback_port()
    with pytest.raises(StoreError) as caught:
        Store.open(f"{scheme}://orch:{PASSWORD}@127.0.0.1:{port}/orch")
    message = _assert_one_line(caught.value)
    assert f"postgresql+psycopg://orch:***@127.0.0.1:{port}/orch" in message
    assert "refused" in message.lower()


def test_wrong_postgresql_password_hides_it(pg_url: str) -> None:
    url = normalise_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    message = _assert_one_line(caught.value)
    assert "password authentication failed" in message


def test_sqlite_in_a_directory_that_cannot_exist(tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(StoreError) as caught:
        Store.open(f"sqlite:///{blocker / 'sub' / 'orch.sqlite3'}")
    message = _assert_one_line(caught.value)
    assert "cannot create directory" in message and str(blocker / "sub") in message


def test_sqlite_under_proc_is_refused() -> None:
    with pytest.raises(StoreError) as caught:
        Store.open("sqlite:////proc/orch-no-such-dir/orch.sqlite3")
    _assert_one_line(caught.value)


def test_sqlite_file_that_is_not_a_database(tmp_path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite\n" * 200)
    with pytest.raises(StoreError) as caught:
        Store.open(f"sqlite:///{path}")
    assert "not a database" in _assert_one_line(caught.value)
    assert path.read_bytes() == b"this is not sqlite\n" * 200


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid database URL"),
        (f"mysql://root:{PASSWORD}@127.0.0.1/orch", "unsupported database 'mysql'"),
    ],
)
def test_bad_urls(url: str, expected: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    assert expected in _assert_one_line(caught.value)


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
