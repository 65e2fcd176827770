"""Where the builder and the execution page draw each step of a pipeline: a layered left-to-right DAG.

A step's layer is the longest path from a root to it, so every edge points right and a step sits just
after the last thing it waits for. Within a layer, steps are ordered by where their predecessors are
(the mean row of them), which keeps most edges straight, then by their position in the definition.

The layout must draw whatever the builder holds, including definitions the validator would reject
(an unknown dependency, a cycle being typed): unknown names are ignored and a cycle is broken at the
edge that closes it, rather than failing the preview.
"""

from __future__ import annotations

from typing import Any

NODE_WIDTH = 176
NODE_HEIGHT = 58
GAP_X = 64
GAP_Y = 26
MARGIN = 16


def _step_refs(value: Any) -> set[str]:
    """Names of the steps a value refers to with ``{"ref": "steps.<name>..."}``, at any depth."""
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("ref")
        if isinstance(ref, str) and len(value) == 1:
            parts = ref.split(".")
            if len(parts) >= 3 and parts[0] == "steps":
                found.add(parts[1])
            return found
        for item in value.values():
            found |= _step_refs(item)
    elif isinstance(value, list):
        for item in value:
            found |= _step_refs(item)
    return found


def _steps(definition: Any) -> list[dict[str, Any]]:
    """The definition's steps that have a usable name, first occurrence of a name winning."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    seen: set[str] = set()
    usable = []
    for step in steps if isinstance(steps, list) else []:
        name = step.get("name") if isinstance(step, dict) else None
        if isinstance(name, str) and name and name not in seen:
            seen.add(name)
            usable.append(step)
    return usable


def step_edges(definition: Any) -> list[dict[str, str]]:
    """Every dependency as an edge ``{"from", "to", "kind"}``, kind "depends" or a condition's "true"/"false".

    A step depends on what its ``depends_on`` lists, on the steps its arguments refer to, and on the
    condition whose branch names it (the engine's rules, so the picture matches what runs).
    """
    steps = _steps(definition)
    names = {step["name"] for step in steps}
    edges: dict[tuple[str, str], str] = {}
    for step in steps:
        name = step["name"]
        arguments = step.get("arguments") if isinstance(step.get("arguments"), dict) else {}
        depends = step.get("depends_on") if isinstance(step.get("depends_on"), list) else []
        sources = {d for d in depends if isinstance(d, str)} | _step_refs(arguments)
        for source in sorted(sources):
            if source in names and source != name:
                edges.setdefault((source, name), "depends")
        if step.get("type") == "condition":
            for branch, kind in (("if_true", "true"), ("if_false", "false")):
                targets = arguments.get(branch)
                for target in targets if isinstance(targets, list) else []:
                    if isinstance(target, str) and target in names and target != name:
                        # A branch edge says more than a plain dependency: it wins the label.
                        edges[(name, target)] = kind
    return [{"from": a, "to": b, "kind": kind} for (a, b), kind in edges.items()]


def _acyclic(names: list[str], edges: list[dict[str, str]]) -> list[dict[str, str]]:
    """The edges minus those that close a cycle (found by a depth-first walk in definition order)."""
    outgoing: dict[str, list[dict[str, str]]] = {name: [] for name in names}
    for edge in edges:
        outgoing[edge["from"]].append(edge)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    kept: list[dict[str, str]] = []
    for root in names:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(outgoing[root]))]
        while stack:
            node, children = stack[-1]
            edge = next(children, None)
            if edge is None:
                state[node] = 2
                stack.pop()
                continue
            target = edge["to"]
            if state.get(target) == 1:
                continue  # back edge: drawing it would need a layer before its own source
            kept.append(edge)
            if target not in state:
                state[target] = 1
                stack.append((target, iter(outgoing[target])))
    return kept


def dag_layout(definition: Any) -> dict[str, Any]:
    """Nodes ``{name, type, x, y, layer, row}`` (top-left corners), edges ``{from, to, kind}``, and the size.

    Edges that close a cycle are still returned (with ``"back": True``) so the picture shows the
    problem the validator will name.
    """
    steps = _steps(definition)
    names = [step["name"] for step in steps]
    position = {name: i for i, name in enumerate(names)}
    edges = step_edges(definition)
    forward = _acyclic(names, edges)
    forward_keys = {(e["from"], e["to"]) for e in forward}
    predecessors: dict[str, list[str]] = {name: [] for name in names}
    for edge in forward:
        predecessors[edge["to"]].append(edge["from"])

    layer: dict[str, int] = {}

    def layer_of(name: str) -> int:
        # Iterative longest path: the graph is acyclic once back edges are gone.
        stack = [name]
        while stack:
            current = stack[-1]
            missing = [p for p in predecessors[current] if p not in layer]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            layer[current] = 1 + max((layer[p] for p in predecessors[current]), default=-1)
        return layer[name]

    for name in names:
        layer_of(name)

    layers: dict[int, list[str]] = {}
    for name in names:
        layers.setdefault(layer[name], []).append(name)
    row: dict[str, int] = {}
    for index in sorted(layers):
        members = layers[index]

        def weight(name: str) -> tuple[float, int]:
            rows = [row[p] for p in predecessors[name] if p in row]
            return (sum(rows) / len(rows) if rows else float(position[name]), position[name])

        for i, name in enumerate(sorted(members, key=weight)):
            row[name] = i

    types = {step["name"]: step.get("type") if isinstance(step.get("type"), str) else "" for step in steps}
    nodes = [{"name": name, "type": types[name], "layer": layer[name], "row": row[name],
              "x": MARGIN + layer[name] * (NODE_WIDTH + GAP_X),
              "y": MARGIN + row[name] * (NODE_HEIGHT + GAP_Y)} for name in names]
    width = height = 0
    if layers:
        tallest = max(len(members) for members in layers.values())
        width = MARGIN * 2 + (max(layers) + 1) * (NODE_WIDTH + GAP_X) - GAP_X
        height = MARGIN * 2 + tallest * (NODE_HEIGHT + GAP_Y) - GAP_Y
    by_name = {node["name"]: node for node in nodes}
    drawn = []
    for edge in edges:
        source, target = by_name[edge["from"]], by_name[edge["to"]]
        back = (edge["from"], edge["to"]) not in forward_keys
        # The curve's midpoint (its control points are symmetric), where a branch label goes.
        label_x = (source["x"] + NODE_WIDTH + target["x"]) / 2
        label_y = (source["y"] + target["y"]) / 2 + NODE_HEIGHT / 2 - 4
        drawn.append({**edge, "back": back, "path": _edge_path(source, target),
                      "label_x": round(label_x, 1), "label_y": round(label_y, 1)})
    return {"nodes": nodes, "edges": drawn, "width": width, "height": height,
            "node_width": NODE_WIDTH, "node_height": NODE_HEIGHT}


def _edge_path(source: dict[str, Any], target: dict[str, Any]) -> str:
    """An SVG cubic curve from the right middle of ``source`` to the left middle of ``target``."""
    x1, y1 = source["x"] + NODE_WIDTH, source["y"] + NODE_HEIGHT / 2
    x2, y2 = target["x"], target["y"] + NODE_HEIGHT / 2
    if x2 <= x1:  # a back edge: loop below both nodes so it stays visible
        low = max(source["y"], target["y"]) + NODE_HEIGHT + GAP_Y / 2
        return (f"M {x1:g} {y1:g} C {x1 + GAP_X:g} {low:g}, {x2 - GAP_X:g} {low:g}, {x2:g} {y2:g}")
    bend = (x2 - x1) / 2
    return f"M {x1:g} {y1:g} C {x1 + bend:g} {y1:g}, {x2 - bend:g} {y2:g}, {x2:g} {y2:g}"
