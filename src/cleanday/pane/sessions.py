"""Pane of Glass sessions: the operator token exchanged for a signed cookie, a CSRF token per
session, and sign-outs that every service instance honours.

A session is `<id>.<expires>.<signature>`: an HMAC-SHA256 under a key derived from the operator
token, so any instance with the same CLEANDAY_TOKEN accepts it, and rotating the token signs
every session out. The server keeps nothing of a session but its sign-out (`pane_signouts`, in
the ledger database, so a session signed out on one instance is refused by the others).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from cleanday.models import T_PANE_SIGNOUTS

COOKIE = "cleanday_session"
FLASH_COOKIE = "cleanday_flash"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    id: str
    expires: datetime


class Signer:
    """Signs and checks sessions, CSRF tokens and flash messages under one key."""

    def __init__(self, token: str) -> None:
        # a key of its own, never the token itself: a leaked signature tells nothing about it
        self._key = hmac.new(token.encode(), b"cleanday pane sessions v1", hashlib.sha256).digest()

    def _mac(self, purpose: str, text: str) -> str:
        return hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()

    def issue(self, now: datetime, lifetime: timedelta) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), now + lifetime)
        body = f"{session.id}.{int(session.expires.timestamp())}"
        return session, f"{body}.{self._mac('session', body)}"

    def session(self, value: str | None, now: datetime) -> Session | None:
        """The session a cookie value carries; None when it is missing, forged or expired."""
        if not value or value.count(".") != 2:
            return None
        sid, expires_s, signature = value.split(".")
        if not hmac.compare_digest(signature, self._mac("session", f"{sid}.{expires_s}")):
            return None
        try:
            expires = datetime.fromtimestamp(int(expires_s), UTC)
        except (ValueError, OverflowError):
            return None
        return Session(sid, expires) if expires > now else None

    def csrf(self, session: Session) -> str:
        """The CSRF token of a session: what every form it posts carries."""
        return self._mac("csrf", session.id)

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf(session))

    def seal(self, text: str) -> str:
        """`text` with its signature (a flash message the next page shows)."""
        return f"{self._mac('flash', text)}.{text}"

    def unseal(self, value: str | None) -> str | None:
        if not value or "." not in value:
            return None
        signature, text = value.split(".", 1)
        return text if hmac.compare_digest(signature, self._mac("flash", text)) else None


def sign_out(engine: Engine, session: Session, now: datetime) -> None:
    """Refuse `session` from now on, on every instance; forget sign-outs whose session has
    expired anyway."""
    with engine.begin() as conn:
        conn.execute(sa.delete(T_PANE_SIGNOUTS).where(T_PANE_SIGNOUTS.c.expires_at <= now))
        known = conn.execute(
            sa.select(T_PANE_SIGNOUTS.c.session_id).where(
                T_PANE_SIGNOUTS.c.session_id == session.id
            )
        ).first()
        if known is None:
            conn.execute(
                sa.insert(T_PANE_SIGNOUTS).values(
                    session_id=session.id, expires_at=session.expires, signed_out_at=now
                )
            )


def signed_out(engine: Engine, session: Session) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(T_PANE_SIGNOUTS.c.session_id).where(
                T_PANE_SIGNOUTS.c.session_id == session.id
            )
        ).first()
    return found is not None
