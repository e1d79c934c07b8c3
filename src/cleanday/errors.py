"""One error hierarchy for cleanday; every message says what to fix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


class CleandayError(Exception):
    """Base of every error cleanday raises on purpose."""


class ConfigError(CleandayError):
    """A setting or environment variable is missing or wrong."""


class WorkOrderError(CleandayError):
    """A Work Order file is invalid; the message names the file, the field and what is allowed."""

    def __init__(self, path: str, problem: str, field: str | None = None) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        where = f"{path}: {field}: " if field else f"{path}: "
        super().__init__(where + problem)


class WorkOrderErrors(WorkOrderError):
    """Several problems in one Work Order file, reported together so that one round of fixes
    is enough; `errors` holds each (its field and problem), `field` and `problem` the first."""

    def __init__(self, path: str, errors: list[WorkOrderError]) -> None:
        self.errors = errors
        lines = "\n".join(
            f"  - {e.field}: {e.problem}" if e.field else f"  - {e.problem}" for e in errors
        )
        super().__init__(path, f"{len(errors)} problems:\n{lines}")
        self.field = errors[0].field


class OverrideError(CleandayError):
    """An override the ledger cannot record as asked (an unknown kind)."""


class RegistrationError(CleandayError):
    """Registration was refused (key already bound, unknown behavior, ...)."""


class UnknownBehaviorError(CleandayError):
    """No behavior of that name is registered."""


class UnknownItemError(CleandayError):
    """The behavior has no proposal or staged item of that ID."""


class LedgerIntegrityError(CleandayError):
    """The hash chain of the ledger does not verify."""


class OutOfOrderEntry(CleandayError):
    """An entry older than what a ladder accumulator already folded; recompute from all entries."""


class PermitDenied(CleandayError):
    """The ledger refused an act permit; the reason says why."""


class DecisionError(CleandayError):
    """A review decision cannot be recorded (not a candidate, not this week's review, ...)."""


class DecisionRefused(DecisionError):
    """A Sunday decision broke one of the review's rules; `rule` names it and `next_review`
    says when the next review is posted (aware, in the ledger's time zone)."""

    def __init__(self, behavior: str, rule: str, detail: str, next_review: datetime) -> None:
        self.behavior = behavior
        self.rule = rule
        self.detail = detail
        self.next_review = next_review
        when = f"{next_review:%A %Y-%m-%d at %H:%M} ({next_review.tzinfo})"
        super().__init__(f"{behavior}: decision refused: {rule}; {detail}. Next review: {when}")


class GateFailure(CleandayError):
    """A blocking gate failed; carries the gate name and the reason."""

    def __init__(self, gate: str, reason: str) -> None:
        self.gate = gate
        self.reason = reason
        super().__init__(f"gate {gate} failed: {reason}")


class BudgetExceeded(GateFailure):
    """The key's cap would be passed, or the provider answered 402."""

    def __init__(self, reason: str) -> None:
        super().__init__("budget", reason)


class PolicyViolation(GateFailure):
    """A model, provider, transport or route the behavior's policy does not allow."""

    def __init__(self, reason: str) -> None:
        super().__init__("policy", reason)


class RoutingError(CleandayError):
    """Every transport failed or refused; the run fails with the 'failure' gate."""


class ProviderRefused(RoutingError):
    """The provider refused the request as invalid or against policy: no fallback."""


class RateLimited(RoutingError):
    """Three attempts all answered 429: a documented failure, not an endless retry."""


class SecretResolutionError(ConfigError):
    """A key reference could not be resolved; the message names the reference, never the secret."""


class WebhookRejected(CleandayError):
    """A webhook failed verification; carries the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class RunConflict(CleandayError):
    """A run ID reported again with other content (409), naming the fields that differ."""

    def __init__(self, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class OutOfRange(CleandayError):
    """A value outside what the ledger accepts (a date beyond its clock's years); 422."""


class RequestTooLarge(CleandayError):
    """A request body past its limit (413), refused while it streams; `limit` is the limit in
    bytes."""

    def __init__(self, message: str, limit: int) -> None:
        self.limit = limit
        super().__init__(message)


class LedgerUnavailable(CleandayError):
    """The ledger service did not answer, or answered 5xx; activities retry on this."""


class WorkOrderNotLoaded(ConfigError):
    """The worker has no Work Order for a behavior the ledger asked it to run."""


class InfrastructureError(CleandayError):
    """A run could not run its step because of the deployment, not the behavior: the ledger
    unreachable past its retry limit, step code that cannot be loaded, a Work Order version the
    worker cannot get, a secret reference that does not resolve. `kind` names which."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class NotRunnable(CleandayError):
    """A run asked for now of a behavior that is not active (paused, quarantined, retired)."""


class BehaviorRetired(CleandayError):
    """A run report, or a plain re-registration, for a retired behavior (409). Its message
    names the way back: `cleanday register --revive PATH`."""


class SinkError(CleandayError):
    """A sink could not perform an action (bad target, unwritable data directory, ...)."""


class NotionSetupError(ConfigError):
    """Notion is not set up as cleanday needs it: no token, no data sources yet (run `cleanday
    notion init --parent PAGE_ID`), or a data source whose properties are missing or of the
    wrong type (named in the message)."""


class OutboxError(CleandayError):
    """An outbox row cannot be retried or dropped (no such row, delivered already, no reason)."""


class DeliveryError(CleandayError):
    """A provider refused or did not answer a delivery; the row waits for its next attempt."""


class YamlTooLarge(ValueError):
    """The text, or its expansion through aliases, is over the bounds."""


class Hold(Exception):
    """A sender's word that a target's next row is not due yet (a group still gathering): the
    row is tried again at `until`, with no attempt counted and no error recorded."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"held until {until.isoformat()}")
        self.until = until


class ServiceNoAnswer(Exception):
    """The ledger service did not answer a read as the ledger does (down, starting, a 5xx):
    the read verb reads the database instead (`cleanday.cli.quick`). Not a CleandayError: it
    never reaches the operator."""


class ServiceRefused(CleandayError):
    """The ledger service refused a read verb's request (an unknown behavior); the message is
    the ledger's own, printed as the verb's typer command would print it."""
