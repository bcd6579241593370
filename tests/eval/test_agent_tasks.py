"""Agent task files are validated before any request (file, line, field, fix), and a trial's outcome is
scored hard check by hard check, multiplied, with limits scoring 0."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from loadbench.errors import ConfigError
from loadbench.eval.agentscore import matched_calls, score_trial
from loadbench.eval.suite import load_suite
from loadbench.eval.tasks import Action, load_tasks
from tests.eval.agent_fixtures import agent_suite, task_doc, write_tasks


def _error(tmp_path: Path, doc: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_tasks(write_tasks(tmp_path, doc=doc))
    return info.value


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_valid_file_loads_with_the_gold_end_state_replayed(tmp_path: Path) -> None:
    tf = load_tasks(write_tasks(tmp_path, 3))
    t = tf.tasks[1]
    assert t.gold_state["orders"]["O001"]["refunded"] == 11.0 and t.state["orders"]["O001"]["refunded"] == 0.0
    assert [s.name for s in t.toolbox.specs] == ["lookup", "refund", "delete_order"]
    assert t.case().user_text() == t.goal and re.search(r"tasks\.yaml:\d+$", t.source)


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda d: d["tasks"][1]["gold"][1].update(tool="refnd"), "tasks[1].gold[1].tool", "not a tool"),
    (lambda d: d["tasks"][1]["gold"][1]["arguments"].update(amount="ten"), "tasks[1].gold[1].arguments",
     "expected number"),
    (lambda d: d["tasks"][1]["gold"][1]["arguments"].update(amount=999.0), "tasks[1].gold[1]", "gold action fails"),
    (lambda d: d["tasks"][1].update(predicates=[{"path": "orders.O001.refunded", "equals": 5}]),
     "tasks[1].predicates[0]", "does not hold"),
    (lambda d: d["tasks"][1].update(forbidden=[{"tool": "refund"}]), "tasks[1].forbidden[0]", "gold action makes"),
    (lambda d: d["tasks"][1].update(gold=[{"tool": "lookup", "arguments": {"order_id": "O001"}}], facts=[]),
     "tasks[1].facts", "nothing decides"),
    (lambda d: d["tasks"][1].update(id="t000"), "tasks[1].id", "duplicate task id"),
    (lambda d: d["tools"][2].update(name="no_such_function"), "tools[2].name", "has no function"),
    (lambda d: d["tools"][0].update(parameters={"type": "string"}), "tools[0].parameters", "type object"),
])
def test_a_bad_task_file_names_file_line_field_and_fix(tmp_path: Path, change, field: str, words: str) -> None:
    doc = copy.deepcopy(task_doc(3))
    change(doc)
    err = _error(tmp_path, doc)
    assert err.path.endswith("tasks.yaml") and field in err.field and words in err.problem, str(err)
    assert re.match(r"line \d+: ", err.field) and err.fix, str(err)


def test_the_error_line_is_the_line_of_the_field(tmp_path: Path) -> None:
    doc = task_doc(3)
    doc["tasks"][2]["gold"][0]["tool"] = "lokup"
    with pytest.raises(ConfigError) as info:
        load_tasks(write_tasks(tmp_path, doc=doc))
    path = tmp_path / "tasks.yaml"
    assert info.value.field == f"line {_line_of(path, 'tool: lokup')}: tasks[2].gold[0].tool"


def test_the_suite_validates_its_agent_block_before_any_request(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path, 2)
    suite = load_suite(agent_suite(tmp_path, tasks, [{"name": "m", "model": "m", "mock": {}}]))
    assert suite.agent is not None and set(suite.agent.tasks) == {"t000", "t001"}
    assert suite.accept == ("task_success",) and [c.id for c in suite.cases] == ["t000", "t001"]
    path = agent_suite(tmp_path, tasks, [{"name": "m", "model": "m", "mock": {}}],
                       criteria=[{"name": "x", "type": "contains", "value": "R-"}])
    with pytest.raises(ConfigError, match=r"criteria\[0\]\.type.*only judge criteria"):
        load_suite(path)
    (tmp_path / "missing").mkdir()
    with pytest.raises(ConfigError, match="task file not found"):
        load_suite(agent_suite(tmp_path, tmp_path / "missing" / "nope.yaml", [{"name": "m", "model": "m",
                                                                                 "mock": {}}]))


def _trial(tmp_path: Path):
    task = load_tasks(write_tasks(tmp_path, 2)).tasks[0]
    return task, [Action("lookup", {"order_id": "O000"}), Action("refund", {"order_id": "O000", "amount": 10.0})]


def test_hard_checks_multiply_and_limits_score_zero(tmp_path: Path) -> None:
    task, gold = _trial(tmp_path)
    good = score_trial(task, "answer", task.gold_state, "Refunded: R-O000.", gold)
    assert (good.value, good.passed, good.parts) == (1.0, True, {"state": 1.0, "facts": 1.0, "forbidden": 1.0})
    wrong_state = score_trial(task, "answer", task.fresh_state(), "Refunded: R-O000.", gold[:1])
    assert (wrong_state.value, wrong_state.passed, wrong_state.parts["state"]) == (0.0, False, 0.0)
    no_fact = score_trial(task, "answer", task.gold_state, "Refunded.", gold)
    assert no_fact.value == 0.0 and "missing facts: R-O000" in no_fact.detail
    deleted = Action("delete_order", {"order_id": "X"})
    forbidden = score_trial(task, "answer", task.gold_state, "R-O000", [*gold, deleted])
    assert forbidden.value == 0.0 and forbidden.parts["forbidden"] == 0.0
    for stop in ("max_steps", "token_budget", "time_budget"):
        # the right end state and facts do not count when the loop ran out
        assert score_trial(task, stop, task.gold_state, "R-O000", gold).value == 0.0


def test_tool_call_precision_and_recall_count_a_multiset_of_calls(tmp_path: Path) -> None:
    _, gold = _trial(tmp_path)
    made = [gold[0], gold[0], Action("refund", {"amount": 10.0, "order_id": "O000"})]  # key order does not matter
    assert matched_calls(made, gold) == 2
    assert matched_calls([Action("refund", {"order_id": "O000", "amount": 9.0})], gold) == 0
