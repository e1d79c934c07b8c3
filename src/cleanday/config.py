"""Settings: the one place every environment variable is read."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
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

    service_host: str = Field(default="127.0.0.1", alias="CLEANDAY_HOST")
    service_port: int = Field(default=8765, alias="CLEANDAY_PORT")
    service_url: str | None = Field(default=None, alias="CLEANDAY_URL")
    # run the day close / Sunday review / Sunday close jobs inside the service process
    scheduler_enabled: bool = Field(default=True, alias="CLEANDAY_SCHEDULER")
    # the Pane of Glass: reading without signing in is allowed from loopback addresses (turn
    # it off behind a reverse proxy on the same host, whose requests all come from loopback)
    pane_loopback_reads: bool = Field(default=True, alias="CLEANDAY_PANE_LOOPBACK_READS")
    pane_session_hours: float = Field(default=12.0, gt=0, alias="CLEANDAY_PANE_SESSION_HOURS")

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

    temporal_address: str = Field(default="127.0.0.1:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_ui_port: int = Field(default=8233, alias="TEMPORAL_UI_PORT")
    task_queue: str = Field(default="cleanday", alias="CLEANDAY_TASK_QUEUE")

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
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    slack_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN")

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
    def resolved_service_url(self) -> str:
        return self.service_url or f"http://{self.service_host}:{self.service_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
