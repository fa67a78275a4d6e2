"""Typed configuration from the environment (12-factor): the same image everywhere."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password"}
LOCAL_SECRET_PREFIX = "local-only-"
MIN_SECRET_LENGTH = 32


def local_secret(name: str) -> str:
    """The default of a `*_secret` setting: fine on a laptop, refused in staging and production."""
    return f"{LOCAL_SECRET_PREFIX}{name}-not-for-production"


def refuse_weak_secrets(environment: str, secrets: dict[str, str]) -> None:
    """The one rule for every secret setting: unless `PITCHIN_ENVIRONMENT=local` is set, a real
    secret of 32+ characters (the built-in ones are public: tokens forged with them would work).

    `secrets` maps each setting's environment variable to its value; the error names the variable.
    """
    if environment == "local":
        return
    for variable, value in secrets.items():
        if (
            value.startswith(LOCAL_SECRET_PREFIX)
            or value.lower() in _PLACEHOLDER_SECRETS
            or len(value) < MIN_SECRET_LENGTH
        ):
            raise ValueError(
                f"{variable} must be a real secret of {MIN_SECRET_LENGTH}+ characters"
                " (built-in ones are taken only with PITCHIN_ENVIRONMENT=local)"
            )


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PITCHIN_", extra="ignore")

    service_name: str = "pitchin"
    service_version: str = "0.1.0"
    # Fails closed: production unless told otherwise, so no built-in secret is taken by accident.
    environment: Literal["local", "test", "staging", "production"] = "production"
    kafka_bootstrap: str = "127.0.0.1:19092"
    # The service's own SCRAM-SHA-512 principal (pitchin_core.kafka_auth); empty: PLAINTEXT, which
    # no broker Pitch In starts accepts. The password follows the `*_secret` rule below.
    kafka_username: str = ""
    kafka_password: str = Field(default="", repr=False)
    # The service's runtime role: DML on its own schema, bound by row-level security (pitchin_core.db).
    database_url: str = "postgresql://postgres@127.0.0.1:15432/pitchin"
    # The schema owner's, for the migration step only (`python -m pitchin_core.migrate`, the
    # chart's Job); empty: the migrations run with `database_url`.
    migration_database_url: str = ""
    # Each service owns one schema; no service reads another's tables.
    database_schema: str = ""
    database_pool_size: int = Field(default=10, ge=1, le=200)
    migrate_on_start: bool = True
    create_topics: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8000"
    otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP base URL, e.g. http://collector:4318")
    # Head sampling: this share of traces is exported whole; of the others only the spans
    # that failed (pitchin_core.telemetry.KeepErrors). Production runs e.g. 0.1, tests 1.0.
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # A span per SQL statement finds a slow query but costs about a fifth of a request's
    # CPU, and makes a root span of every background poll: off unless asked for.
    trace_database: bool = False
    # Processes serving one service's HTTP (uvicorn workers); the pool is divided among them.
    workers: int = Field(default=1, ge=1, le=64)
    # How often a relay looks for rows other processes committed (its own wake it at once).
    outbox_poll_seconds: float = Field(default=0.2, gt=0, le=60)
    log_level: str = "INFO"
    # The largest request body a route takes unless it says otherwise (pitchin_core.gate).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_heartbeat_ms: int = Field(default=3000, ge=100)
    # Records a consumer takes at once (one transaction, one offset commit each batch), and how
    # long an idle consumer waits on Kafka per poll: a record ends the wait the moment it is
    # fetched, so this costs no latency; it bounds how often an idle consumer wakes.
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_batch_timeout_ms: int = Field(default=500, ge=1, le=10_000)

    @property
    def db_schema(self) -> str:
        return self.database_schema or self.service_name

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment in {"staging", "production"}:
            password = self.database_url.split("://", 1)[-1].split("@", 1)[0].partition(":")[2]
            if password.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError("PITCHIN_DATABASE_URL carries a placeholder password outside local development")
        # Every field named `*_secret`, in this class or a service's subclass, follows one rule.
        refuse_weak_secrets(
            self.environment,
            {
                f"PITCHIN_{name.upper()}": value
                for name, value in self.__dict__.items()
                if name.endswith("_secret") and isinstance(value, str)
            }
            | ({"PITCHIN_KAFKA_PASSWORD": self.kafka_password} if self.kafka_username else {}),
        )
        return self
