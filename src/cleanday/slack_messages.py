"""What a Slack outbox row says: its fallback text and Block Kit blocks, from its payload.

Each kind of row (`cleanday.reactions.slack`) has one composer. Times are shown in the ledger's
time zone; a gate-failure alert links to the run in the Temporal UI and, when one is known, to
the behavior's Notion ledger row (`notion_row_url`, provided by the Notion side).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

NotionRowUrl = Callable[[str], str | None]

# Slack's limits on a section's text and a header's
_SECTION = 2900
_HEADER = 150


def no_notion_row(behavior: str) -> str | None:
    return None


@dataclass(frozen=True)
class Composer:
    """Composes rows into (text, blocks). `temporal_ui_url` is the Temporal UI's base URL."""

    tz: ZoneInfo
    temporal_ui_url: str
    namespace: str = "default"
    notion_row_url: NotionRowUrl = no_notion_row
    review_url: str | None = None  # the review page (the Pane of Glass), `?week=` added

    def compose(self, kind: str, payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        compose = getattr(self, f"_{kind}", None)
        if compose is None:
            text = f"cleanday: {kind.replace('_', ' ')}"
            return text, [_section(text)]
        result: tuple[str, list[dict[str, Any]]] = compose(payload)
        return result

    # -- helpers ----------------------------------------------------------------------------

    def local(self, at: str | None) -> str:
        if not at:
            return "unknown time"
        when = datetime.fromisoformat(at).astimezone(self.tz)
        return when.strftime("%a %Y-%m-%d %H:%M %Z")

    def run_link(self, workflow_id: str | None) -> str | None:
        if not workflow_id:
            return None
        base = self.temporal_ui_url.rstrip("/")
        return f"{base}/namespaces/{quote(self.namespace)}/workflows/{quote(workflow_id, safe='')}"

    def _links(self, behavior: str, workflow_id: str | None) -> list[str]:
        links = []
        run = self.run_link(workflow_id)
        if run:
            links.append(f"<{run}|run in Temporal>")
        row = self.notion_row_url(behavior)
        if row:
            links.append(f"<{row}|ledger row in Notion>")
        return links

    # -- composers, by kind -----------------------------------------------------------------

    def _gate_failure_alert(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        gates = p.get("gates") or []
        names = ", ".join(g["name"] for g in gates) or "a gate"
        tier = p.get("tier", "?")
        text = f"{p['behavior']}: gate {names} failed at tier {tier} (no tier change)"
        reasons = "\n".join(f"• *{g['name']}*: {g['reason']}" for g in gates)
        return text, self._alert(
            f"Gate failure: {p['behavior']}",
            [
                ("Behavior", p["behavior"]),
                ("Tier change", f"{tier} (unchanged)"),
                ("Gate", names),
                ("When", self.local(p.get("at"))),
                ("Run", f"`{p.get('run_id', '?')}`"),
            ],
            reasons,
            self._links(p["behavior"], p.get("workflow_id")),
        )

    def _demotion_alert(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        change = f"{p['from']} → {p['to']}"
        gate = p.get("gate") or p.get("cause", "?")
        text = f"{p['behavior']} demoted {change}: {gate}: {p.get('reason', '')}".rstrip(": ")
        fields = [
            ("Behavior", p["behavior"]),
            ("Tier change", change),
            ("Gate", gate),
            ("When", self.local(p.get("at"))),
        ]
        if p.get("run_id"):
            fields.append(("Run", f"`{p['run_id']}`"))
        return text, self._alert(
            f"Demoted: {p['behavior']} {change}",
            fields,
            p.get("reason") or "",
            self._links(p["behavior"], p.get("workflow_id")),
        )

    def _promotion_notice(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        change = f"{p['from']} → {p['to']}"
        text = f"{p['behavior']} promoted {change} ({p.get('cause', 'promotion')})"
        return text, [_section(f":arrow_up: *{p['behavior']}* promoted {change}"),
                      _context(self.local(p.get("at")))]  # fmt: skip

    def _quarantine_notice(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text = f"{p['behavior']} quarantined: {p.get('reason', '')}"
        blocks = [_header(f"Quarantined: {p['behavior']}"), _section(p.get("reason") or "")]
        last = p.get("last_failure")
        if last:
            blocks.append(
                _section(f"Last failure {last['on']}: *{last['gate']}*: {last['reason']}")
            )
        blocks.append(_context(self.local(p.get("at"))))
        return text, blocks

    def _review_summary(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        cands = p.get("candidates") or []
        text = f"Sunday review {p['week']}: {len(cands)} candidate(s)"
        lines = [f"• *{c['behavior']}* at {c['tier']}, {c['clean_days']} clean days" for c in cands]
        blocks = [_header(f"Sunday review, week of {p['week']}"),
                  _section("\n".join(lines) or "No candidates this week.")]  # fmt: skip
        if self.review_url:
            link = f"{self.review_url}?week={p['week']}"
            blocks.append(_section(f"<{link}|The week's review: decide Promote or Hold>"))
        return text, blocks

    def _weekly_lines(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        lines = [weekly_line(x) for x in p.get("lines") or []]
        text = "\n".join(lines)
        return text, [_header(f"What ran clean, week of {p['week']}"), _section(text)]

    def _review_closed(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        promoted = ", ".join(p.get("promoted") or []) or "nobody"
        held = ", ".join(p.get("held") or []) or "nobody"
        text = f"Sunday review {p['week']} closed: promoted {promoted}; held {held}"
        return text, [_section(text)]

    def _alert(
        self, title: str, fields: list[tuple[str, str]], reason: str, links: list[str]
    ) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [
            _header(title),
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:1900]} for k, v in fields],
            },
        ]
        if reason:
            blocks.append(_section(reason))
        if links:
            blocks.append(_context("  ·  ".join(links)))
        return blocks


_VERBS = {"succeeded": "published", "proposed": "proposed", "staged": "staged",
          "blocked": "blocked", "expired": "expired"}  # fmt: skip


def weekly_line(x: dict[str, Any]) -> str:
    """ "publish_posts: 21 runs, 21 published. No anomalies." """
    outcomes = x.get("outcomes") or {}
    done = ", ".join(
        f"{outcomes[k]} {_VERBS.get(k, k)}"
        for k in sorted(outcomes, key=lambda k: k != "succeeded")
    )
    n = int(x.get("anomalies") or 0)
    anomalies = "No anomalies." if n == 0 else f"{n} anomal{'y' if n == 1 else 'ies'}."
    return f"{x['behavior']}: {x['runs']} runs, {done}. {anomalies}"


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:_HEADER]}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": (text or " ")[:_SECTION]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:_SECTION]}]}
