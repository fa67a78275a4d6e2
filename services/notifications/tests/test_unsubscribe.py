from pitchin_notifications.domain.unsubscribe import Unsubscribe, address_hash, make_token, read_token

KEY = b"k" * 32


def test_a_token_names_the_federation_address_and_channel_and_cannot_be_forged() -> None:
    who = Unsubscribe("fed-wm", "Farra@Example.org", "email")
    token = make_token(KEY, who)
    assert read_token(KEY, token) == Unsubscribe("fed-wm", "farra@example.org", "email")
    assert read_token(b"other" * 8, token) is None
    _body, mac = token.split(".")
    forged = make_token(KEY, Unsubscribe("fed-other", "farra@example.org", "email")).split(".")[0]
    assert read_token(KEY, f"{forged}.{mac}") is None
    assert read_token(KEY, "not-a-token") is None
    assert "=" not in token and "+" not in token and "/" not in token


def test_suppressions_keep_only_a_hash_that_ignores_case() -> None:
    assert address_hash(" Farra@Example.org") == address_hash("farra@example.org")
    assert "farra" not in address_hash("farra@example.org")
