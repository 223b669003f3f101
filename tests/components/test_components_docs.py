"""docs/components.md documents every argument of every public component: each field of a component's Args
TypedDict is named (in backticks) in an Arg row of the component's table, or in the component's own section where
its Args are described in prose. A field added to an Args without a line in the docs, or a row left under another
component, fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from gpuscale.components import _docs
from gpuscale.provider import components

DOC = Path(__file__).resolve().parents[2] / "docs" / "components.md"
NAME = re.compile(r"`(\w+)")


def documented_names(text: str, prose: bool = True) -> dict[str, set[str]]:
    """Per component name, the argument names the document gives it: the Arg cells of table rows (the Component
    column's component, carried down blank cells; else the section's), and with `prose` every backticked name of a
    section headed by the component (`## EksCluster (create mode)`) that describes its Args in prose."""
    found: dict[str, set[str]] = {}
    section, header, current = "", None, []
    for line in text.splitlines():
        if line.startswith("## "):
            section, header = line[3:].split()[0], None
            continue
        if not line.startswith("|"):
            header = None
            if section and prose:
                found.setdefault(section, set()).update(NAME.findall(line))
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header, current = cells, []
            continue
        if set(line) <= set("|- ") or "Arg" not in header:
            continue
        if "Component" in header:
            current = NAME.findall(cells[header.index("Component")]) or current
            owners = current
        else:
            owners = [section]
        for owner in owners:
            found.setdefault(owner, set()).update(NAME.findall(cells[header.index("Arg")]))
    return found


def args_fields(component: type) -> set[str]:
    return {f.name for f in _docs.fields(inspect.get_annotations(component.__init__)["args"])}


@pytest.mark.parametrize("component", components(), ids=lambda c: c.__name__)
def test_every_args_field_has_a_line_in_the_components_doc(component):
    documented = documented_names(DOC.read_text()).get(component.__name__, set())
    missing = sorted(args_fields(component) - documented)
    assert not missing, f"docs/components.md documents no {missing} of {component.__name__}'s Args"


def test_a_table_row_belongs_to_the_component_named_above_it():
    """The Component column carries down: a row moved under another component counts for that one."""
    text = "\n".join(["## The serving layer", "| Component | Arg | Meaning |", "|---|---|---|",
                      "| `A` | `one`, `two` | x |", "| | `three` | x |", "| `B` | `four` | x |", "| | `five` | x |"])
    assert documented_names(text)["A"] == {"one", "two", "three"}
    assert documented_names(text)["B"] == {"four", "five"}


def test_rows_name_no_argument_their_component_lacks():
    """The reverse of the first test, for the Arg rows of every table (prose names other things too)."""
    by_name = {c.__name__: c for c in components()}
    for name, names in documented_names(DOC.read_text(), prose=False).items():
        if name in by_name:
            extra = sorted(names - args_fields(by_name[name]))
            assert not extra, f"docs/components.md gives {name} arguments it does not have: {extra}"
