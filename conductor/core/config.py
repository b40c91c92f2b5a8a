"""`PipelineConfig`: the phase graph, label names and gate rules, as data: the `pipeline`
section of the settings tree (`conductor.core.settings`, which decides it: `CONDUCTOR_*`
environment variables > `conductor.toml`'s top-level keys > the defaults below).

The seed's phases and gates are only defaults.

    # conductor.toml
    gate_labels = ["security", "migration"]
    [[phases]]
    name = "backend"
    [[phases]]
    name = "frontend"
    depends_on = ["backend"]
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conductor.core import constants, spend, workflows
DEFAULT_GATED_PHASES = ("phase-1/db-schema",)  # seed: Alembic migration chains need an audit


FanOut = Literal["leaf", "coordinator-agent"]


class PhaseSpec(BaseModel):
    """One node of the phase graph: its label and the phases that must complete first."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The phase label, e.g. phase-2/core-api.")
    depends_on: list[str] = Field(
        default_factory=list,
        description="Phases that must have no open issue or PR before this one is dispatched.",
    )


def _chain(*names: str) -> list[PhaseSpec]:
    return [PhaseSpec(name=n, depends_on=[names[i - 1]] if i else []) for i, n in enumerate(names)]


def default_phases() -> list[PhaseSpec]:
    """The seed's three chains."""
    return [
        *_chain("phase-1/db-schema", "phase-2/core-api", "phase-3/api-extensions"),
        *_chain("phase-4/new-ui-pages", "phase-5/ui-enhancements"),
        *_chain("phase-6/seed-data", "phase-7/machine-access"),
    ]


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a closed path [a, b, ..., a], or None. Graph values must be keys."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for dep in graph[node]:
            if dep in on_path:
                return path[path.index(dep):] + [dep]
            if dep not in done and (cycle := visit(dep)):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in graph:
        if node not in done and (cycle := visit(node)):
            return cycle
    return None


class PipelineConfig(BaseModel):
    """Everything about a repository's pipeline that is data rather than code."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    phases: list[PhaseSpec] = Field(
        default_factory=default_phases,
        description="The phase graph (a DAG). Each phase is a label; a phase is dispatched only "
        "when every phase it depends on, transitively, has no open issue or PR.",
    )
    phase_prefix: str = Field(
        constants.PHASE_PREFIX,
        description="Labels starting with this that are not a configured phase are reported "
        "as problems (a typo must not silently drop an item).",
    )
    batch_prefix: str = Field(
        constants.BATCH_PREFIX,
        min_length=1,
        description="Batch labels are this prefix followed by a number (batch-02); lower "
        "numbers are dispatched first.",
    )
    status_in_progress: str = Field(
        constants.STATUS_IN_PROGRESS,
        description="Label on an issue an ISSUE_TO_PR agent is working on (not re-dispatched).",
    )
    status_pr_open: str = Field(
        constants.STATUS_PR_OPEN,
        description="Label on a PR a PR_REVIEW agent was dispatched for (not re-dispatched).",
    )
    reminder_label: str = Field(
        constants.REMINDER_LABEL,
        description="Label of the reminder issue left while the pipeline is not idle.",
    )
    approval_label: str = Field(
        constants.APPROVAL_LABEL,
        description="Label a maintainer adds to a gated item to let it be dispatched.",
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="When set, only these logins may approve gated items (besides needing write, "
        "maintain or admin permission). Empty: any such user. The conductor's and the agent's "
        "own logins never approve.",
    )
    close_merged_issues: bool = Field(
        True,
        description="Close open pipeline issues whose PR was merged into the integration branch "
        "(\"Fixed by PR #N.\"), and never dispatch them again. Off for teams that close issues "
        "otherwise.",
    )
    gate_labels: list[str] = Field(
        default_factory=lambda: [constants.SECURITY_LABEL],
        description="Items with any of these labels need approval (a PR also inherits them "
        "from the issues it links).",
    )
    gated_phases: list[str] = Field(
        default_factory=lambda: list(DEFAULT_GATED_PHASES),
        description="Every item in these phases needs approval. When `phases` is replaced and "
        "this is not set, it defaults to those of the seed's gated phases that still exist.",
    )
    protected_paths: list[str] = Field(
        default_factory=lambda: ["maestro/protocol/events.py"],
        description="A PR changing one of these needs approval. Exact paths, fnmatch globs "
        "(`*` also matches `/`), or a directory ending in `/` (everything below it).",
    )
    gate_forks: bool = Field(
        True, description="A PR whose head branch lives in another repository needs approval."
    )
    integration_branch: str = Field(
        "dev", min_length=1, description="The branch coordinators branch from and merge into."
    )
    fan_out: FanOut = Field(
        "leaf", description="(CONDUCTOR_FAN_OUT; not CONDUCTOR_DISPATCH, which says where coordinators "
        "run) leaf: one agent per issue and per PR, each in its own worktree with "
        "its own task file (the canonical coordinators' fan-out, done by the conductor); "
        "coordinator-agent: one agent per (kind, phase, batch) group, for teams that run their "
        "own coordinator prompt.",
    )
    prompts: dict[str, str] = Field(
        default_factory=dict,
        description="[prompts] KIND = PATH, one per workflow kind (the registry's kind names): the "
        "repository's own leaf prompts (paths in the repository, read from the integration "
        "branch's tip at every leaf start). Unset: the kind's seed prompt under .cursor/ when "
        "present, else the prompt the conductor ships.",
    )
    migration_paths: list[str] = Field(
        default_factory=lambda: list(constants.DEFAULT_MIGRATION_PATHS),
        description="Globs of database migrations (`*` matches across `/`): a PR changing one "
        "has HAS_MIGRATION=true in its review leaf's task file.",
    )
    unphased_batch_issues: Literal["report", "lowest-active-phase"] = Field(
        "report",
        description="Open issues with a batch label and no phase label (the regression issues "
        "a reviewer files after a failed post-merge check): `report` lists them under "
        "\"outside the pipeline\" and dispatches nothing; `lowest-active-phase` also dispatches "
        "them in the first active phase (in dependency order), if any.",
    )
    item_attempt_limit: int = Field(
        constants.ITEM_ATTEMPT_LIMIT, ge=1,
        description="An item dispatched this many times without a proved result is held back "
        "and listed as needing a human; so is a PR its reviews graded down this many times.",
    )
    needs_human_label: str = Field(
        constants.NEEDS_HUMAN_LABEL, min_length=1,
        description="Put on a PR the review loops hold for a human (review rounds used up, or a "
        "rebase that could not resolve its conflicts).",
    )

    budget: dict[str, Any] = Field(
        default_factory=dict,
        description="[budget] spend limits, each optional (conductor/core/spend.py): pipeline_usd, "
        "pipeline_tokens, phase_usd, phase_tokens (a number for every phase, or a table phase = number), "
        "item_usd, item_tokens, day_usd, day_tokens (the UTC day); estimate_usd, estimate_tokens: a "
        "leaf's estimate while none of its kind is recorded (else 0).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_gated_phases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "phases" in data and "gated_phases" not in data:
            phases = data["phases"] if isinstance(data["phases"], list) else []
            names = {p.get("name") if isinstance(p, dict) else getattr(p, "name", None) for p in phases}
            data = {**data, "gated_phases": [n for n in DEFAULT_GATED_PHASES if n in names]}
        return data

    @field_validator("prompts")
    @classmethod
    def _check_prompts(cls, prompts: dict[str, str]) -> dict[str, str]:
        kinds = [w.kind for w in workflows.registered()]
        for kind in prompts:
            if kind not in kinds:
                raise ValueError(f"[prompts] {kind!r} is not a workflow kind; use one of {', '.join(kinds)}")
        return prompts

    @field_validator("phases")
    @classmethod
    def _check_phases(cls, phases: list[PhaseSpec]) -> list[PhaseSpec]:
        names: set[str] = set()
        for i, phase in enumerate(phases, start=1):
            if not phase.name.strip():
                raise ValueError(f"phase #{i} has an empty name; give every phase a label name")
            if phase.name in names:
                raise ValueError(f"duplicate phase name {phase.name!r}; phase names must be unique")
            names.add(phase.name)
        for phase in phases:
            for dep in phase.depends_on:
                if dep not in names:
                    raise ValueError(
                        f"phase {phase.name!r} depends on unknown phase {dep!r}; "
                        "add that phase or fix the depends_on"
                    )
        cycle = find_cycle({p.name: p.depends_on for p in phases})
        if cycle:
            raise ValueError(f"phase dependency cycle: {' -> '.join(cycle)}; remove one depends_on")
        return phases

    @model_validator(mode="after")
    def _check_gated_phases(self) -> PipelineConfig:
        names = self.phase_names
        for name in self.gated_phases:
            if name not in names:
                raise ValueError(
                    f"gated_phases names unknown phase {name!r}; use one of the configured phases"
                )
        return self

    @model_validator(mode="after")
    def _check_budget(self) -> PipelineConfig:
        spend.check_budget(self.budget, self.phase_names)
        return self

    @property
    def status_labels(self) -> list[str]:
        """The labels that claim an item for a running agent."""
        return [self.status_in_progress, self.status_pr_open]

    @property
    def ignore_labels(self) -> list[str]:
        """Labels that are not progress (the reminder's own)."""
        return [self.reminder_label, constants.STUCK_LABEL]

    # -- the phase graph --------------------------------------------------------------

    @property
    def phase_names(self) -> list[str]:
        """Phase names in configuration order."""
        return [p.name for p in self.phases]

    def topological_order(self) -> list[str]:
        """Every phase after its dependencies; ties keep configuration order."""
        deps = {p.name: set(p.depends_on) for p in self.phases}
        order: list[str] = []
        placed: set[str] = set()
        while len(order) < len(deps):
            nxt = next(n for n in deps if n not in placed and deps[n] <= placed)
            order.append(nxt)
            placed.add(nxt)
        return order

    def dependencies_closure(self, phase: str) -> set[str]:
        """Every phase `phase` depends on, transitively (not itself)."""
        deps = {p.name: p.depends_on for p in self.phases}
        if phase not in deps:
            raise ValueError(f"unknown phase {phase!r}")
        seen: set[str] = set()
        stack = list(deps[phase])
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(deps[dep])
        return seen

    # -- reading labels -----------------------------------------------------------------

    def phase_of(self, labels: Iterable[str]) -> list[str]:
        """The configured phase labels among `labels`, in configuration order."""
        present = set(labels)
        return [n for n in self.phase_names if n in present]

    def unknown_phase_labels(self, labels: Iterable[str]) -> list[str]:
        """Labels that look like a phase (start with `phase_prefix`) but are not configured."""
        names = set(self.phase_names)
        return sorted(
            {lb for lb in labels if self.phase_prefix and lb.startswith(self.phase_prefix)} - names
        )

    def batch_number(self, label: str) -> int | None:
        """NN of a `batch-NN` label, else None."""
        if not label.startswith(self.batch_prefix):
            return None
        rest = label[len(self.batch_prefix):]
        return int(rest) if re.fullmatch(r"[0-9]+", rest) else None

    def batch_labels(self, labels: Iterable[str]) -> list[str]:
        """The `batch-NN` labels among `labels`, lowest number first."""
        found = {lb for lb in labels if self.batch_number(lb) is not None}
        return sorted(found, key=lambda lb: (self.batch_number(lb), lb))

    def protected_matches(self, files: Iterable[str]) -> list[str]:
        """The changed paths that match a protected path, sorted."""
        return sorted({f for f in files if any(_path_matches(f, p) for p in self.protected_paths)})


def _path_matches(path: str, pattern: str) -> bool:
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return path == pattern or fnmatch.fnmatchcase(path, pattern)
