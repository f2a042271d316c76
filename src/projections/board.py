"""A train's board for the terminal: what ``ledger replay`` prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from projections.documents import TrainDocument
from projections.queries import TimePoint

SCOPE_COLUMNS = ("proposed", "committed", "stretched", "delivered", "dropped", "moved_out")


def print_board(console: Console, document: TrainDocument, at: TimePoint) -> None:
    """Header, gates, the scope board by status, and QA per cycle."""
    when = f"as of {at.as_of.isoformat()}" if at.as_of else "now"
    if at.known_at:
        when += f", as known at {at.known_at.isoformat()}"
    support = f", support {document['support']}" if document["support"] else ""
    console.print(
        f"[bold]{document['train']}[/] {document['kind']} — {document['status']}{support} ({when})"
    )
    gates = Table("gate", "name", "scheduled", "slips", "outcome", "conditions")
    for gate in document["gates"]:
        gates.add_row(
            str(gate["gate"]),
            gate["name"],
            str(gate["scheduled_for"] or "-"),
            str(len(gate["slips"])),
            gate["outcome"] or "-",
            gate["conditions"] or "",
        )
    console.print(gates)
    board = Table(*SCOPE_COLUMNS, title="scope")
    columns = {
        status: [
            f"{entry['feature']} ({entry['classification']})"
            for entry in document["scope"]
            if entry["status"] == status
        ]
        for status in SCOPE_COLUMNS
    }
    for row in range(max((len(cards) for cards in columns.values()), default=0)):
        board.add_row(*(cards[row] if row < len(cards) else "" for cards in columns.values()))
    console.print(board)
    qa = Table("cycle", "build", "total", "passed", "success rate", title="QA")
    for cycle, run in document["qa"]["cycles"].items():
        qa.add_row(
            cycle,
            run["build"],
            f"{run['total']:,}",
            f"{run['passed']:,}",
            f"{run['success_rate']} %",
        )
    console.print(qa)
    effective = document["qa"]["effective_phase2_rate"]
    if effective is not None:
        console.print(f"effective success rate after phase 2: {effective} %")
