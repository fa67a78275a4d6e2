"""Lending between member organisations: who may be asked for whose need, by the donor's consent.

A donor chooses at sign-up, and may change later, which member organisations may ask them
(`pitchin_core.contracts.donors.Lending`): only their home organisation (the default, when
they said nothing), their home and organisations they name, or any organisation of the
federation. The rule for one donor is the contract's `may_ask`, shared with signups (which
shows an organiser a candidate's profile only within it); this module is the same rule over
the index's columns, for every place matching chooses candidates (ranking, offers, the
organiser's candidate list, escalation and reclaiming all go through `ranking.hard_filter`).

- A need of organisation X: donors whose home is X, donors with no home organisation (signed
  up at federation level: their home is the federation), donors who allow the whole
  federation, and donors who named X.
- A need with no organisation (the federation's own): donors with no home organisation and
  donors who allow the whole federation. A donor who named organisations named member
  organisations, and the federation itself is none of them.
- "Lent" donors are the ones asked through their consent, not their home: an escalating need
  asks its own organisation's donors first and the lent ones only from a later step
  (`Escalation.lent_from_step`), so each organisation's own people are asked before it
  borrows another's.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from pitchin_core.contracts.donors import Lending, LendingScope, may_ask

# The index's codes: a donor's home organisation (NO_HOME for a federation-level donor), and
# a need's organisation (FEDERATION_NEED for a need of the federation itself).
NO_HOME = -1
FEDERATION_NEED = -1
SCOPE_CODES = {LendingScope.home.value: 0, LendingScope.named.value: 1, LendingScope.federation.value: 2}
HOME, NAMED, FEDERATION = 0, 1, 2

__all__ = ["FEDERATION_NEED", "NO_HOME", "Lending", "askable", "is_lent", "may_ask", "scope_code"]


def scope_code(scope: str) -> int:
    """A lending scope's code in the index; an unknown one (a newer producer) is the narrowest."""
    return SCOPE_CODES.get(scope, HOME)


def askable(
    home: npt.NDArray[np.int32],
    scope: npt.NDArray[np.int8],
    rows: npt.NDArray[np.int64],
    naming: Collection[int],
    organisation: int,
    *,
    lent: bool = True,
) -> npt.NDArray[np.bool_]:
    """For each of `rows`, whether a need of `organisation` may ask that donor (`may_ask`, vectorised).

    `home` and `scope` are the index's columns; `naming` the rows of the donors who named
    `organisation` (empty for a federation need). Without `lent`, only the organisation's own
    donors and the federation-level ones: the first waves of an escalating need.
    """
    homes = home[rows]
    allowed: npt.NDArray[np.bool_] = homes == NO_HOME
    if organisation != FEDERATION_NEED:
        allowed |= homes == organisation
    if not lent:
        return allowed
    allowed |= scope[rows] == FEDERATION
    if organisation != FEDERATION_NEED and naming:
        named: Any = np.fromiter(naming, dtype=np.int64, count=len(naming))
        allowed |= (scope[rows] == NAMED) & np.isin(rows, named)
    return allowed


def is_lent(home_organisation: str | None, asking_organisation: str | None) -> bool:
    """Whether a donor asked for a need is lent to it: their home is another member organisation."""
    return home_organisation is not None and home_organisation != asking_organisation
