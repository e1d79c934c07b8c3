"""`cleanday new NAME`: a Work Order, its step module and a test for it, ready to register.

The files follow the built-ins' layout: `behaviors/NAME.yaml`, `behaviors/NAME.py` (entry
`behaviors.NAME:run`, whatever the folder is called: a worker finds it in its behaviors
directory, CLEANDAY_BEHAVIORS_DIR) and `tests/test_NAME.py` beside the behaviors directory.
Nothing is overwritten.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from cleanday.cli.common import friendly
from cleanday.entrypoints import PACKAGE
from cleanday.errors import CleandayError

app = typer.Typer()

NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")

WORK_ORDER = """\
# {name}: {description}
# Register it with `cleanday register {wo_path}`; run `pytest {test_path}` first.
name: {name}
description: {description}
trigger:
  type: cron
  cron: "0 8 * * *"          # every day at 08:00 in the time zone below
  timezone: UTC
reports: One line about what it noted today.
key:
  ref: env:{key_var}   # a reference, never the key itself
  cap_usd: 1
  cadence: month
preset:
  name: {name}
  system_prompt: You write one short, plain sentence.
  model: anthropic/claude-haiku-4.5
  parameters: {{temperature: 0.2, max_tokens: 120}}
  timeout_class: fast
gates:
  - name: sensitive_info
    mode: block
transports:
  order: [local]             # the local model provider; add openrouter or anthropic to go live
entry: {entry}
config:
  topic: the weather
"""

STEP = '''\
"""{name}: {description}

The step reads `ctx.config`, calls the behavior's model (`ctx.model`, bound to its key, preset
and tier) and returns a `StepResult`: `output` is what the gates check, `summary` what the run
reports, and each `Action` is done only with the ledger's permit (tier A proposes it for your
sign-off, B stages it for release, C and Wings do it).
"""

from __future__ import annotations

from cleanday.steps import Action, StepContext, StepResult, tier_summary


async def run(ctx: StepContext) -> StepResult:
    topic = str(ctx.config.get("topic", "the day"))
    completion = await ctx.model.complete(
        [{{"role": "user", "content": f"One sentence about {{topic}} for {{ctx.now:%A}}."}}]
    )
    line = " ".join(completion.text.split())
    return StepResult(
        output=line,
        summary=tier_summary(
            ctx.tier,
            proposed=f"Proposal: note {{line!r}}.",
            staged=f"Staged for release: {{line!r}}.",
            done=f"Noted: {{line!r}}.",
        ),
        actions=[Action("append_log", "{name}.log", {{"at": ctx.now.isoformat(), "line": line}})],
        completions=[completion],
    )
'''

TEST = '''\
"""{name}'s step code and Work Order, without a stack: a stand-in model answers."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cleanday.domain import Tier
from cleanday.registration import load_work_order
from cleanday.router.types import Completion
from cleanday.steps import StepContext

BEHAVIORS = Path(__file__).resolve().parents[1] / "{behaviors_dir}"
# the entry point is imported from beside the behaviors directory, as a worker started there
# imports it
sys.path.insert(0, str(BEHAVIORS.parent))


class Model:
    """Answers every call with one sentence, as the local provider would."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    async def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> Completion:
        self.calls.append(messages)
        return Completion(
            text="  Clear skies  today. ", model="local/echo", transport="local", cost_usd=0.0
        )


def _step() -> Any:
    spec = importlib.util.spec_from_file_location(
        "{name}_step", BEHAVIORS / "{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run


def test_the_work_order_registers() -> None:
    wo = load_work_order(BEHAVIORS / "{name}.yaml")
    assert wo.name == "{name}"


def test_the_step_proposes_at_tier_a(tmp_path: Path) -> None:
    model = Model()
    ctx = StepContext(
        behavior="{name}",
        tier=Tier.A,
        run_id="test-run",
        input={{}},
        config={{"topic": "the weather"}},
        model=model,
        data_dir=tmp_path,
        now=datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
    )
    result = asyncio.run(_step()(ctx))
    assert result.output == "Clear skies today."
    assert result.summary.startswith("Proposal:")
    assert [a.kind for a in result.actions] == ["append_log"]
    assert "the weather" in model.calls[0][0]["content"]
'''


@app.command()
@friendly
def new(
    name: Annotated[str, typer.Argument(help="the behavior's name, lower_snake_case")],
    directory: Annotated[
        Path, typer.Option("--dir", help="the behaviors directory to write into")
    ] = Path("behaviors"),
    description: Annotated[str, typer.Option(help="one line: what it does")] = "",
) -> None:
    """Scaffold a behavior: its Work Order, its step module and a test, ready to register."""
    if not NAME.match(name):
        raise typer.BadParameter(
            "must be lower_snake_case: a letter, then letters, digits or '_' (2-63 chars)",
            param_hint="NAME",
        )
    description = description or f"Notes one sentence a day ({name})."
    tests = directory.parent / "tests"
    package = directory.name if directory.name.isidentifier() else None
    # `behaviors.NAME` is how an entry names a module of the behaviors directory, whatever that
    # folder is called (`cleanday.entrypoints`): a worker loads it from there by file
    entry = f"{PACKAGE}.{name}:run"
    files = {
        directory / f"{name}.yaml": WORK_ORDER,
        directory / f"{name}.py": STEP,
        tests / f"test_{name}.py": TEST,
    }
    taken = [str(p) for p in files if p.exists()]
    if taken:
        raise CleandayError(
            f"{', '.join(taken)} already exist(s); nothing written (pick a new name)"
        )
    values = {
        "name": name,
        "description": description,
        "key_var": f"CLEANDAY_KEY_{name.upper()}",
        "entry": entry,
        "wo_path": directory / f"{name}.yaml",
        "test_path": tests / f"test_{name}.py",
        "behaviors_dir": directory.name,
    }
    directory.mkdir(parents=True, exist_ok=True)
    tests.mkdir(parents=True, exist_ok=True)
    if package and not (directory / "__init__.py").exists():
        (directory / "__init__.py").write_text(f'"""Step code of the behaviors in {package}/."""\n')
    for path, template in files.items():
        path.write_text(template.format(**values))
        typer.echo(f"wrote {path}")
    typer.echo(
        f"next: `pytest {values['test_path']}`, then `cleanday register {values['wo_path']}` "
        "(a running worker picks it up; see `cleanday status`)"
    )
    configured = os.environ.get("CLEANDAY_BEHAVIORS_DIR")
    if configured is None or Path(configured).resolve() != directory.resolve():
        typer.echo(
            f"note: workers load step code from CLEANDAY_BEHAVIORS_DIR; set it to "
            f"{directory.resolve()} for the stack and the CLI"
        )
