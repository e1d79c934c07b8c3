"""One error hierarchy for cleanday; every message says what to fix."""

from __future__ import annotations


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


class SinkError(CleandayError):
    """A sink could not perform an action (bad target, unwritable data directory, ...)."""
