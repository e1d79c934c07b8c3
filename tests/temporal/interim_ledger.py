"""Interim: a minimal in-memory ledger API until the real service lands on this branch.

It answers the endpoints the runtime calls (docs/contracts.md section 3) with the rules the
runtime relies on (permits by tier and item, demotion on a failed gate, reports once per run);
the tests switch to cleanday.service's real app as soon as it is merged.
"""

from typing import Any

from fastapi import FastAPI, HTTPException, Response


def make_app() -> FastAPI:
    app = FastAPI()
    st: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict] = {}
    items: dict[str, str] = {}  # item -> proposed|staged|approved|released|rejected
    app.state.st, app.state.runs, app.state.items = st, runs, items

    @app.post("/api/v1/behaviors", status_code=201)
    def register(body: dict):
        import yaml

        wo = yaml.safe_load(body["work_order"])
        st.setdefault(wo["name"], {"tier": "A", "status": "active"})
        return {"outcome": "new"}

    @app.get("/api/v1/behaviors/{name}")
    def get(name: str):
        return {"name": name, "state": st[name]}

    @app.get("/api/v1/behaviors/{name}/medians")
    def med(name: str):
        return {}

    @app.post("/api/v1/runs", status_code=201)
    def report(body: dict, response: Response):
        if body["run_id"] in runs:
            response.status_code = 200
            return {"repeat": True}
        runs[body["run_id"]] = body
        if body["outcome"] in ("proposed", "staged"):
            items[body["run_id"]] = body["outcome"]
        if any(not g["passed"] for g in body["gates"]):
            s = st[body["behavior"]]
            s["tier"] = {"Wings": "C", "C": "B", "B": "A", "A": "A"}[s["tier"]]
        return {"repeat": False}

    @app.post("/api/v1/permits")
    def permit(body: dict):
        s = st[body["behavior"]]
        item = body.get("item_id")
        if item is None:
            if s["tier"] in ("C", "Wings"):
                return {"granted": True}
            raise HTTPException(403, f"tier {s['tier']}")
        if items.get(item) in ("approved", "released"):
            return {"granted": True}
        raise HTTPException(403, f"item {item} is {items.get(item)}")

    @app.post("/api/v1/behaviors/{name}/batch/approve")
    def approve(name: str, body: dict):
        for i in body["items"]:
            items[i] = "approved"
        return {}

    @app.post("/api/v1/behaviors/{name}/batch/reject")
    def reject(name: str, body: dict):
        for i in body["items"]:
            items[i] = "rejected"
        return {}

    @app.post("/api/v1/behaviors/{name}/staged/{item}/release")
    def release(name: str, item: str):
        items[item] = "released"
        return {}

    return app


def add_override(app):
    st = app.state.st

    @app.post("/api/v1/behaviors/{name}/override")
    def override(name: str, body: dict):
        if body.get("tier"):
            st[name]["tier"] = body["tier"]
        return {}

    @app.post("/api/v1/behaviors/{name}/{action}")
    def status(name: str, action: str):
        st[name]["status"] = {"pause": "paused", "resume": "active", "retire": "retired"}[action]
        return {}
