"""The transports a Work Order may list in `transports.order`, one module each.

A new transport is a module here with a `Transport` subclass (`base.py` says what it must do),
a line in `TRANSPORTS`, and its name in `cleanday.workorder.Transports`.
"""

from cleanday.router.transports.anthropic import Anthropic
from cleanday.router.transports.base import Transport
from cleanday.router.transports.local import Local
from cleanday.router.transports.openrouter import OpenRouter

TRANSPORTS: dict[str, type[Transport]] = {t.name: t for t in (OpenRouter, Anthropic, Local)}

__all__ = ["TRANSPORTS", "Anthropic", "Local", "OpenRouter", "Transport"]
