"""The DAG layout: layers are longest paths from a root, rows keep edges short, broken definitions still draw."""

from __future__ import annotations

from studio.pipelines.dag import GAP_X, MARGIN, NODE_HEIGHT, NODE_WIDTH, dag_layout, step_edges


def step(name: str, type: str = "processing", depends_on=(), **arguments) -> dict:
    return {"name": name, "type": type, "depends_on": list(depends_on), "arguments": arguments}


def ref(path: str) -> dict:
    return {"ref": path}


def layers(layout: dict) -> dict[str, int]:
    return {node["name"]: node["layer"] for node in layout["nodes"]}


def test_it_puts_each_step_one_layer_after_the_longest_path_to_it():
    # a → b → c, and a → c directly: c sits after b (longest path), not next to b.
    definition = {"steps": [step("a"), step("b", depends_on=["a"]), step("c", depends_on=["a", "b"])]}
    layout = dag_layout(definition)
    assert layers(layout) == {"a": 0, "b": 1, "c": 2}
    assert {(e["from"], e["to"]) for e in layout["edges"]} == {("a", "b"), ("a", "c"), ("b", "c")}
    by_name = {node["name"]: node for node in layout["nodes"]}
    assert by_name["a"]["x"] == MARGIN and by_name["b"]["x"] == MARGIN + NODE_WIDTH + GAP_X
    assert layout["width"] == 2 * MARGIN + 3 * NODE_WIDTH + 2 * GAP_X
    assert layout["height"] == 2 * MARGIN + NODE_HEIGHT


def test_it_finds_dependencies_in_refs_nested_anywhere_and_in_condition_branches():
    definition = {"steps": [
        step("split"),
        step("train", "training", dataset=ref("steps.split.train"),
             hyperparameters={"nested": [ref("steps.split.validation")]}),
        step("evaluate", "condition", left=ref("steps.train.metrics.validation:accuracy"), op=">=", right=0.7,
             if_true=["register"], if_false=["too-weak"]),
        step("register", "register", model=ref("steps.train.model")),
        step("too-weak", "fail", message="no"),
        step("report", "fail", message=ref("parameters.note")),  # a parameter ref adds no edge
    ]}
    edges = {(e["from"], e["to"]): e["kind"] for e in step_edges(definition)}
    assert edges == {("split", "train"): "depends", ("train", "evaluate"): "depends",
                     ("train", "register"): "depends", ("evaluate", "register"): "true",
                     ("evaluate", "too-weak"): "false"}
    assert layers(dag_layout(definition)) == {"split": 0, "train": 1, "evaluate": 2, "register": 3, "too-weak": 3,
                                              "report": 0}


def test_it_orders_a_layer_by_where_its_predecessors_are():
    # Two chains side by side: each child stays on its parent's row, so no edge crosses.
    definition = {"steps": [step("a1"), step("b1"), step("b2", depends_on=["b1"]), step("a2", depends_on=["a1"])]}
    rows = {node["name"]: node["row"] for node in dag_layout(definition)["nodes"]}
    assert rows == {"a1": 0, "b1": 1, "a2": 0, "b2": 1}


def test_it_gives_every_node_and_edge_what_the_svg_needs():
    layout = dag_layout({"steps": [step("a"), step("b", "fail", depends_on=["a"])]})
    a, b = layout["nodes"]
    assert a == {"name": "a", "type": "processing", "layer": 0, "row": 0, "x": MARGIN, "y": MARGIN}
    assert b["type"] == "fail" and b["x"] > a["x"] + NODE_WIDTH
    (edge,) = layout["edges"]
    # From the right middle of a to the left middle of b.
    start, end = a["x"] + NODE_WIDTH, b["x"]
    middle = MARGIN + NODE_HEIGHT / 2
    assert edge["path"].startswith(f"M {start:g} {middle:g} C") and edge["path"].endswith(f"{end:g} {middle:g}")
    assert edge["back"] is False and edge["label_x"] == (start + end) / 2


def test_it_still_draws_a_cycle_and_marks_the_edge_that_closes_it():
    definition = {"steps": [step("a", depends_on=["c"]), step("b", depends_on=["a"]), step("c", depends_on=["b"])]}
    layout = dag_layout(definition)
    assert layers(layout) == {"a": 0, "b": 1, "c": 2}
    back = [(e["from"], e["to"]) for e in layout["edges"] if e["back"]]
    assert back == [("c", "a")]


def test_it_draws_whatever_the_builder_holds_without_failing():
    assert dag_layout(None)["nodes"] == [] and dag_layout([1, 2])["nodes"] == []
    assert dag_layout({"steps": "nope"}) == {"nodes": [], "edges": [], "width": 0, "height": 0,
                                             "node_width": NODE_WIDTH, "node_height": NODE_HEIGHT}
    definition = {"steps": [
        "not a step", {"type": "fail"}, step("a", depends_on=["ghost", 5, "a"], x=ref("steps.ghost.model")),
        step("a", "training"),  # a duplicate name: the first one is drawn
        {"name": "b", "type": 7, "depends_on": "a", "arguments": [1]},
        step("c", "condition", if_true="b", if_false=["a", 3]),
    ]}
    layout = dag_layout(definition)
    assert [(n["name"], n["type"]) for n in layout["nodes"]] == [("a", "processing"), ("b", ""), ("c", "condition")]
    assert [(e["from"], e["to"], e["kind"]) for e in layout["edges"]] == [("c", "a", "false")]
