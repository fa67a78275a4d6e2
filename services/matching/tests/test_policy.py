from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pitchin_matching.domain.policy import PolicyDocument

WINTER = datetime(2026, 1, 14, tzinfo=UTC)


def test_the_default_policy_works_london_office_hours() -> None:
    policy = PolicyDocument().to_policy(WINTER)
    assert policy.max_open_per_donor == 2
    assert policy.collaboration_utc[0] == (9 * 60, 17 * 60)
    assert len(policy.collaboration_utc) == 5
    assert policy.weights.skills == 30.0


def test_a_federation_overrides_some_weights_and_keeps_the_rest() -> None:
    policy = PolicyDocument.model_validate({"weights": {"causes": 25}, "offer_ttl_seconds": 5}).to_policy(WINTER)
    assert policy.weights.causes == 25.0 and policy.weights.language == 15.0
    assert policy.offer_ttl_seconds == 5


@pytest.mark.parametrize(
    "body",
    [{"weights": {"charm": 3}}, {"fan_out": {"whenever": 2}}, {"offer_ttl_seconds": 0}, {"max_open_per_donor": 0}],
)
def test_unknown_or_out_of_range_settings_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PolicyDocument.model_validate(body)
