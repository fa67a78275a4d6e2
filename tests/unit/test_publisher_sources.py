"""What the staff API takes as a publisher's source: a URI-reference naming one system."""

import pytest
from pydantic import TypeAdapter, ValidationError

from pitchin_core.contracts.publishers import Source

SOURCE: TypeAdapter[str] = TypeAdapter(Source)


@pytest.mark.parametrize(
    "source",
    ["/crm/unite-west-midlands", "/forms/sign-up%20page", "https://crm.example/unite?list=7", "urn:uuid:6e8bc430"],
)
def test_paths_and_absolute_uris_are_sources(source: str) -> None:
    assert SOURCE.validate_python(source) == source


@pytest.mark.parametrize(
    "source",
    ["", "/", "crm/unite", "crm unite", "/crm/a b", "/crm/café", "/crm/%zz", "/pitchin/signups", "/" + "a" * 255],
)
def test_anything_else_is_refused(source: str) -> None:
    with pytest.raises(ValidationError):
        SOURCE.validate_python(source)
