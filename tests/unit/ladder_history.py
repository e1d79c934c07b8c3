"""A small builder of ledger histories for the ladder tests: days and hours in local time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from itertools import count
from zoneinfo import ZoneInfo

from cleanday.clock import day_start
from cleanday.domain import BehaviorState, Entry, EntryKind, Policy, Tier
from cleanday.ladder import compute_state

BEHAVIOR = "seo_audit"
MONDAY = date(2026, 1, 5)  # a Monday; histories start on it unless a test says otherwise


def at(d: date, hour: int = 12, minute: int = 0, tz: str = "UTC", fold: int = 0) -> datetime:
    """A wall-clock time on local day `d` in `tz`, as an aware datetime."""
    return datetime.combine(d, time(hour, minute), tzinfo=ZoneInfo(tz)).replace(fold=fold)


def sunday_of(d: date) -> date:
    return d + timedelta(days=6 - d.weekday())


class History:
    """Entries for one behavior, written the way the ledger service would write them."""

    def __init__(
        self,
        policy: Policy | None = None,
        registered: date | datetime = MONDAY,
        behavior: str = BEHAVIOR,
    ) -> None:
        self.policy = policy or Policy()
        self.behavior = behavior
        self.entries: list[Entry] = []
        self._ids = count(1)
        when = registered if isinstance(registered, datetime) else self.local(registered, 0, 5)
        self.add(EntryKind.REGISTERED, when, "registered:1", {"version": 1})

    @property
    def tz(self) -> str:
        return self.policy.timezone

    def local(self, d: date, hour: int = 12, minute: int = 0) -> datetime:
        return at(d, hour, minute, self.tz)

    def add(self, kind: EntryKind, when: datetime, key: str, data: dict[str, object]) -> Entry:
        entry = Entry(self.behavior, kind, when, key, dict(data))
        self.entries.append(entry)
        return entry

    def run(
        self,
        when: date | datetime,
        *,
        failed: Iterable[str] = (),
        anomalies: Iterable[str] = (),
        run_id: str | None = None,
        started: datetime | None = None,
    ) -> Entry:
        """A finished run; `when` is its finish time (a date means noon local)."""
        finished = when if isinstance(when, datetime) else self.local(when)
        run_id = run_id or f"run-{next(self._ids)}"
        gates = [{"name": "schema", "passed": True, "reason": ""}]
        gates += [{"name": g, "passed": False, "reason": f"{g} said no"} for g in failed]
        return self.add(
            EntryKind.RUN_REPORTED,
            finished,
            f"run:{run_id}",
            {
                "run_id": run_id,
                "started_at": (started or finished - timedelta(minutes=5)).isoformat(),
                "outcome": "failed" if failed else "succeeded",
                "gates": gates,
                "anomalies": [{"name": a, "detail": "3.4x median"} for a in anomalies],
                "cost_usd": 0.01,
            },
        )

    def clean_runs(self, first: date, days: int) -> date:
        """One clean run at noon on each of `days` days from `first`; returns the day after."""
        for i in range(days):
            self.run(first + timedelta(days=i))
        return first + timedelta(days=days)

    def override(
        self, when: date | datetime, kind: str = "rejected", tier: Tier | None = None
    ) -> Entry:
        moment = when if isinstance(when, datetime) else self.local(when, 15)
        data: dict[str, object] = {"reason": "operator edited the draft", "kind": kind}
        if tier is not None:
            data["tier"] = tier.value
        return self.add(EntryKind.OVERRIDE, moment, f"override:{next(self._ids)}", data)

    def decide(self, sunday: date, decision: str, when: datetime | None = None) -> Entry:
        moment = when or self.local(sunday, 10)
        return self.add(
            EntryKind.DECISION,
            moment,
            f"decision:{sunday.isoformat()}:{next(self._ids)}",
            {"week": sunday.isoformat(), "decision": decision, "by": "operator"},
        )

    def status(self, kind: EntryKind, when: date | datetime) -> Entry:
        moment = when if isinstance(when, datetime) else self.local(when, 18)
        return self.add(kind, moment, f"{kind.value}:{next(self._ids)}", {"by": "operator"})

    def state(self, now: date | datetime) -> BehaviorState:
        """The state at `now`; a date means the first instant of that local day."""
        moment = now if isinstance(now, datetime) else day_start(now, self.tz)
        return compute_state(self.behavior, self.entries, self.policy, moment)
