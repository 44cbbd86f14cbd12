"""The flow diagram is drawn from the machine's own tables, marks a call, and docs/flow.md is not stale."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from itertools import pairwise

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.cli.diagram import BEGIN, END, flow_block, update_doc
from ivr.states.diagram import dot, edges, mermaid
from ivr.states.flow import STATES, TRANSITIONS, Kind
from tests.conftest import REPO

PATH = ["main_menu", "caller_kind", "lockout_check", "auth_method", "code_entry", "authorizing", "severity"]
LINK = re.compile(r"^    (\w+) (-->|-\.->)\|\"([^\"]*)\"\| (\w+)$", re.MULTILINE)


def table_pairs() -> set[tuple[str, str]]:
    """Every (source, destination) a row of TRANSITIONS can move a call along."""
    pairs = set()
    for row in TRANSITIONS:
        if row["dest"] is None:
            continue
        for source in [row["source"]] if isinstance(row["source"], str) else row["source"]:
            pairs.add((source, row["dest"]))
    return pairs


def test_every_state_is_a_node_shaped_by_its_kind():
    """Each state of STATES is one node; menus, digit entries, actions, infos and finals each have their shape."""
    text = mermaid()
    shapes = {Kind.MENU: '("', Kind.DIGITS: '[/"', Kind.ACTION: '{{"', Kind.INFO: '["', Kind.FINAL: '(["'}
    for name, spec in STATES.items():
        assert f"    {name}{shapes[spec.kind]}{name}" in text


def test_every_transition_row_is_an_arrow_and_nothing_else():
    """The arrows are exactly the rows that leave a state (internal rows stay put), folded per pair."""
    drawn = {(a, b) for a, _, _, b in LINK.findall(mermaid())}
    assert drawn == table_pairs()
    assert {(e.source, e.dest) for e in edges()} == table_pairs()


def test_arrow_labels_name_triggers_and_guards():
    """A label names the triggers and their conditions: the branch a trainer asks about."""
    labels = {(a, b): label for a, _, label, b in LINK.findall(mermaid())}
    assert labels[("authorizing", "severity")] == "grant [needs_new_ticket]"
    assert labels[("authorizing", "fallback")] == "deny [last_attempt], lock / after_hours"
    assert labels[("main_menu", "caller_kind")] == "choose_technical / choose_licensing"
    assert labels[("code_entry", "fallback")] == "no_input / no_match [last_failure]"


def test_side_edges_are_dotted_and_can_be_left_out_unless_walked():
    """Hang-up and give-up arrows are dotted; without side edges only the walked one shows, the rest laid out unseen."""
    links = {(a, b): style for a, style, _, b in LINK.findall(mermaid())}
    assert links[("severity", "abandoned")] == "-.->"
    assert links[("severity", "creating_ticket")] == "-->"
    main_only = mermaid(side_edges=False)
    assert ("severity", "abandoned") not in {(a, b) for a, _, _, b in LINK.findall(main_only)}
    assert "    severity ~~~ abandoned\n" in main_only  # invisible, yet in the layout: nothing moves when walked
    walked = mermaid(path=[*PATH, "abandoned"], side_edges=False)
    assert "    severity -.-> abandoned\n" in walked
    assert "    code_entry ~~~ abandoned\n" in walked
    unlinked = re.compile(r"^    \w+ (?:~~~|-\.->) \w+$", re.MULTILINE)
    assert len(unlinked.findall(main_only)) == len(unlinked.findall(walked)) == sum(e.side for e in edges())


def test_highlight_and_path_are_marked():
    """The current state gets the `current` class, the rest of the path `visited`, walked arrows a thick style."""
    text = mermaid(highlight="severity", path=PATH)
    assert "    class severity current" in text
    assert "    class main_menu,caller_kind,lockout_check,auth_method,code_entry,authorizing visited" in text
    arrows = LINK.findall(text)
    walked = [i for i, (a, _, _, b) in enumerate(arrows) if (a, b) in set(pairwise(PATH))]
    assert len(walked) == len(PATH) - 1
    assert f"    linkStyle {','.join(map(str, walked))} stroke:" in text
    assert "current" not in mermaid().split("classDef final")[1]


def test_unknown_states_are_refused():
    """Highlighting a state the flow does not have is an error naming the states it has."""
    with pytest.raises(ValueError, match="unknown state 'nowhere'; the flow's states are main_menu"):
        mermaid(highlight="nowhere")
    with pytest.raises(ValueError, match="unknown state"):
        dot(path=["main_menu", "nowhere"])


def test_dot_has_the_same_arrows_and_marks_the_highlight():
    """The DOT text draws the same arrows as the Mermaid text and fills the highlighted state."""
    text = dot(highlight="routed", path=[*PATH, "creating_ticket", "case_number", "routed"])
    drawn = set(re.findall(r"^    (\w+) -> (\w+) \[", text, re.MULTILINE))
    assert drawn == table_pairs()
    assert re.search(r'^    routed \[.*fillcolor="#ffca28"', text, re.MULTILINE)
    assert re.search(r"^    severity -> creating_ticket \[.*penwidth=3", text, re.MULTILINE)


def graphviz() -> str:
    """Graphviz's dot, or a failure that says how to get it."""
    exe = shutil.which("dot")
    if exe is None:
        pytest.fail("Graphviz's dot is not installed: make test installs it (apt-get install graphviz)")
    return exe


def test_dot_text_is_valid_graphviz():
    """Graphviz accepts the generated DOT and draws an SVG with a node per state."""
    exe = graphviz()
    done = subprocess.run([exe, "-Tsvg"], input=dot(), capture_output=True, text=True, check=True, timeout=30)  # noqa: S603
    for name in STATES:
        assert f"<title>{name}</title>" in done.stdout


def test_docs_flow_md_is_up_to_date():
    """docs/flow.md holds the diagram generated from today's tables (`make diagram` regenerates it)."""
    text = (REPO / "docs" / "flow.md").read_text(encoding="utf-8")
    assert flow_block() in text, "docs/flow.md is stale: run `make diagram` (ivr diagram --update docs/flow.md)"
    assert update_doc(text) == text


def test_cli_writes_mermaid_and_dot():
    """`ivr diagram` prints the Mermaid text; --format dot the DOT text; --highlight marks a state."""
    runner = CliRunner()
    assert runner.invoke(main, ["diagram"]).output == mermaid()
    assert runner.invoke(main, ["diagram", "--format", "dot"]).output == dot()
    marked = runner.invoke(main, ["diagram", "--highlight", "severity"])
    assert "class severity current" in marked.output
    wrong = runner.invoke(main, ["diagram", "--highlight", "nowhere"])
    assert wrong.exit_code == 2
    assert "'nowhere' is not one of" in wrong.output


def test_cli_svg_without_graphviz_says_what_to_install(monkeypatch):
    """--format svg without Graphviz fails with a message naming the package, not a traceback."""
    # `ivr.cli.diagram` the attribute is the click command; the module is in sys.modules.
    monkeypatch.setattr(sys.modules["ivr.cli.diagram"].shutil, "which", lambda _: None)
    result = CliRunner().invoke(main, ["diagram", "--format", "svg"])
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.output


def test_cli_svg_with_graphviz(tmp_path):
    """--format svg draws through dot into the file given."""
    graphviz()
    out = tmp_path / "flow.svg"
    result = CliRunner().invoke(main, ["diagram", "--format", "svg", "--highlight", "routed", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith("<?xml")


def test_cli_update_rewrites_only_the_generated_block(tmp_path):
    """--update replaces what lies between the markers and keeps the prose around them."""
    doc = tmp_path / "flow.md"
    doc.write_text(f"# Flow\n\nprose before\n\n{BEGIN}\nold\n{END}\n\nprose after\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["diagram", "--update", str(doc)])
    assert result.exit_code == 0, result.output
    assert doc.read_text() == f"# Flow\n\nprose before\n\n{flow_block()}\n\nprose after\n"
    doc.write_text("no markers\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["diagram", "--update", str(doc)])
    assert result.exit_code == 1
    assert "no generated block" in result.output
