from pitchin_matching.domain.assignment import Demand, assign

NOW = 1_000_000.0
DAY = 86_400.0


def demand(need_id: str, urgency: str, candidates: list[tuple[str, float]], places: int = 1, days: float = 7) -> Demand:
    return Demand(need_id, urgency, NOW + days * DAY, places, candidates)


def test_the_most_urgent_need_gets_the_donor_it_cannot_do_without() -> None:
    # Greedy in arrival order would give "ana" to the normal need (her best score) and leave
    # the critical one, which only she can do, uncovered.
    demands = [
        demand("normal", "normal", [("ana", 90.0), ("ben", 40.0)]),
        demand("critical", "critical", [("ana", 50.0)]),
    ]
    plan = assign(demands, {"ana": 1, "ben": 1}, NOW)
    assert plan == {"normal": ["ben"], "critical": ["ana"]}


def test_within_a_tier_the_matching_covers_as_many_needs_as_possible() -> None:
    demands = [
        demand("a", "high", [("x", 99.0), ("y", 98.0)]),
        demand("b", "high", [("x", 10.0)]),
    ]
    plan = assign(demands, {"x": 1, "y": 1}, NOW)
    assert plan == {"a": ["y"], "b": ["x"]}


def test_no_donor_is_given_more_than_their_spare_capacity_nor_twice_the_same_need() -> None:
    demands = [
        demand("n1", "normal", [("x", 90.0)], places=3),
        demand("n2", "normal", [("x", 80.0)]),
        demand("n3", "normal", [("x", 70.0)]),
    ]
    plan = assign(demands, {"x": 2}, NOW)
    assert plan["n1"] == ["x"], "one donor fills one place of a need, however many it wants"
    assert sum(len(v) for v in plan.values()) == 2
    assert assign(demands, {"x": 0}, NOW) == {"n1": [], "n2": [], "n3": []}


def test_asks_are_spread_before_anyone_is_asked_twice() -> None:
    demands = [
        demand("n1", "normal", [("star", 95.0), ("other", 60.0)]),
        demand("n2", "normal", [("star", 94.0), ("other", 61.0)]),
    ]
    plan = assign(demands, {"star": 2, "other": 2}, NOW)
    assert sorted(plan["n1"] + plan["n2"]) == ["other", "star"]


def test_nearer_deadlines_win_a_tie() -> None:
    demands = [
        demand("later", "normal", [("x", 50.0)], days=30),
        demand("sooner", "normal", [("x", 50.0)], days=1),
    ]
    assert assign(demands, {"x": 1}, NOW) == {"later": [], "sooner": ["x"]}


def test_places_wanted_are_all_filled_when_donors_allow() -> None:
    candidates = [(f"d{i}", 100.0 - i) for i in range(10)]
    plan = assign([demand("big", "critical", candidates, places=4)], {f"d{i}": 1 for i in range(10)}, NOW)
    assert plan["big"] == ["d0", "d1", "d2", "d3"] or sorted(plan["big"]) == ["d0", "d1", "d2", "d3"]
