import pytest

from pitchin_matching.domain.tokens import InvalidToken, sign, verify

SECRET = "a-test-secret-that-is-long-enough-for-hmac"


def test_a_signed_token_names_its_kind_and_subject() -> None:
    token = sign(SECRET, "offer", "off_abc.1", 2_000)
    claims = verify(SECRET, token, now=1_000)
    assert (claims.kind, claims.subject, claims.expires) == ("offer", "off_abc.1", 2_000)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (sign("another-secret", "offer", "off_1", 2_000), "signature"),
        (sign(SECRET, "offer", "off_1", 2_000).replace("off_1", "off_2"), "signature"),
        (sign(SECRET, "donor", "don_1", 999), "expired"),
        ("v1.admin.x.2000.sig", "not a Pitch In"),
        ("garbage", "not a Pitch In"),
    ],
)
def test_forged_altered_expired_or_foreign_tokens_are_refused(token: str, message: str) -> None:
    with pytest.raises(InvalidToken, match=message):
        verify(SECRET, token, now=1_000)
