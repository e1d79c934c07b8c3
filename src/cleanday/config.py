"""Settings: the one place every environment variable is read."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_behaviors_dir() -> Path:
    """`behaviors/` in the working directory if there is one, else the built-in behaviors
    installed with cleanday (so `cleanday up` and `cleanday demo` work from anywhere)."""
    local = Path("behaviors")
    if local.is_dir():
        return local
    spec = importlib.util.find_spec("behaviors")  # found, not imported
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return local


class Settings(BaseSettings):
    """Every knob of cleanday, from the environment (or a `.env` file)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".cleanday"), alias="CLEANDAY_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    token: str | None = Field(default=None, alias="CLEANDAY_TOKEN")
    timezone: str = Field(default="UTC", alias="CLEANDAY_TIMEZONE")
    # where `file:` secret references may point (os.pathsep-separated directories); default
    # the data dir's `secrets/`. The data dir's `keys/` (keys cleanday provisioned) always is.
    secret_dirs: str | None = Field(default=None, alias="CLEANDAY_SECRET_DIRS")
    behaviors_dir: Path = Field(
        default_factory=default_behaviors_dir, alias="CLEANDAY_BEHAVIORS_DIR"
    )
    # installed modules (comma-separated; a name allows its submodules) that Work Order entry
    # points may name besides the behaviors directory and the built-in `behaviors` package
    step_modules: str | None = Field(default=None, alias="CLEANDAY_STEP_MODULES")

    service_host: str = Field(default="127.0.0.1", alias="CLEANDAY_HOST")
    service_port: int = Field(default=8765, alias="CLEANDAY_PORT")
    service_url: str | None = Field(default=None, alias="CLEANDAY_URL")
    # run the day close / Sunday review / Sunday close jobs inside the service process
    scheduler_enabled: bool = Field(default=True, alias="CLEANDAY_SCHEDULER")
    # the Sunday review is posted (Notion rows, Slack summary) at this hour, ledger time zone
    review_hour: int = Field(default=8, ge=0, le=23, alias="CLEANDAY_REVIEW_HOUR")
    # the Pane of Glass: reading without signing in is allowed from loopback addresses (turn
    # it off behind a reverse proxy on the same host, whose requests all come from loopback)
    pane_loopback_reads: bool = Field(default=True, alias="CLEANDAY_PANE_LOOPBACK_READS")
    pane_session_hours: float = Field(default=12.0, gt=0, alias="CLEANDAY_PANE_SESSION_HOURS")
    # the largest request body the API reads (JSON and forms; webhooks have their own limit per
    # Work Order): a larger one is answered 413 while it streams
    body_limit_bytes: int = Field(default=1 << 20, ge=1024, alias="CLEANDAY_BODY_LIMIT_BYTES")

    # how long a webhook's answer waits for its run to start; a delivery not started by then is
    # answered 202 all the same (it is stored) and started by the retry round
    webhook_start_wait_s: float = Field(
        default=2.0, ge=0, alias="CLEANDAY_WEBHOOK_START_WAIT_SECONDS"
    )
    # how often the service starts stored webhook deliveries that Temporal could not take
    webhook_retry_s: float = Field(default=5.0, gt=0, alias="CLEANDAY_WEBHOOK_RETRY_SECONDS")

    # PostgreSQL connections the router's budget path keeps per event loop; calls beyond them
    # wait for one (each worker process needs this many of the server's max_connections)
    budget_pool_size: int = Field(default=10, ge=1, alias="CLEANDAY_BUDGET_POOL_SIZE")

    # how long a run's reads of the ledger wait out an outage (retrying with backoff) before
    # the run is recorded as an infrastructure error, not the behavior's failure
    ledger_retry_s: float = Field(default=300.0, gt=0, alias="CLEANDAY_LEDGER_RETRY_SECONDS")

    temporal_address: str = Field(default="127.0.0.1:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_ui_port: int = Field(default=8233, alias="TEMPORAL_UI_PORT")
    # where links to a run point (Slack alerts, Notion's Gate Failures, run now); default
    # http://127.0.0.1:<ui port>
    temporal_ui_url: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_UI_URL", "CLEANDAY_TEMPORAL_UI_URL")
    )
    task_queue: str = Field(default="cleanday", alias="CLEANDAY_TASK_QUEUE")
    # a Temporal cluster with mTLS, or Temporal Cloud (an API key, or a client certificate):
    # the key is a secret reference (`env:TEMPORAL_KEY`, `file:...`), never the key itself
    temporal_api_key: str | None = Field(default=None, alias="TEMPORAL_API_KEY")
    temporal_tls: bool = Field(default=False, alias="TEMPORAL_TLS")
    temporal_tls_cert: Path | None = Field(default=None, alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: Path | None = Field(default=None, alias="TEMPORAL_TLS_KEY")
    temporal_tls_ca: Path | None = Field(default=None, alias="TEMPORAL_TLS_CA")
    temporal_tls_server_name: str | None = Field(default=None, alias="TEMPORAL_TLS_SERVER_NAME")
    # the worker's Temporal SDK metrics (Prometheus) on this port; 0 = off
    worker_metrics_port: int = Field(default=0, ge=0, alias="CLEANDAY_WORKER_METRICS_PORT")
    worker_metrics_host: str = Field(default="127.0.0.1", alias="CLEANDAY_WORKER_METRICS_HOST")

    # logs: "text" for people, "json" (one object a line) for a log pipeline
    log_format: Literal["text", "json"] = Field(default="text", alias="CLEANDAY_LOG_FORMAT")
    log_level: str = Field(default="INFO", alias="CLEANDAY_LOG_LEVEL")

    local_provider_port: int = Field(default=8799, alias="CLEANDAY_LOCAL_PROVIDER_PORT")
    # where the router reaches the local provider; default http://127.0.0.1:<port>/v1
    local_provider_url: str | None = Field(default=None, alias="CLEANDAY_LOCAL_PROVIDER_URL")
    # YAML with model prices, timeout classes, shared guardrail policies (cleanday.router.config)
    router_config: Path | None = Field(default=None, alias="CLEANDAY_ROUTER_CONFIG")
    # the OpenRouter API description the local provider validates requests against
    openrouter_spec: Path | None = Field(default=None, alias="CLEANDAY_OPENROUTER_SPEC")
    openrouter_base_url: str = Field(
        default="https://openrouter.ai/api/v1", alias="OPENROUTER_BASE_URL"
    )
    openrouter_management_key: str | None = Field(default=None, alias="OPENROUTER_MANAGEMENT_KEY")
    anthropic_base_url: str = Field(default="https://api.anthropic.com", alias="ANTHROPIC_BASE_URL")
    notion_base_url: str = Field(default="https://api.notion.com", alias="NOTION_BASE_URL")
    notion_token: str | None = Field(default=None, alias="NOTION_TOKEN")
    # Notion's average limit per integration, shared by every instance (cleanday.notion.pacing)
    notion_rate: float = Field(default=3.0, gt=0, alias="CLEANDAY_NOTION_RATE")
    # during Sunday, read the review's decisions back from Notion every this many minutes
    notion_review_read_minutes: int = Field(
        default=5, ge=1, le=30, alias="CLEANDAY_NOTION_REVIEW_READ_MINUTES"
    )
    # POST /notion/webhook: Notion's page events make the next review read come at once (the
    # read every few minutes stays); off, the route answers 404. Needs NOTION_TOKEN too.
    notion_webhook_enabled: bool = Field(default=False, alias="CLEANDAY_NOTION_WEBHOOK")
    # how often tier A's new proposals are posted to Notion and their sign-offs read back
    notion_proposals_s: float = Field(default=60.0, gt=0, alias="CLEANDAY_NOTION_PROPOSALS_SECONDS")
    # acts that land in Notion (cleanday.notion.sink): these behaviors' pages, under this page
    # (default: the parent page of `cleanday notion init`)
    notion_sink_behaviors: str = Field(
        default="content_pipeline,morning_digest", alias="CLEANDAY_NOTION_SINK_BEHAVIORS"
    )
    notion_sink_parent: str | None = Field(default=None, alias="CLEANDAY_NOTION_SINK_PARENT")
    # how long one Notion request may take before it counts as uncertain (looked up, not resent)
    notion_timeout_s: float = Field(default=30.0, gt=0, alias="CLEANDAY_NOTION_TIMEOUT_SECONDS")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    slack_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    # where Slack alerts go: a behavior's channel ("name=#channel,..."), else the default
    slack_channel: str = Field(default="#alerts", alias="CLEANDAY_SLACK_CHANNEL")
    slack_channels: str | None = Field(default=None, alias="CLEANDAY_SLACK_CHANNELS")
    # at most one message per this many seconds per channel (Slack allows about one a second)
    slack_pace_s: float = Field(default=1.0, ge=0, alias="CLEANDAY_SLACK_PACE_SECONDS")
    # storms, after Alertmanager: a channel's new group of alerts waits group_wait before its
    # first message; later ones are added to it every group_interval while the group is open
    # (an alert within close_after); past threshold alerts, one digest lists every one
    slack_group_wait_s: float = Field(default=10.0, ge=0, alias="CLEANDAY_SLACK_GROUP_WAIT_SECONDS")
    slack_group_interval_s: float = Field(
        default=30.0, ge=0, alias="CLEANDAY_SLACK_GROUP_INTERVAL_SECONDS"
    )
    slack_group_close_s: float = Field(
        default=300.0, ge=0, alias="CLEANDAY_SLACK_GROUP_CLOSE_SECONDS"
    )
    slack_storm_threshold: int = Field(default=10, ge=1, alias="CLEANDAY_SLACK_STORM_THRESHOLD")

    # the outbox's delivery job (cleanday.outbox): how often it drains what waits, how long a
    # target that failed waits (doubling per failure, capped), and how long the drainer's lease
    # lasts unrenewed before another instance takes over
    outbox_poll_s: float = Field(default=1.0, gt=0, alias="CLEANDAY_OUTBOX_POLL_SECONDS")
    outbox_backoff_s: float = Field(default=2.0, gt=0, alias="CLEANDAY_OUTBOX_BACKOFF_SECONDS")
    outbox_backoff_max_s: float = Field(
        default=300.0, gt=0, alias="CLEANDAY_OUTBOX_BACKOFF_MAX_SECONDS"
    )
    outbox_lease_s: float = Field(default=30.0, gt=0, alias="CLEANDAY_OUTBOX_LEASE_SECONDS")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.db').resolve()}"

    @property
    def resolved_secret_dirs(self) -> tuple[Path, ...]:
        """The directories `file:` secret references must lie in."""
        configured = [Path(p) for p in (self.secret_dirs or "").split(os.pathsep) if p.strip()]
        return (*(configured or [self.data_dir / "secrets"]), self.data_dir / "keys")

    @property
    def resolved_local_provider_url(self) -> str:
        return self.local_provider_url or f"http://127.0.0.1:{self.local_provider_port}/v1"

    @property
    def resolved_temporal_ui_url(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    def temporal_run_url(self, workflow_id: str) -> str:
        """The run in the Temporal UI (its workflow ID is the ledger's run ID)."""
        from urllib.parse import quote

        ns = quote(self.temporal_namespace, safe="")
        return f"{self.resolved_temporal_ui_url}/namespaces/{ns}/workflows/{quote(workflow_id)}"

    @property
    def resolved_service_url(self) -> str:
        return self.service_url or f"http://{self.service_host}:{self.service_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
