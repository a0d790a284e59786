"""A workflow as a Mermaid state diagram (renders on GitHub, in docs and in the web interface)."""

from __future__ import annotations

from .definition.model import WorkflowDefinition


def mermaid(definition: WorkflowDefinition) -> str:
    lines = ["stateDiagram-v2", f"    %% {definition.title} (version {definition.version})"]
    lines.append(f"    [*] --> {definition.initial}")
    for t in definition.transitions:
        for src in t.source:
            lines.append(f"    {src} --> {t.dest}: {t.trigger}")
    for name, state in definition.states.items():
        if state.final:
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"
