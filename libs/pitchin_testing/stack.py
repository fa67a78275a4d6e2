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

from pitchin_core.auth import issue_key, new_key
from pitchin_core.ingest import Credentials, new_publisher_key, register_publisher
from pitchin_core.signing import new_webhook_secret
from pitchin_testing.ports import free_port
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
)


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
    ) -> None:
        """`ports`: where the first process of each service listens (a service not named is not
        started). `replicas`: processes per service (one unless asked), each with `workers`
        HTTP workers; replica i > 0 listens on `replica_port(name, i)`."""
        self.database_url = database_url
        # The web front serves one federation, calling the services with a staff key of it
        # (issued in `start`, once the services have made their schemas).
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
        if service.name == "web":
            self.prepare_web()
        service.start()
        service.wait_ready(timeout)

    def prepare_web(self) -> None:
        """Issue the web front's federation-staff key (the other services must be up) and hand it over."""
        self.web_key = self.issue_key(self.web_federation_id, None, "federation-staff")
        self.services["web"].env["PITCHIN_FEDERATION_KEY"] = self.web_key

    def stop(self) -> None:
        # Service by service, the web front first; a service's replicas side by side.
        for processes in reversed(list(self._replicas.values())):
            stop_all(processes)

    def issue_key(self, federation_id: str, organisation_id: str | None, role: str, key: str | None = None) -> str:
        """One key, known to every service (each keeps its own copy of the hashes)."""
        key = key or new_key()
        self._in_every_backend(
            lambda conn: issue_key(
                conn, federation_id=federation_id, organisation_id=organisation_id, role=role, key=key
            )
        )
        return key

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
