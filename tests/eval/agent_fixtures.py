"""Agent task files for the tests: a small desk (a counter of refunds per order) with tools in a module
written next to the task file, and n tasks whose gold actions and facts are known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TOOLS_PY = '''
def lookup(state, order_id):
    if order_id not in state["orders"]:
        raise KeyError("no order " + order_id)
    return state["orders"][order_id]


def refund(state, order_id, amount):
    order = state["orders"][order_id]
    if amount > order["total"]:
        raise ValueError("too much")
    order["refunded"] = amount
    return {"refund_id": "R-" + order_id}


def delete_order(state, order_id):
    del state["orders"][order_id]
    return "deleted"
'''

TOOLS = [
    {"name": "lookup", "description": "look an order up",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"],
                    "additionalProperties": False}},
    {"name": "refund", "description": "refund an order",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                    "required": ["order_id", "amount"], "additionalProperties": False}},
    {"name": "delete_order", "description": "delete an order",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"],
                    "additionalProperties": False}},
]


def task_doc(n: int) -> dict[str, Any]:
    orders = {f"O{i:03d}": {"total": 10.0 + i, "refunded": 0.0, "code": f"K{i * 7:04d}"} for i in range(n)}
    tasks = []
    for i in range(n):
        oid = f"O{i:03d}"
        tasks.append({"id": f"t{i:03d}", "goal": f"Please refund order {oid} in full and tell me the refund id.",
                      "gold": [{"tool": "lookup", "arguments": {"order_id": oid}},
                               {"tool": "refund", "arguments": {"order_id": oid, "amount": 10.0 + i}}],
                      "facts": [f"R-{oid}"], "forbidden": [{"tool": "delete_order"}]})
    return {"tools_module": "desk_tools.py", "state": {"orders": orders}, "tools": TOOLS, "tasks": tasks}


def write_tasks(folder: Path, n: int = 4, doc: dict[str, Any] | None = None, name: str = "tasks.yaml") -> Path:
    (folder / "desk_tools.py").write_text(TOOLS_PY)
    path = folder / name
    path.write_text(yaml.safe_dump(doc if doc is not None else task_doc(n), sort_keys=False))
    return path


def agent_suite(folder: Path, tasks: Path, targets: list[dict[str, Any]], **extra: Any) -> Path:
    suite = {"name": "agent-test", "agent": {"tasks": [tasks.name], "max_steps": 6}, "repeats": 4,
             "concurrency": 16, "request": {"max_tokens": 64, "temperature": 0}, "targets": targets, **extra}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path
