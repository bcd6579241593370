"""The support desk's tools: each acts on the environment state (a JSON object) and returns a JSON-able
result; an exception is the tool's error, which the agent sees. Deterministic, no network."""

from __future__ import annotations

from typing import Any

State = dict[str, Any]


def _order(state: State, order_id: str) -> dict[str, Any]:
    order = state["orders"].get(order_id)
    if order is None:
        raise KeyError(f"no order {order_id}")
    return order


def get_order(state: State, order_id: str) -> dict[str, Any]:
    """The order as the desk sees it (status, total, refunded so far, days since delivery, tracking)."""
    return {"order_id": order_id, **_order(state, order_id)}


def find_orders(state: State, email: str) -> list[str]:
    """The ids of a customer's orders, by the customer's email."""
    return sorted(oid for oid, o in state["orders"].items() if o["email"] == email.strip().lower())


def issue_refund(state: State, order_id: str, amount: float) -> dict[str, Any]:
    """Refund within policy: a delivered order, at most ``refund_window_days`` after delivery, at most
    what is left to refund."""
    order = _order(state, order_id)
    window = state["policy"]["refund_window_days"]
    if order["status"] not in ("delivered", "partially_refunded"):
        raise ValueError(f"order {order_id} is {order['status']}: only delivered orders are refunded")
    if order["delivered_days_ago"] > window:
        raise ValueError(f"order {order_id} was delivered {order['delivered_days_ago']} days ago, "
                         f"past the {window}-day refund window: escalate it")
    left = round(order["total"] - order["refunded"], 2)
    if amount <= 0 or amount > left:
        raise ValueError(f"the amount must be above 0 and at most {left}")
    order["refunded"] = round(order["refunded"] + amount, 2)
    order["status"] = "refunded" if order["refunded"] == order["total"] else "partially_refunded"
    return {"refund_id": f"R-{order_id}", "amount": amount, "status": order["status"]}


def cancel_order(state: State, order_id: str) -> dict[str, Any]:
    """Cancel an order that has not shipped yet."""
    order = _order(state, order_id)
    if order["status"] != "processing":
        raise ValueError(f"order {order_id} is {order['status']}: only processing orders can be cancelled")
    order["status"] = "cancelled"
    return {"order_id": order_id, "status": "cancelled"}


def escalate(state: State, order_id: str, priority: str) -> dict[str, Any]:
    """Open a ticket for a human agent (what the desk cannot do itself, e.g. a refund past policy)."""
    _order(state, order_id)
    ticket = f"T-{len(state['tickets']) + 1:03d}"
    state["tickets"].append({"id": ticket, "order_id": order_id, "priority": priority})
    return {"ticket": ticket, "priority": priority}
