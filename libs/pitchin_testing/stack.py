"""The four services started as processes against given servers, with API keys issued.

Used by the end-to-end tests, the benchmarks and `make run`, so all three run the system
the same way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from pitchin_core.auth import issue_key, new_key
from pitchin_testing.processes import SERVICES, ServiceProcess, service_env


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
    ) -> None:
        self.database_url = database_url
        env = service_env(
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            smtp_port=smtp_port,
            otlp_endpoint=otlp_endpoint,
            environment=environment,
            public_base_url=public_base_url,
        )
        self.services = {name: ServiceProcess(name, ports[name], env, log_dir) for name in SERVICES}

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self, timeout: float = 120.0) -> None:
        # Started one after another: each migrates its own schema and the first creates
        # the topics; on two cores a staggered start is also quicker than a stampede.
        for service in self.services.values():
            service.start()
            service.wait_ready(timeout)

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def issue_key(self, federation_id: str, organisation_id: str | None, role: str, key: str | None = None) -> str:
        """One key, known to every service (each keeps its own copy of the hashes)."""
        key = key or new_key()

        async def issue() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                for schema in SERVICES:
                    await conn.execute(f'SET search_path TO "{schema}"')
                    await issue_key(
                        conn, federation_id=federation_id, organisation_id=organisation_id, role=role, key=key
                    )
            finally:
                await conn.close()

        asyncio.run(issue())
        return key
