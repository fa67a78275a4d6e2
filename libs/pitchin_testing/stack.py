"""The services started as processes against given servers, with API keys issued.

Used by the end-to-end tests, the benchmarks and `make run`, so all three run the system
the same way.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg

from pitchin_core.auth import WEB_FRONT, hash_key, issue_key, new_key
from pitchin_core.contracts.topics import all_topic_names
from pitchin_core.ingest import Credentials, new_publisher_key, register_publisher
from pitchin_core.kafka_admin import ensure_topics
from pitchin_core.kafka_auth import KafkaCredentials, client_options
from pitchin_core.signing import new_webhook_secret
from pitchin_signups.keys import issue_first_key
from pitchin_testing.kafka import admin_credentials
from pitchin_testing.kafka_access import KafkaAccess
from pitchin_testing.ports import free_port
from pitchin_testing.postgres import has_schema, migration_dsn, prepare_service_schemas, service_dsn
from pitchin_testing.processes import BACKENDS, SERVICES, ServiceProcess, service_env, stop_all


def any_free_port(name: str, replica: int) -> int:
    """Where a replica past the first listens when the caller does not say: a free port."""
    return free_port()


# The services' secret settings (each a `*_secret` field, refused unless real outside local use).
SECRET_SETTINGS = (
    "PITCHIN_DONOR_LINK_SECRET",
    "PITCHIN_OFFER_TOKEN_SECRET",
    "PITCHIN_UNSUBSCRIBE_SECRET",
    "PITCHIN_SESSION_SECRET",
    "PITCHIN_PERSON_KEYS_SECRET",
)


# How long every running service may take to learn a key from pitchin.keys.v1.
KEY_LEARNT_WITHIN_SECONDS = 30.0


class Stack:
    def __init__(
        self,
        *,
        kafka_bootstrap: str,
        database_url: str,
        smtp_port: int,
        otlp_endpoint: str | None,
        ports: dict[str, int],
        log_dir: Path,
        environment: str = "test",
        public_base_url: str = "http://127.0.0.1:8000",
        web_federation_id: str = "fed-web",
        workers: Mapping[str, int] | None = None,
        replicas: Mapping[str, int] | None = None,
        replica_port: Callable[[str, int], int] = any_free_port,
        service_secrets: Mapping[str, str] | None = None,
        kafka_admin: KafkaCredentials | None = None,
    ) -> None:
        """`ports`: where the first process of each service listens (a service not named is not
        started). `replicas`: processes per service (one unless asked), each with `workers`
        HTTP workers; replica i > 0 listens on `replica_port(name, i)`."""
        self.database_url = database_url
        # Kafka as its admin (topics, principals, ACLs; the broker of this process unless given):
        # each service then runs as its own principal, each publisher as its own.
        self.kafka_bootstrap = kafka_bootstrap
        self.kafka_admin = kafka_admin or admin_credentials(kafka_bootstrap)
        self._kafka_access: KafkaAccess | None = None
        self._kafka_prepared = False
        self._database_prepared = False
        self.publisher_kafka: dict[str, KafkaCredentials] = {}
        # The web front serves one federation, calling the services with its own `web-front` key
        # of it (issued in `start`, once the services have made their schemas).
        self.web_federation_id = web_federation_id
        self.web_key = ""
        env = service_env(
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            smtp_port=smtp_port,
            otlp_endpoint=otlp_endpoint,
            environment=environment,
            public_base_url=public_base_url,
        )
        # Every secret setting, random for this stack unless given (`make run` keeps its own per
        # state directory): no service runs on a built-in secret, whose tokens anyone could forge.
        given = dict(service_secrets or {})
        for variable in SECRET_SETTINGS:
            env[variable] = given.get(variable) or secrets.token_urlsafe(32)
        # Shared by the web front (reads donors' links) and notifications (mails them).
        self.donor_link_secret = env["PITCHIN_DONOR_LINK_SECRET"]
        wanted = dict(replicas or {})
        if wanted.get("web", 1) != 1:
            raise ValueError("the web front runs as one process: it calls the first replica of each service")
        self._replicas: dict[str, list[ServiceProcess]] = {
            name: [
                ServiceProcess(name, ports[name] if i == 0 else replica_port(name, i), env, log_dir, replica=i)
                for i in range(max(1, wanted.get(name, 1)))
            ]
            for name in SERVICES
            if name in ports
        }
        # The first replica of each service: what `stack["signups"]` and the web front talk to.
        self.services = {name: processes[0] for name, processes in self._replicas.items()}
        # HTTP worker processes per service (PITCHIN_WORKERS); one unless asked for.
        for name, count in (workers or {}).items():
            for service in self._replicas.get(name, ()):
                service.env["PITCHIN_WORKERS"] = str(count)
        # Where the others ask signups for person keys (pitchin_core.personal): its first replica.
        if "signups" in self.services:
            for name, processes in self._replicas.items():
                for service in processes:
                    if name not in ("signups", "web"):
                        service.env["PITCHIN_SIGNUPS_URL"] = self.services["signups"].url
        if "web" in self.services:
            web = self.services["web"]
            web.env.update(
                {f"PITCHIN_{name.upper()}_URL": self.services[name].url for name in BACKENDS if name in self.services}
            )
            web.env.update(
                {
                    "PITCHIN_PUBLIC_BASE_URL": web.url,
                    "PITCHIN_SESSION_SECRET": env["PITCHIN_SESSION_SECRET"],
                    "PITCHIN_FEDERATION_ID": web_federation_id,
                }
            )

    def __getitem__(self, name: str) -> ServiceProcess:
        """The first replica of `name`."""
        return self.services[name]

    def replicas(self, name: str) -> list[ServiceProcess]:
        """Every process of `name`, the first one first."""
        return list(self._replicas[name])

    @property
    def processes(self) -> list[ServiceProcess]:
        """Every process of every service, in starting order."""
        return [service for processes in self._replicas.values() for service in processes]

    def start(self, timeout: float = 120.0) -> None:
        # Started one after another: the first replica of each migrates its schema (the very
        # first creates the topics) before another replica starts on it; on two cores a
        # staggered start is also quicker than a stampede.
        for service in self.processes:
            self.start_one(service, timeout)

    def start_one(self, service: ServiceProcess, timeout: float = 120.0) -> None:
        """Start one process (the web front's key is issued first) and wait until it serves."""
        self.prepare_database()
        if service.name == "web":
            self.prepare_web()
        else:
            self.prepare_kafka()
        service.start()
        service.wait_ready(timeout)

    def prepare_database(self) -> None:
        """Once, before the first service starts: each schema migrated by the owner role, in a step
        of its own (as the chart's Job does), and each service handed its runtime role's DSN: no
        DDL, no other schema, row-level security (pitchin_core.db)."""
        if self._database_prepared:
            return
        asyncio.run(prepare_service_schemas(self.database_url, [n for n in self._replicas if has_schema(n)]))
        for name, processes in self._replicas.items():
            if has_schema(name):
                for service in processes:
                    service.env.update(
                        {
                            "PITCHIN_DATABASE_URL": service_dsn(self.database_url, name),
                            "PITCHIN_MIGRATION_DATABASE_URL": migration_dsn(self.database_url),
                            "PITCHIN_MIGRATE_ON_START": "false",
                        }
                    )
        self._database_prepared = True

    @property
    def kafka_access(self) -> KafkaAccess:
        if self._kafka_access is None:
            self._kafka_access = KafkaAccess(self.kafka_bootstrap, self.kafka_admin)
        return self._kafka_access

    def prepare_kafka(self) -> None:
        """Once, before the first backend starts: the topics (made by the admin, as Strimzi's topic
        operator does: services have no CREATE) and each backend's principal with its ACLs
        (pitchin_core.kafka_auth, from the topic table), handed to its processes."""
        if self._kafka_prepared:
            return
        asyncio.run(ensure_topics(self.kafka_bootstrap, all_topic_names(), credentials=self.kafka_admin))
        for name in (n for n in BACKENDS if n in self._replicas):
            credentials = self.kafka_access.provision_service(name)
            for service in self._replicas[name]:
                service.env.update(
                    {
                        "PITCHIN_KAFKA_USERNAME": credentials.username,
                        "PITCHIN_KAFKA_PASSWORD": credentials.password,
                        "PITCHIN_CREATE_TOPICS": "false",
                    }
                )
        self._kafka_prepared = True

    def publisher_options(self, source: str) -> dict[str, object]:
        """aiokafka keyword arguments for a client logged in as the publisher `source` (registered here)."""
        return client_options(self.kafka_bootstrap, self.publisher_kafka[source])

    def remove_publisher(self, source: str) -> None:
        """Cut the publisher off Kafka: ACL, credential and topic (kafka_access.remove_publisher)."""
        self.kafka_access.remove_publisher(source)
        self.publisher_kafka.pop(source, None)

    def prepare_web(self) -> None:
        """Issue the web front's own narrow key (role `web-front`: published events, sign-ups, RSVPs;
        a person's things only with their signed link) once the other services are up, and hand it over."""
        self.web_key = self.issue_key(self.web_federation_id, None, WEB_FRONT)
        self.services["web"].env["PITCHIN_FEDERATION_KEY"] = self.web_key

    def stop(self) -> None:
        # Service by service, the web front first; a service's replicas side by side.
        for processes in reversed(list(self._replicas.values())):
            stop_all(processes)
        # librdkafka's admin client reconnects (and says so on stderr) once the broker is gone:
        # dropped here, its handle is destroyed before the broker stops.
        self._kafka_access = None

    def issue_key(self, federation_id: str, organisation_id: str | None, role: str, key: str | None = None) -> str:
        """One key, issued the way signups issues keys (its table and outbox, `pitchin_signups.keys`):
        the other running services learn it from pitchin.keys.v1, and this waits until each has,
        so the key works everywhere when it is returned."""
        key = key or new_key()
        if "signups" not in self.services:
            # Nobody to publish keys in a stack without signups: each running backend gets its copy.
            self._in_every_backend(
                lambda conn: issue_key(
                    conn, federation_id=federation_id, organisation_id=organisation_id, role=role, key=key
                )
            )
            return key
        asyncio.run(self._issue_and_wait(federation_id, organisation_id, role, key))
        return key

    async def _issue_and_wait(self, federation_id: str, organisation_id: str | None, role: str, key: str) -> None:
        await issue_first_key(
            self.database_url,
            federation_id=federation_id,
            organisation_id=organisation_id,
            role=role,
            label=f"{role} key from the local stack",
            key=key,
        )
        waiting = [name for name in BACKENDS if name in self.services and name != "signups"]
        conn = await asyncpg.connect(self.database_url)
        try:
            async with asyncio.timeout(KEY_LEARNT_WITHIN_SECONDS):
                while waiting:
                    waiting = [
                        schema
                        for schema in waiting
                        if not await conn.fetchval(
                            f'SELECT 1 FROM "{schema}".api_keys WHERE key_hash = $1', hash_key(key)
                        )
                    ]
                    if waiting:
                        await asyncio.sleep(0.02)
        except TimeoutError:
            raise TimeoutError(
                f"{', '.join(waiting)} did not learn the key within {KEY_LEARNT_WITHIN_SECONDS} s"
            ) from None
        finally:
            await conn.close()

    def register_publisher(
        self,
        source: str,
        federation_id: str,
        organisations: tuple[str, ...] = (),
        *,
        any_organisation: bool = False,
        rate_per_second: float = 500.0,
        burst: int = 1000,
    ) -> Credentials:
        """A publishing system (docs/ingest.md), known to every service; its key and secret are returned once."""
        key, secret = new_publisher_key(), new_webhook_secret()
        self._in_every_backend(
            lambda conn: register_publisher(
                conn,
                source=source,
                federation_id=federation_id,
                organisations=organisations,
                any_organisation=any_organisation,
                key=key,
                signing_secret=secret,
                rate_per_second=rate_per_second,
                burst=burst,
            )
        )
        # Its Kafka door: a principal that may write its own topic only (`publisher_options`).
        self.publisher_kafka[source] = self.kafka_access.provision_publisher(source)
        return Credentials(source, key, secret)

    def _in_every_backend(self, write: Callable[[asyncpg.Connection], Awaitable[object]]) -> None:
        """Make the same write in each running backend's schema: every service keeps its own copy."""

        async def run() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                # The services this stack runs (a test may start only some of them).
                for schema in (name for name in BACKENDS if name in self.services):
                    await conn.execute(f'SET search_path TO "{schema}"')
                    await write(conn)
            finally:
                await conn.close()

        asyncio.run(run())
