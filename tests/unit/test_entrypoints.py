"""Entry points contained: step and custom-gate code only from the behaviors directory, the
built-in package or an allowed module, found by source location without running anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cleanday.entrypoints import EntryRoots, load, locate
from cleanday.errors import ConfigError, WorkOrderError
from cleanday.registration import check_entry_point

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "entry", ["os:system", "builtins:exec", "shutil:rmtree", "this:s", "subprocess:run"]
)
def test_entry_points_outside_the_roots_are_refused_with_the_way_forward(entry: str) -> None:
    roots = EntryRoots(ROOT / "behaviors", ("tests",))
    with pytest.raises(ConfigError, match="CLEANDAY_STEP_MODULES"):
        locate(entry, roots)


def test_registration_refuses_this_s_without_running_its_top_level_code() -> None:
    sys.modules.pop("this", None)
    with pytest.raises(WorkOrderError) as err:
        check_entry_point("this:s", "wo.yaml", "entry")
    assert err.value.field == "entry" and "not in the behaviors directory" in str(err.value)
    assert "this" not in sys.modules  # `import this` prints the Zen: it never ran


def test_a_module_in_the_behaviors_dir_is_found_by_file_and_loaded_on_first_use(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "fresh_step.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\nasync def run(ctx):\n"
        "    return None\n"
    )
    roots = EntryRoots(tmp_path, ())
    where = locate("behaviors.fresh_step:run", roots)
    assert where == f"behaviors directory {tmp_path / 'fresh_step.py'}"
    assert not marker.exists()  # located, not run
    try:
        fn = load("behaviors.fresh_step:run", roots)
        assert callable(fn) and marker.exists()
        assert fn is load("fresh_step:run", roots) or callable(load("fresh_step:run", roots))
    finally:
        sys.modules.pop("behaviors.fresh_step", None)
        sys.modules.pop("fresh_step", None)


def test_a_file_without_the_function_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "half.py").write_text("raise SystemExit('must not run')\n")
    with pytest.raises(ConfigError, match="defines no function 'run'"):
        locate("behaviors.half:run", EntryRoots(tmp_path, ()))


def test_the_built_in_package_and_allowed_modules_resolve() -> None:
    roots = EntryRoots(None, ("tests",))
    assert locate("behaviors.tag_audit:run", roots).startswith("package ")
    assert locate("tests.temporal.steps:run", roots) == "allowed module tests.temporal.steps"
    with pytest.raises(ConfigError, match="not in the behaviors directory"):
        locate("testsuite.x:run", roots)  # a prefix of a name is not the name


def test_re_registering_after_a_step_code_change_says_workers_must_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cleanday import entrypoints
    from cleanday.db import make_engine, migrate
    from cleanday.ledger import LedgerService
    from cleanday.workorder import WorkOrder
    from tests.temporal.harness import work_order

    step = tmp_path / "code_step.py"
    step.write_text("async def run(ctx):\n    return None\n")
    monkeypatch.setattr(entrypoints, "default_roots", lambda: EntryRoots(tmp_path, ()))
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    service = LedgerService(engine)
    wo = WorkOrder.model_validate(work_order("coded", entry="behaviors.code_step:run"))
    assert not service.register_work_order(wo, "coded.yaml").reload_workers
    again = service.register_work_order(wo, "coded.yaml")
    assert again.status == "unchanged" and not again.reload_workers

    step.write_text("async def run(ctx):\n    return 'v2'\n")
    changed = service.register_work_order(wo, "coded.yaml")
    assert changed.status == "new_version" and changed.reload_workers
    assert "workers running it keep the old code until they reload" in changed.message
    assert "cleanday reload" in changed.message
