"""Notifications' use cases, a module per concern: one function per command, one transaction each.

- `messages`: the `Notifications` service object. What a consumed event causes (its read
  models kept, its messages and webhook deliveries staged, once per event), expanding
  event-wide messages, digests, and the one-click unsubscribe its emails link to;
- `deliveries`: the delivery log, dead letters and re-sending;
- `subscriptions`: webhook endpoints;
- `configuration`: template overrides and a federation's channels.

Every use case takes the unit of work first (`Transactions`) and opens its transaction
for the caller's tenant, or for the federation of the event it consumes. Rules live in
`domain/`; storage calls are in `storage.py`.
"""

from __future__ import annotations

from pitchin_core.auth import Caller
from pitchin_core.errors import Forbidden


def require_manager(caller: Caller) -> None:
    """Organisers and federation staff change notifications; other roles only read."""
    if caller.role not in ("organiser", "federation-staff"):
        raise Forbidden(f"A {caller.role} key cannot change notification settings.")


# The role of the platform's own operators: the only one that may point a federation's mail or
# texts at another server (its keys are issued to a federation, like staff keys).
PLATFORM_OPERATOR = "platform-operator"


def require_federation_staff(caller: Caller) -> None:
    """A federation's channels (its SMTP server, SMS account, quiet hours) serve all its organisations."""
    if caller.role not in ("federation-staff", PLATFORM_OPERATOR) or caller.organisation_id is not None:
        raise Forbidden("Only a federation staff key can change the federation's channels.")
