"""A publishing system's registration (docs/ingest.md), as federation staff's API accepts it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pitchin_core.contracts.common import Identifier
from pitchin_core.contracts.publishers import Source


class PublisherRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Source = Field(description="Its CloudEvents source, a URI-reference: /<system>/<name> or an absolute URI")
    label: str = Field(min_length=1, max_length=200, description="What staff call it, e.g. 'Unite West Midlands CRM'")
    any_organisation: bool = Field(default=False, description="May publish for every member organisation")
    organisations: list[Identifier] = Field(
        default_factory=list,
        max_length=500,
        validate_default=True,
        description="The member organisations it publishes for (unless any_organisation)",
    )
    rate_per_second: float = Field(default=50.0, gt=0, le=1_000_000, allow_inf_nan=False)
    burst: int = Field(default=200, ge=1, le=1_000_000, description="Events at once; also the largest batch")

    @field_validator("organisations")
    @classmethod
    def _some_organisation(cls, organisations: list[str], info: ValidationInfo) -> list[str]:
        if not organisations and not info.data.get("any_organisation", False):
            raise ValueError("name at least one member organisation, or set any_organisation")
        return list(dict.fromkeys(organisations))
