"""Apply a service's migrations and exit: `python -m pitchin_core.migrate <service>`.

The Helm chart runs this as a Job before an install or upgrade, as the schema owner
(PITCHIN_MIGRATION_DATABASE_URL); the services run as roles without DDL rights. The test
stack and `make run` migrate the same way before starting services (pitchin_testing.stack).
"""

from __future__ import annotations

import argparse
import asyncio
from importlib.resources import files

from pitchin_core.db import migrate
from pitchin_core.settings import ServiceSettings

# Every service with a schema of its own (the web front keeps its sessions in one).
SERVICES = ("signups", "matching", "notifications", "scheduling", "web")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=[*SERVICES, "all"])
    args = parser.parse_args(argv)
    for service in SERVICES if args.service == "all" else (args.service,):
        settings = ServiceSettings(service_name=service)
        applied = asyncio.run(
            migrate(
                settings.migration_database_url or settings.database_url,
                settings.db_schema,
                files(f"pitchin_{service}") / "migrations",
            )
        )
        print(f"{service}: {len(applied)} migration(s) applied" + (f": {', '.join(applied)}" if applied else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
