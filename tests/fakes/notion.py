"""A fake Notion (API 2025-09-03, data sources) for the real `notion-client` to talk to.

Point the client at it with `notion_client.Client(auth="ntn_test", base_url=server.url)`
(`NOTION_BASE_URL`). It validates every request against the corrected description in
`tests.fakes.notion_spec`, checks the bearer token and the Notion-Version header, paces each
integration token (`NOTION_RATE_LIMIT`), and keeps pages, databases, data sources with their
schemas, and page content as Notion does: timestamps rounded down to the minute, select
options added when a page names a new one, `last_edited_by` the bot for API writes and a
person for `edit_as_person`. Errors are Notion's `{"object": "error", "status", "code",
"message"}` with its codes.

Run it alone with `python -m tests.fakes.notion --port 0` (see `main`); it then takes its
orders through the control API under `/_fake/`.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request

from tests.fakes import notion_spec
from tests.fakes.notion_query import Row, compile_filter, sort_rows
from tests.fakes.notion_values import (
    Invalid,
    Prop,
    User,
    build_prop,
    configure,
    empty_value,
    iso,
    new_id,
    normalize_id,
    plain,
    plain_text,
    property_type,
    rich_text_out,
    text_items,
    value_in,
)
from tests.fakes.serving import (
    Answer,
    FakeService,
    Fault,
    RateLimit,
    Received,
    json_body,
    public_headers,
    serve_forever,
    utc_now,
)

NOTION_VERSION = "2025-09-03"

# Notion: "an average of three requests per second per integration; some bursts beyond the
# average rate are allowed". It publishes no burst size. A bucket of three tokens lets a
# client paced at 3/s through despite jitter, and refuses one that does not pace after three
# quick requests, so a benchmark that gets no 429 really stayed within the average.
NOTION_RATE_LIMIT = RateLimit(per_second=3.0, burst=3)

ERROR_MESSAGES = {
    500: ("internal_server_error", "Unexpected error occurred."),
    503: ("service_unavailable", "Notion is unavailable, please try again later."),
    504: ("gateway_timeout", "Notion timed out while processing the request."),
}
PROXY_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>cloudflare</center></body></html>"
)


class NotFound(Exception):
    pass


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"object": "error", "status": status, "code": code, "message": message}
    return Answer(status, body, headers or {})


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


@dataclass
class Page:
    id: str
    parent: dict[str, Any]
    values: dict[str, Any]  # by property ID; a page under a page keeps {"title": [...]}
    created_time: datetime
    last_edited_time: datetime
    created_by: str
    last_edited_by: str
    order: int
    in_trash: bool = False
    icon: Any = None
    cover: Any = None
    is_locked: bool = False

    @property
    def data_source_id(self) -> str | None:
        value = self.parent.get("data_source_id")
        return str(value) if value else None


@dataclass
class Database:
    id: str
    parent: dict[str, Any]
    title: list[dict[str, Any]]
    description: list[dict[str, Any]]
    is_inline: bool
    data_source_ids: list[str]
    created_time: datetime
    last_edited_time: datetime
    created_by: str
    last_edited_by: str
    in_trash: bool = False
    icon: Any = None
    cover: Any = None
    is_locked: bool = False


@dataclass
class DataSource:
    id: str
    database_id: str
    title: list[dict[str, Any]]
    description: list[dict[str, Any]]
    props: dict[str, Prop]  # by property ID, in schema order
    created_time: datetime
    last_edited_time: datetime
    created_by: str
    last_edited_by: str
    in_trash: bool = False
    icon: Any = None

    def lookup(self, key: str) -> Prop | None:
        """A property by ID or by name, as every Notion endpoint takes either."""
        if key in self.props:
            return self.props[key]
        return next((p for p in self.props.values() if p.name == key), None)


@dataclass
class Block:
    id: str
    parent: dict[str, Any]
    type: str
    content: dict[str, Any]
    created_time: datetime
    last_edited_time: datetime
    created_by: str
    last_edited_by: str
    in_trash: bool = False


@dataclass
class _Request:
    method: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    actor: str  # the user ID that writes are attributed to


class NotionServer(FakeService):
    """The fake Notion. Python methods below seed it, read it, and act as a person in the UI;
    `inject`, `outage` and friends (FakeService) make it misbehave."""

    def __init__(
        self,
        *,
        token: str = "ntn_test",
        clock: Callable[[], datetime] = utc_now,
        rate_limit: RateLimit | None = NOTION_RATE_LIMIT,
        monotonic: Callable[[], float] = time.monotonic,
        bot_name: str = "cleanday",
    ) -> None:
        super().__init__(monotonic)
        self.tokens = {token}
        self.token = token
        self.clock = clock
        self.rate_limit = self._initial_rate_limit = rate_limit
        self._lock = threading.RLock()
        self._order = itertools.count()
        self.bot = User(new_id(), bot_name, "bot")
        self.operator = User(new_id(), "Olivia Operator", "person")
        self._clear_state()
        # compile the description's validators before serving, so no test's first request
        # waits for them (a timeout test would see that as a slow Notion)
        notion_spec.operations()

    def _clear_state(self) -> None:
        self.users: dict[str, User] = {self.bot.id: self.bot, self.operator.id: self.operator}
        self.pages: dict[str, Page] = {}
        self.databases: dict[str, Database] = {}
        self.data_sources: dict[str, DataSource] = {}
        self.blocks: dict[str, Block] = {}
        self.children: dict[str, list[str]] = {}

    def reset(self) -> None:
        """An empty workspace again (the bot and the operator stay), default rate limit."""
        with self._lock:
            self._clear_state()
            self.rate_limit = self._initial_rate_limit
        super().reset()

    # -- seeding and reading (for tests) -----------------------------------------------------

    def env(self) -> dict[str, str]:
        """The settings a cleanday process needs to use this server."""
        return {"NOTION_BASE_URL": self.url, "NOTION_TOKEN": self.token}

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Pace every token at `limit` from now on (None: no rate limit)."""
        self.rate_limit = limit
        self.buckets.reset()

    def add_person(self, name: str, email: str | None = None) -> str:
        """A person in the workspace, for `edit_as_person` and people properties."""
        with self._lock:
            return self._add_user(User(new_id(), name, "person", email)).id

    def add_page(self, title: str = "Cleanday", parent_page_id: str | None = None) -> str:
        """A page shared with the integration (a parent to create databases under)."""
        with self._lock:
            now = self._now()
            parent: dict[str, Any] = (
                {"type": "workspace", "workspace": True}
                if parent_page_id is None
                else {"type": "page_id", "page_id": self._page(parent_page_id).id}
            )
            page = Page(
                new_id(),
                parent,
                {"title": rich_text_out(text_items(title), self.users)},
                now,
                now,
                self.operator.id,
                self.operator.id,
                next(self._order),
            )
            self.pages[page.id] = page
            if parent_page_id is not None:
                self._add_child_block(page.id, "child_page", {"title": title}, parent, page.id)
            return page.id

    def data_source_id(self, title: str) -> str:
        """The ID of the (untrashed) data source with this title."""
        with self._lock:
            found = [
                ds.id
                for ds in self.data_sources.values()
                if plain_text(ds.title) == title and not ds.in_trash
            ]
            if len(found) != 1:
                known = sorted(plain_text(ds.title) for ds in self.data_sources.values())
                raise KeyError(f"{len(found)} data sources titled {title!r}; there are {known}")
            return found[0]

    def schema(self, data_source: str) -> dict[str, str]:
        """Property name → type of a data source (by ID or title)."""
        with self._lock:
            ds = self._ds(data_source)
            return {p.name: p.type for p in ds.props.values()}

    def rows(self, data_source: str, *, include_trashed: bool = False) -> list[dict[str, Any]]:
        """The pages of a data source (by ID or title), oldest first, as plain dicts.

        Keys are property names with plain values (text, number, option name, list of option
        names, date start, list of user IDs, bool), plus `_id` (the page ID),
        `_created_time`, `_last_edited_time` and `_last_edited_by` (a user ID).
        """
        with self._lock:
            ds = self._ds(data_source)
            pages = [
                p
                for p in sorted(self.pages.values(), key=lambda p: p.order)
                if p.data_source_id == ds.id and (include_trashed or not p.in_trash)
            ]
            return [self._plain_row(ds, p) for p in pages]

    def page(self, page_id: str) -> dict[str, Any]:
        """A page as `GET /v1/pages/{id}` answers it."""
        with self._lock:
            return self._page_json(self._page(page_id))

    def blocks_of(self, block_id: str) -> list[dict[str, Any]]:
        """A page's (or block's) content as plain dicts: id, type, text, checked, children."""
        with self._lock:
            return [self._plain_block(b) for b in self._live_children(self._id(block_id))]

    def edit_as_person(
        self, page_id: str, properties: dict[str, Any], user_id: str | None = None
    ) -> None:
        """Change page properties as a person in the Notion UI would (the operator by
        default): values are request-shaped (`{"Decision": {"select": {"name": "Promote"}}}`),
        and `last_edited_by` becomes that person."""
        with self._lock:
            page = self._page(page_id)
            user = self.users[self._id(user_id or self.operator.id)]
            self._set_properties(page, properties)
            self._touch_page(page, user.id)

    def check_as_person(self, block_id: str, checked: bool, user_id: str | None = None) -> None:
        """Tick (or untick) a to-do block as a person in the UI."""
        with self._lock:
            block = self.blocks[self._id(block_id)]
            if block.type != "to_do":
                raise ValueError(f"block {block_id} is a {block.type}, not a to_do")
            user = self._id(user_id or self.operator.id)
            block.content["checked"] = checked
            block.last_edited_time, block.last_edited_by = self._now(), user
            page = self._page_of_block(block)
            if page is not None:
                self._touch_page(page, user)

    # -- FakeService -------------------------------------------------------------------------

    def record(self, request: Request, raw: bytes) -> Received:
        body, _ = json_body(raw)
        headers = public_headers(request.scope["headers"])
        auth = request.headers.get("authorization", "")
        return Received(
            method=request.method,
            path=request.url.path,
            key=f"{request.method} {request.url.path}",
            query={k: request.query_params.getlist(k) for k in request.query_params},
            headers=headers,
            body=body,
            at=self.clock(),
            authorized=auth.removeprefix("Bearer ") in self.tokens and auth.startswith("Bearer "),
        )

    def fault_answer(self, fault: Fault) -> Answer:
        if fault.kind == "rate_limited":
            return self._rate_limited(fault.retry_after)
        if fault.status == 502:
            # a 502 comes from the proxy in front of Notion, as an HTML page
            return Answer(502, PROXY_502, media_type="text/html")
        code, message = ERROR_MESSAGES[fault.status]
        return error(fault.status, code, message)

    async def answer(self, rec: Received, request: Request) -> Answer:
        raw = await request.body()
        answer = self._answer(rec, request, raw)
        if answer.status == 400 and isinstance(answer.body, dict):
            code = answer.body.get("code")
            if code in (
                "validation_error",
                "invalid_json",
                "invalid_request_url",
                "missing_version",
                "invalid_request",
            ):
                rec.valid, rec.problem = False, answer.body.get("message")
        return answer

    def _answer(self, rec: Received, request: Request, raw: bytes) -> Answer:
        auth = request.headers.get("authorization", "")
        if not rec.authorized:
            # the description's operations say `security: []`; the reference (and the real
            # API) want a bearer token on every request
            return error(401, "unauthorized", "API token is invalid.")
        version = request.headers.get("notion-version")
        if version is None:
            return error(
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header should be "
                "defined, instead was `undefined`.",
            )
        if version != NOTION_VERSION:
            return error(
                400,
                "validation_error",
                f"Notion-Version `{version}`: this fake speaks {NOTION_VERSION} only (data "
                "sources); set notion_version to it.",
            )
        retry_after = self.buckets.take(("token", auth), self.rate_limit)
        if retry_after is not None:
            return self._rate_limited(retry_after)
        found = notion_spec.match(request.method, request.url.path)
        if found is None:
            return error(400, "invalid_request_url", "Invalid request URL.")
        op, params = found
        body, parsed = json_body(raw)
        if not parsed:
            return error(400, "invalid_json", "Error parsing JSON body.")
        if body is None and op.body is not None:
            body = {}
        query = {k: request.query_params.getlist(k) for k in request.query_params}
        problem = notion_spec.check_parameters(op, query) or notion_spec.check_body(op, body)
        if problem:
            return error(400, "validation_error", problem)
        handler = self._handlers().get(op.operation_id)
        if handler is None:
            return error(
                400,
                "invalid_request",
                f"fake Notion: {op.method} {op.template} ({op.operation_id}) is not implemented.",
            )
        req = _Request(request.method, params, query, body, self.bot.id)
        try:
            with self._lock:
                return handler(req)
        except Invalid as exc:
            return error(400, "validation_error", str(exc))
        except NotFound as exc:
            return error(404, "object_not_found", str(exc))

    def _rate_limited(self, retry_after: int) -> Answer:
        return error(
            429,
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
            {"Retry-After": str(retry_after)},
        )

    # -- control API (for a server run as a subprocess) ------------------------------------

    async def control(self, request: Request, body: Any) -> Answer:
        path, method = request.url.path, request.method
        parts = path.strip("/").split("/")[1:]
        try:
            if parts == ["pages"] and method == "POST":
                return Answer(200, {"id": self.add_page(**(body or {}))})
            if parts == ["people"] and method == "POST":
                return Answer(200, {"id": self.add_person(**body)})
            if parts == ["rate_limit"] and method == "POST":
                self.set_rate_limit(RateLimit(**body) if body else None)
                return Answer(200, {"rate_limit": body})
            if len(parts) == 3 and parts[0] == "data_sources" and parts[2] == "rows":
                return Answer(200, self.rows(parts[1]))
            if len(parts) == 3 and parts[0] == "pages" and parts[2] == "edit_as_person":
                self.edit_as_person(parts[1], body["properties"], body.get("user_id"))
                return Answer(200, self.page(parts[1]))
            if parts == ["data_sources"] and method == "GET":
                title = request.query_params["title"]
                return Answer(200, {"id": self.data_source_id(title)})
        except (KeyError, NotFound, Invalid, ValueError, TypeError) as exc:
            return Answer(400, {"error": str(exc)})
        return await super().control(request, body)

    # -- handlers ----------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[_Request], Answer]]:
        return {
            "get-self": lambda r: Answer(200, self.bot.to_json()),
            "get-user": self._get_user,
            "get-users": self._list_users,
            "post-search": self._search,
            "create-a-database": self._create_database,
            "retrieve-a-database": self._get_database,
            "update-a-database": self._update_database,
            "create-a-data-source": self._create_data_source,
            "retrieve-a-data-source": self._get_data_source,
            "update-a-data-source": self._update_data_source,
            "query-data-source": self._query,
            "post-page": self._create_page,
            "retrieve-a-page": self._get_page,
            "patch-page": self._update_page,
            "get-block-children": self._list_children,
            "patch-block-children": self._append_children,
            "retrieve-a-block": self._get_block,
            "update-a-block": self._update_block,
            "delete-a-block": self._delete_block,
        }

    def _get_user(self, r: _Request) -> Answer:
        user = self.users.get(self._id(r.params["user_id"]))
        if user is None:
            raise NotFound(f"Could not find user with ID: {r.params['user_id']}.")
        return Answer(200, user.to_json())

    def _list_users(self, r: _Request) -> Answer:
        items = list(self.users.values())
        page, cursor, more = self._paginate(items, r.query, lambda u: u.id)
        return Answer(200, self._list([u.to_json() for u in page], cursor, more, "user"))

    def _search(self, r: _Request) -> Answer:
        body = r.body
        wanted = (body.get("filter") or {}).get("value")
        query = str(body.get("query", "")).lower()
        found: list[tuple[datetime, str, dict[str, Any]]] = []
        if wanted in (None, "page"):
            for p in self.pages.values():
                if not p.in_trash and query in self._page_title(p).lower():
                    found.append((p.last_edited_time, p.id, self._page_json(p)))
        if wanted in (None, "data_source"):
            for ds in self.data_sources.values():
                if not ds.in_trash and query in plain_text(ds.title).lower():
                    found.append((ds.last_edited_time, ds.id, self._ds_json(ds)))
        ascending = (body.get("sort") or {}).get("direction") == "ascending"
        found.sort(key=lambda f: f[0], reverse=not ascending)
        page, cursor, more = self._paginate(
            found,
            {"start_cursor": [body.get("start_cursor")]} if body.get("start_cursor") else {},
            lambda f: f[1],
            body.get("page_size"),
        )
        return Answer(200, self._list([f[2] for f in page], cursor, more, "page_or_data_source"))

    # databases

    def _create_database(self, r: _Request) -> Answer:
        body = r.body
        parent = body["parent"]
        if parent.get("type") == "workspace" or "page_id" not in parent:
            raise Invalid("fake Notion: databases are created under a page (parent.page_id).")
        page = self._page(parent["page_id"])
        raw_props = (body.get("initial_data_source") or {}).get("properties")
        props = self._new_schema(raw_props if raw_props else {"Name": {"title": {}}})
        now = self._now()
        title = rich_text_out(body.get("title", []), self.users)
        description = rich_text_out(body.get("description", []), self.users)
        db = Database(
            new_id(),
            {"type": "page_id", "page_id": page.id},
            title,
            description,
            bool(body.get("is_inline", False)),
            [],
            now,
            now,
            r.actor,
            r.actor,
            icon=body.get("icon"),
            cover=body.get("cover"),
        )
        ds = DataSource(new_id(), db.id, title, [], props, now, now, r.actor, r.actor)
        db.data_source_ids.append(ds.id)
        self.databases[db.id] = db
        self.data_sources[ds.id] = ds
        self._add_child_block(
            db.id, "child_database", {"title": plain_text(title)}, db.parent, r.actor
        )
        self._touch_page(page, r.actor)
        return Answer(200, self._db_json(db))

    def _get_database(self, r: _Request) -> Answer:
        return Answer(200, self._db_json(self._db(r.params["database_id"])))

    def _update_database(self, r: _Request) -> Answer:
        db = self._db(r.params["database_id"])
        body = r.body
        if "parent" in body:
            if "page_id" not in body["parent"]:
                raise Invalid("fake Notion: a database moves under a page (parent.page_id).")
            db.parent = {"type": "page_id", "page_id": self._page(body["parent"]["page_id"]).id}
        for key in ("title", "description"):
            if key in body:
                setattr(db, key, rich_text_out(body[key], self.users))
        for key in ("is_inline", "icon", "cover", "is_locked"):
            if key in body:
                setattr(db, key, body[key])
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None:
            db.in_trash = bool(trash)
        db.last_edited_time, db.last_edited_by = self._now(), r.actor
        return Answer(200, self._db_json(db))

    # data sources

    def _create_data_source(self, r: _Request) -> Answer:
        body = r.body
        db = self._db(body["parent"]["database_id"])
        props = self._new_schema(body["properties"])
        now = self._now()
        title = rich_text_out(body.get("title", []), self.users)
        ds = DataSource(
            new_id(), db.id, title, [], props, now, now, r.actor, r.actor, icon=body.get("icon")
        )
        self.data_sources[ds.id] = ds
        db.data_source_ids.append(ds.id)
        return Answer(200, self._ds_json(ds))

    def _get_data_source(self, r: _Request) -> Answer:
        return Answer(200, self._ds_json(self._ds_by_id(r.params["data_source_id"])))

    def _update_data_source(self, r: _Request) -> Answer:
        ds = self._ds_by_id(r.params["data_source_id"])
        body = r.body
        if "title" in body:
            ds.title = rich_text_out(body["title"], self.users)
        if "description" in body:
            ds.description = rich_text_out(body["description"], self.users)
        if "icon" in body:
            ds.icon = body["icon"]
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None:
            ds.in_trash = bool(trash)
        for key, raw in (body.get("properties") or {}).items():
            self._change_property(ds, key, raw)
        ds.last_edited_time, ds.last_edited_by = self._now(), r.actor
        return Answer(200, self._ds_json(ds))

    def _change_property(self, ds: DataSource, key: str, raw: Any) -> None:
        prop = ds.lookup(key)
        if raw is None:
            if prop is None:
                raise Invalid(f"{key} is not a property that exists.")
            if prop.type == "title":
                raise Invalid(f"{prop.name}: the title property cannot be removed.")
            del ds.props[prop.id]
            for page in self._pages_of(ds):
                page.values.pop(prop.id, None)
            return
        if not isinstance(raw, dict):
            raise Invalid(f"body failed validation: body.properties.{key} should be an object.")
        new_name = raw.get("name")
        if new_name is not None:
            other = ds.lookup(new_name)
            if other is not None and other is not prop:
                raise Invalid(f"{new_name}: a property with that name already exists.")
        typed = [k for k in raw if k not in ("name", "description", "id", "type")]
        if prop is None:
            if not typed:
                raise Invalid(f"{key} is not a property that exists.")
            new = build_prop(new_name or key, raw, creating=True)
            if new.type == "title":
                raise Invalid(f"{new.name}: a data source has exactly one title property.")
            ds.props[new.id] = new
            for page in self._pages_of(ds):
                page.values[new.id] = empty_value(new)
            return
        if new_name is not None:
            prop.name = new_name
        if "description" in raw:
            prop.description = raw["description"]
        if typed:
            kind, config = property_type(prop.name, raw)
            if kind != prop.type:
                if prop.type == "title" or kind == "title":
                    raise Invalid(f"{prop.name}: the title property's type cannot change.")
                prop.type, prop.config = kind, {}
                configure(prop, config, creating=True)
                for page in self._pages_of(ds):
                    page.values[prop.id] = empty_value(prop)
            else:
                configure(prop, config, creating=False)

    def _query(self, r: _Request) -> Answer:
        ds = self._ds_by_id(r.params["data_source_id"])
        body = r.body
        include_trash = bool(body.get("in_trash") or body.get("archived"))
        pages = [p for p in self._pages_of(ds) if include_trash or not p.in_trash]
        rows = [self._row(p) for p in pages]
        if body.get("filter") is not None:
            test = compile_filter(body["filter"], ds.lookup, self.clock())
            rows = [row for row in rows if test(row)]
        rows = sort_rows(rows, body.get("sorts") or [], ds.lookup)
        cursor_query = {"start_cursor": [body["start_cursor"]]} if body.get("start_cursor") else {}
        page, cursor, more = self._paginate(
            rows, cursor_query, lambda row: row.page_id, body.get("page_size")
        )
        only = r.query.get("filter_properties")
        results = [self._page_json(self.pages[row.page_id], only) for row in page]
        return Answer(200, self._list(results, cursor, more, "page_or_data_source"))

    # pages

    def _create_page(self, r: _Request) -> Answer:
        body = r.body
        parent = self._page_parent(body["parent"])
        now = self._now()
        page = Page(
            new_id(),
            parent,
            {},
            now,
            now,
            r.actor,
            r.actor,
            next(self._order),
            icon=body.get("icon"),
            cover=body.get("cover"),
        )
        ds_id = page.data_source_id
        if ds_id is not None:
            ds = self.data_sources[ds_id]
            page.values = {p.id: empty_value(p) for p in ds.props.values()}
        else:
            page.values = {"title": []}
        self._set_properties(page, body.get("properties") or {})
        self.pages[page.id] = page
        if parent["type"] == "page_id":
            self._add_child_block(
                page.id, "child_page", {"title": self._page_title(page)}, parent, r.actor
            )
        for child in body.get("children") or []:
            self._add_block(page.id, {"type": "page_id", "page_id": page.id}, child, r.actor)
        return Answer(200, self._page_json(page))

    def _get_page(self, r: _Request) -> Answer:
        page = self._page(r.params["page_id"])
        only = r.query.get("filter_properties")
        return Answer(200, self._page_json(page, only))

    def _update_page(self, r: _Request) -> Answer:
        page = self._page(r.params["page_id"])
        body = r.body
        trash = body.get("in_trash", body.get("archived"))
        if page.in_trash and trash is not False:
            raise Invalid(
                "Can't edit block that is archived. You must unarchive the block before editing."
            )
        if trash is not None:
            page.in_trash = bool(trash)
        self._set_properties(page, body.get("properties") or {})
        for key in ("icon", "cover", "is_locked"):
            if key in body:
                setattr(page, key, body[key])
        self._touch_page(page, r.actor)
        return Answer(200, self._page_json(page))

    # blocks

    def _list_children(self, r: _Request) -> Answer:
        parent = self._container(r.params["block_id"])
        items = self._live_children(parent)
        page_size = int(r.query["page_size"][-1]) if r.query.get("page_size") else None
        page, cursor, more = self._paginate(items, r.query, lambda b: b.id, page_size)
        return Answer(200, self._list([self._block_json(b) for b in page], cursor, more, "block"))

    def _append_children(self, r: _Request) -> Answer:
        parent_id = self._container(r.params["block_id"])
        parent_ref = (
            {"type": "page_id", "page_id": parent_id}
            if parent_id in self.pages
            else {"type": "block_id", "block_id": parent_id}
        )
        after = r.body.get("after")
        position = None
        if after is not None:
            siblings = self.children.get(parent_id, [])
            after_id = self._id(after)
            if after_id not in siblings:
                raise Invalid(f"body failed validation: after block {after} is not a child.")
            position = siblings.index(after_id) + 1
        added = []
        for i, child in enumerate(r.body["children"]):
            at = None if position is None else position + i
            added.append(self._add_block(parent_id, parent_ref, child, r.actor, at))
        page = self.pages.get(parent_id) or (
            self._page_of_block(self.blocks[parent_id]) if parent_id in self.blocks else None
        )
        if page is not None:
            self._touch_page(page, r.actor)
        return Answer(200, self._list([self._block_json(b) for b in added], None, False, "block"))

    def _get_block(self, r: _Request) -> Answer:
        return Answer(200, self._block_json(self._block(r.params["block_id"])))

    def _update_block(self, r: _Request) -> Answer:
        block = self._block(r.params["block_id"])
        body = r.body
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None:
            block.in_trash = bool(trash)
        if block.type in body:
            change = body[block.type]
            if not isinstance(change, dict):
                raise Invalid(f"body failed validation: body.{block.type} should be an object.")
            if "rich_text" in change:
                block.content["rich_text"] = rich_text_out(change["rich_text"], self.users)
            for key in ("checked", "color", "is_toggleable"):
                if key in change:
                    block.content[key] = change[key]
        else:
            other = [k for k in body if k not in ("in_trash", "archived", "type")]
            if other:
                raise Invalid(
                    f"body failed validation: block {block.id} is a {block.type}; "
                    f"`{other[0]}` does not apply to it."
                )
        block.last_edited_time, block.last_edited_by = self._now(), r.actor
        page = self._page_of_block(block)
        if page is not None:
            self._touch_page(page, r.actor)
        return Answer(200, self._block_json(block))

    def _delete_block(self, r: _Request) -> Answer:
        block = self._block(r.params["block_id"])
        block.in_trash = True
        if block.id in self.pages:
            self.pages[block.id].in_trash = True
        block.last_edited_time, block.last_edited_by = self._now(), r.actor
        return Answer(200, self._block_json(block))

    # -- state helpers -----------------------------------------------------------------------

    def _now(self) -> datetime:
        # Notion keeps created_time and last_edited_time to the minute
        return _minute(self.clock())

    def _add_user(self, user: User) -> User:
        self.users[user.id] = user
        return user

    def _id(self, raw: str) -> str:
        normal = normalize_id(raw)
        if normal is None:
            raise Invalid(f"path failed validation: `{raw}` should be a valid uuid.")
        return normal

    def _page(self, raw: str) -> Page:
        page = self.pages.get(self._id(raw))
        if page is None:
            raise NotFound(
                f"Could not find page with ID: {raw}. Make sure the relevant pages and "
                "databases are shared with your integration."
            )
        return page

    def _db(self, raw: str) -> Database:
        db = self.databases.get(self._id(raw))
        if db is None:
            raise NotFound(
                f"Could not find database with ID: {raw}. Make sure the relevant pages and "
                "databases are shared with your integration."
            )
        return db

    def _ds_by_id(self, raw: str) -> DataSource:
        ds = self.data_sources.get(self._id(raw))
        if ds is None:
            raise NotFound(
                f"Could not find data_source with ID: {raw}. Make sure the relevant pages and "
                "databases are shared with your integration."
            )
        return ds

    def _ds(self, id_or_title: str) -> DataSource:
        normal = normalize_id(id_or_title)
        if normal is not None and normal in self.data_sources:
            return self.data_sources[normal]
        return self.data_sources[self.data_source_id(id_or_title)]

    def _block(self, raw: str) -> Block:
        block = self.blocks.get(self._id(raw))
        if block is None:
            raise NotFound(f"Could not find block with ID: {raw}.")
        return block

    def _container(self, raw: str) -> str:
        block_id = self._id(raw)
        if block_id not in self.pages and block_id not in self.blocks:
            raise NotFound(f"Could not find block with ID: {raw}.")
        return block_id

    def _pages_of(self, ds: DataSource) -> list[Page]:
        return sorted(
            (p for p in self.pages.values() if p.data_source_id == ds.id), key=lambda p: p.order
        )

    def _live_children(self, parent_id: str) -> list[Block]:
        return [
            self.blocks[b] for b in self.children.get(parent_id, []) if not self.blocks[b].in_trash
        ]

    def _page_of_block(self, block: Block) -> Page | None:
        seen = 0
        current: Block | None = block
        while current is not None and seen < 50:
            parent = current.parent
            if parent.get("type") == "page_id":
                return self.pages.get(parent["page_id"])
            current = self.blocks.get(parent.get("block_id", ""))
            seen += 1
        return None

    def _touch_page(self, page: Page, user_id: str) -> None:
        page.last_edited_time, page.last_edited_by = self._now(), user_id

    def _new_schema(self, raw: Any) -> dict[str, Prop]:
        if not isinstance(raw, dict):
            raise Invalid("body failed validation: body.properties should be an object.")
        props: dict[str, Prop] = {}
        for name, config in raw.items():
            prop = build_prop(name, config, creating=True)
            props[prop.id] = prop
        titles = [p for p in props.values() if p.type == "title"]
        if len(titles) != 1:
            raise Invalid(
                "body failed validation: a data source has exactly one title property, "
                f"instead had {len(titles)}."
            )
        return props

    def _page_parent(self, raw: dict[str, Any]) -> dict[str, Any]:
        if "data_source_id" in raw:
            ds = self._ds_by_id(raw["data_source_id"])
            return {
                "type": "data_source_id",
                "data_source_id": ds.id,
                "database_id": ds.database_id,
            }
        if "database_id" in raw:
            db = self._db(raw["database_id"])
            if len(db.data_source_ids) != 1:
                raise Invalid(
                    f"Database {db.id} has {len(db.data_source_ids)} data sources; create the "
                    "page with a data_source_id parent."
                )
            return {
                "type": "data_source_id",
                "data_source_id": db.data_source_ids[0],
                "database_id": db.id,
            }
        if "page_id" in raw:
            return {"type": "page_id", "page_id": self._page(raw["page_id"]).id}
        return {"type": "workspace", "workspace": True}

    def _set_properties(self, page: Page, raw: dict[str, Any]) -> None:
        if not isinstance(raw, dict):
            raise Invalid("body failed validation: body.properties should be an object.")
        ds_id = page.data_source_id
        if ds_id is None:
            for key, value in raw.items():
                if key != "title":
                    raise Invalid(
                        f"{key} is not a property that exists. A page under a page has only "
                        "a title."
                    )
                title_prop = Prop("title", "title", "title")
                page.values["title"] = value_in(title_prop, value, self.users, shown="title")
            return
        ds = self.data_sources[ds_id]
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            prop = ds.lookup(key)
            if prop is None:
                raise Invalid(f"{key} is not a property that exists.")
            changes[prop.id] = value_in(prop, value, self.users, shown=key)
        page.values.update(changes)

    def _add_child_block(
        self,
        block_id: str,
        kind: str,
        content: dict[str, Any],
        parent: dict[str, Any],
        actor: str,
    ) -> None:
        now = self._now()
        block = Block(block_id, parent, kind, content, now, now, actor, actor)
        self.blocks[block_id] = block
        container = parent.get("page_id") or parent.get("block_id")
        if container:
            self.children.setdefault(container, []).append(block_id)

    def _add_block(
        self,
        parent_id: str,
        parent_ref: dict[str, Any],
        raw: dict[str, Any],
        actor: str,
        at: int | None = None,
    ) -> Block:
        kind = raw.get("type") or next(k for k in raw if k not in ("object", "type"))
        spec = dict(raw.get(kind) or {})
        nested = spec.pop("children", None) or []
        content: dict[str, Any] = {}
        if "rich_text" in spec:
            content["rich_text"] = rich_text_out(spec["rich_text"], self.users)
            content["color"] = spec.get("color", "default")
        if kind == "to_do":
            content["checked"] = bool(spec.get("checked", False))
        if kind.startswith("heading_"):
            content["is_toggleable"] = bool(spec.get("is_toggleable", False))
        if kind == "callout":
            content["icon"] = spec.get("icon")
        now = self._now()
        block = Block(new_id(), parent_ref, kind, content, now, now, actor, actor)
        self.blocks[block.id] = block
        siblings = self.children.setdefault(parent_id, [])
        if at is None:
            siblings.append(block.id)
        else:
            siblings.insert(at, block.id)
        for child in nested:
            self._add_block(block.id, {"type": "block_id", "block_id": block.id}, child, actor)
        return block

    def _paginate(
        self,
        items: list[Any],
        query: dict[str, Any],
        key: Callable[[Any], str],
        page_size: int | None = None,
    ) -> tuple[list[Any], str | None, bool]:
        size = page_size if page_size is not None else 100
        if not 1 <= size <= 100:
            raise Invalid(
                f"body failed validation: page_size should be between 1 and 100, instead was "
                f"`{size}`."
            )
        start = 0
        cursor = (query.get("start_cursor") or [None])[-1]
        if cursor:
            keys = [key(item) for item in items]
            normal = normalize_id(cursor) or cursor
            if normal not in keys:
                raise Invalid(f"start_cursor provided is invalid: {cursor}")
            start = keys.index(normal)
        chunk = items[start : start + size]
        more = start + size < len(items)
        # Notion's cursors are the ID of the first item of the next page
        return chunk, key(items[start + size]) if more else None, more

    # -- JSON --------------------------------------------------------------------------------

    def _list(self, results: list[Any], cursor: str | None, more: bool, kind: str) -> Any:
        return {
            "object": "list",
            "results": results,
            "next_cursor": cursor,
            "has_more": more,
            "type": kind,
            kind: {},
            "request_id": new_id(),
        }

    def _user_ref(self, user_id: str) -> dict[str, Any]:
        return {"object": "user", "id": user_id}

    def _page_title(self, page: Page) -> str:
        if page.data_source_id is None:
            return plain_text(page.values.get("title", []))
        ds = self.data_sources[page.data_source_id]
        title = next(p for p in ds.props.values() if p.type == "title")
        return plain_text(page.values.get(title.id, []))

    def _property_json(self, page: Page, prop: Prop) -> dict[str, Any]:
        computed = {
            "created_time": iso(page.created_time),
            "last_edited_time": iso(page.last_edited_time),
            "created_by": self._user_ref(page.created_by),
            "last_edited_by": self._user_ref(page.last_edited_by),
        }
        value = computed[prop.type] if prop.type in computed else page.values.get(prop.id)
        return {"id": prop.id, "type": prop.type, prop.type: value}

    def _page_json(self, page: Page, only: list[str] | None = None) -> dict[str, Any]:
        if page.data_source_id is None:
            properties = {
                "title": {"id": "title", "type": "title", "title": page.values.get("title", [])}
            }
        else:
            ds = self.data_sources[page.data_source_id]
            properties = {
                p.name: self._property_json(page, p)
                for p in ds.props.values()
                if only is None or p.id in only or p.name in only
            }
        slug = "-".join(self._page_title(page).split()) or "Untitled"
        return {
            "object": "page",
            "id": page.id,
            "created_time": iso(page.created_time),
            "last_edited_time": iso(page.last_edited_time),
            "created_by": self._user_ref(page.created_by),
            "last_edited_by": self._user_ref(page.last_edited_by),
            "cover": page.cover,
            "icon": page.icon,
            "parent": page.parent,
            "archived": page.in_trash,
            "in_trash": page.in_trash,
            "is_locked": page.is_locked,
            "properties": properties,
            "url": f"https://www.notion.so/{slug}-{page.id.replace('-', '')}",
            "public_url": None,
        }

    def _db_json(self, db: Database) -> dict[str, Any]:
        return {
            "object": "database",
            "id": db.id,
            "title": db.title,
            "description": db.description,
            "parent": db.parent,
            "is_inline": db.is_inline,
            "in_trash": db.in_trash,
            "archived": db.in_trash,
            "is_locked": db.is_locked,
            "created_time": iso(db.created_time),
            "last_edited_time": iso(db.last_edited_time),
            "created_by": self._user_ref(db.created_by),
            "last_edited_by": self._user_ref(db.last_edited_by),
            "data_sources": [
                {"id": ds_id, "name": plain_text(self.data_sources[ds_id].title)}
                for ds_id in db.data_source_ids
            ],
            "icon": db.icon,
            "cover": db.cover,
            "url": f"https://www.notion.so/{db.id.replace('-', '')}",
            "public_url": None,
        }

    def _ds_json(self, ds: DataSource) -> dict[str, Any]:
        db = self.databases[ds.database_id]
        return {
            "object": "data_source",
            "id": ds.id,
            "title": ds.title,
            "description": ds.description,
            "parent": {"type": "database_id", "database_id": db.id},
            "database_parent": db.parent,
            "is_inline": db.is_inline,
            "archived": ds.in_trash,
            "in_trash": ds.in_trash,
            "created_time": iso(ds.created_time),
            "last_edited_time": iso(ds.last_edited_time),
            "created_by": self._user_ref(ds.created_by),
            "last_edited_by": self._user_ref(ds.last_edited_by),
            "properties": {p.name: p.to_json() for p in ds.props.values()},
            "icon": ds.icon,
            "cover": None,
            "url": f"https://www.notion.so/{ds.id.replace('-', '')}",
            "public_url": None,
        }

    def _block_json(self, block: Block) -> dict[str, Any]:
        return {
            "object": "block",
            "id": block.id,
            "parent": block.parent,
            "created_time": iso(block.created_time),
            "last_edited_time": iso(block.last_edited_time),
            "created_by": self._user_ref(block.created_by),
            "last_edited_by": self._user_ref(block.last_edited_by),
            "has_children": bool(self._live_children(block.id)),
            "archived": block.in_trash,
            "in_trash": block.in_trash,
            "type": block.type,
            block.type: block.content,
        }

    def _row(self, page: Page) -> Row:
        return Row(
            page.id,
            page.values,
            page.created_time,
            page.last_edited_time,
            page.created_by,
            page.last_edited_by,
            page.order,
        )

    def _plain_row(self, ds: DataSource, page: Page) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for prop in ds.props.values():
            value = self._property_json(page, prop)[prop.type]
            row[prop.name] = plain(prop.type, value)
        row["_id"] = page.id
        row["_created_time"] = iso(page.created_time)
        row["_last_edited_time"] = iso(page.last_edited_time)
        row["_last_edited_by"] = page.last_edited_by
        return row

    def _plain_block(self, block: Block) -> dict[str, Any]:
        item: dict[str, Any] = {"id": block.id, "type": block.type}
        if "rich_text" in block.content:
            item["text"] = plain_text(block.content["rich_text"])
        elif "title" in block.content:
            item["text"] = block.content["title"]
        if block.type == "to_do":
            item["checked"] = block.content["checked"]
        kids = self._live_children(block.id)
        if kids:
            item["children"] = [self._plain_block(k) for k in kids]
        return item


def iter_pages(client: Any, data_source_id: str, **query: Any) -> Iterator[dict[str, Any]]:
    """Every page of a query, following `next_cursor` (a convenience for tests)."""
    cursor: str | None = None
    while True:
        answer = client.data_sources.query(data_source_id, start_cursor=cursor, **query)
        yield from answer["results"]
        if not answer["has_more"]:
            return
        cursor = answer["next_cursor"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Notion on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="ntn_test")
    parser.add_argument("--no-rate-limit", action="store_true")
    args = parser.parse_args(argv)
    server = NotionServer(
        token=args.token, rate_limit=None if args.no_rate_limit else NOTION_RATE_LIMIT
    )
    serve_forever(server, args.port)


if __name__ == "__main__":
    main()
