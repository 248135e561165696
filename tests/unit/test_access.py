"""API keys: how they are read, how a request's credentials are found and matched."""
from __future__ import annotations

import pytest

from app.api.access import Keys, KeysError, credentials, is_loopback, parse_keys


def test_keys_are_name_secret_pairs_by_comma_or_line_and_comment_lines_are_skipped():
    keys = parse_keys("# rotated 2026-12, bob:leaked\nalice:one, carol:two\n\n  # indented, x:y\n", "f")
    assert [(k.name, k.secret) for k in keys] == [("alice", b"one"), ("carol", b"two")]


@pytest.mark.parametrize("text", ["alice", "alice:", ":secret", "alice:one,alice:two"])
def test_a_broken_entry_is_refused_with_where_it_is(text):
    with pytest.raises(KeysError, match="IMGSRV_API_KEYS"):
        parse_keys(text, "IMGSRV_API_KEYS")


def test_a_request_is_identified_by_its_secret_and_only_names_are_kept(tmp_path):
    file = tmp_path / "keys"
    file.write_text("bob:from-the-file\n")
    keys = Keys("alice:inline-secret", file, admins="bob")
    assert keys.identify("inline-secret") == "alice" and keys.identify("from-the-file") == "bob"
    assert keys.identify("wrong") is None and keys.identify("") is None
    assert keys.is_admin("bob") and not keys.is_admin("alice") and not keys.is_admin(None)
    file.write_text("bob:rotated\n")
    assert keys.reload() == 2
    assert keys.identify("from-the-file") is None and keys.identify("rotated") == "bob"
    file.write_text("bob\n")
    with pytest.raises(KeysError):
        keys.reload()
    assert keys.identify("rotated") == "bob", "a broken file keeps the keys in force"


@pytest.mark.parametrize("headers, secret, problem", [
    ({b"authorization": b"Bearer abc"}, "abc", False),
    ({b"authorization": b"bearer  abc "}, "abc", False),
    ({b"x-api-key": b"abc"}, "abc", False),
    ({b"authorization": b"Basic YTpi"}, None, True),
    ({b"authorization": b"Bearer"}, None, True),
    ({}, None, True),
])
def test_credentials_come_from_either_header(headers, secret, problem):
    found, why = credentials(headers)
    assert found == secret and bool(why) == problem


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "imgsrv.example", "::"))


def test_a_keys_file_emptied_since_the_start_revokes_every_key(tmp_path):
    file = tmp_path / "keys"
    file.write_text("alice:one\n")
    keys = Keys(None, file)
    file.write_text("# all revoked\n")
    assert keys.reload() == 0
    assert keys.enabled and keys.identify("one") is None
    file.write_text("")
    with pytest.raises(KeysError):
        Keys(None, file)  # a service that would start with no key at all is refused
