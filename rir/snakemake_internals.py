"""The Snakemake internals the workflow reads, each behind one function that fails in one clear line.

Snakemake has no public API for what these do, and a minor release may change them without notice, so:
- every read of an undocumented `workflow` attribute in the Snakefile and workflow/rules/*.smk goes through
  this module (tests/test_snakemake_internals.py fails on any other);
- a changed attribute stops the workflow with one line naming the Snakemake version and the attribute, not a
  traceback from deep in a rule file, nor a silently different behaviour;
- pyproject.toml admits only the Snakemake releases the tests ran (`TESTED`), and the same test checks each
  attribute on the installed Snakemake, so CI fails the day a release changes one.

What each is for, and why no public feature does it:
- `workflow.nodes`: None under Snakemake's own executor, the node count under a cluster executor. The box's
  GPU slots matter only on a box, and the CPU refusal applies only there. Snakemake tells a Snakefile nothing
  else about its executor.
- `workflow.global_resources`: the `--resources` limits. The `gpu` limit defaults to the box's GPU slots
  (docs/cluster.md: no job waits for a slot holding cores). `--resources` is command-line only; a Snakefile
  cannot default it otherwise.
- `workflow.dag.needrun_jobs()` and `workflow.dag.jobs`: the jobs this invocation will run and the jobs of its
  DAG. onstart refuses a CPU training before the first job (only if a train job is due), and onsuccess
  commits to DVC the targets whose DAG ran. No hook is handed the jobs.
- `workflow.dag.reason(job)`: why a due job runs. onstart discards a finished run's kept files
  (rir/finished.py) when its training runs for anything but its missing files: forced, or changed.
- `workflow.is_main_process` and `workflow.touch`: whether this is the Snakemake the user started (not one
  running a job of a cluster group) and whether it only touches outputs.
"""

from __future__ import annotations

from rir.errors import UserError

# pyproject.toml's Snakemake range: the releases tests/test_snakemake_internals.py ran (a test holds them
# equal).
TESTED = ">=9.27.1,<9.28"


def _changed(attribute: str, purpose: str, err: Exception) -> UserError:
    import snakemake

    return UserError(f"Snakemake {snakemake.__version__} has changed workflow.{attribute} "
                     f"({type(err).__name__}: {err}), which this workflow reads to {purpose}: install a "
                     f"Snakemake that pyproject.toml admits (snakemake{TESTED}, the releases its tests ran)")


def local_box(workflow) -> bool:
    """Whether Snakemake runs the jobs itself (a box), not a cluster executor."""
    try:
        nodes = workflow.nodes
    except AttributeError as err:
        raise _changed("nodes", "tell a run on this box from a cluster executor", err) from err
    if nodes is not None and not isinstance(nodes, int):
        raise _changed("nodes", "tell a run on this box from a cluster executor",
                       TypeError(f"{nodes!r} is neither None nor a node count"))
    return nodes is None


def has_resource_limit(workflow, name: str) -> bool:
    """Whether `--resources` (or a profile's `resources`) limits `name`."""
    try:
        return name in workflow.global_resources
    except (AttributeError, TypeError) as err:
        raise _changed("global_resources", f"read the `{name}` limit", err) from err


def set_resource_limit(workflow, name: str, value: int) -> None:
    """Make `value` the `--resources` limit of `name`, as if the user had given it."""
    try:
        workflow.global_resources[name] = value
    except (AttributeError, TypeError) as err:
        raise _changed("global_resources", f"default the `{name}` limit", err) from err


def due_wildcards(workflow, rule: str, wildcard: str) -> set[str]:
    """The values of `wildcard` in the jobs of `rule` this invocation will run."""
    try:
        return {job.wildcards[wildcard] for job in workflow.dag.needrun_jobs() if job.rule.name == rule}
    except (AttributeError, TypeError, KeyError) as err:
        raise _changed("dag.needrun_jobs()", f"find the {rule} jobs due before the first job", err) from err


def due_for_more_than_missing_output(workflow, rule: str, wildcard: str) -> set[str]:
    """The values of `wildcard` in the due jobs of `rule` that run for another reason than missing output
    files alone: forced (`--forcerun`, `-F`), a changed input, parameter or code, an input made again."""
    def more(reason) -> bool:
        return bool(reason.forced or reason.is_provenance_triggered() or reason.updated_input
                    or reason.updated_input_run)

    try:
        dag = workflow.dag
        return {job.wildcards[wildcard] for job in dag.needrun_jobs()
                if job.rule.name == rule and more(dag.reason(job))}
    except (AttributeError, TypeError, KeyError) as err:
        raise _changed("dag.reason(job)", f"tell a forced or changed {rule} job from one whose files are "
                       "missing", err) from err


def rules_in_dag(workflow) -> set[str]:
    """The rules with a job in this invocation's DAG."""
    try:
        return {job.rule.name for job in workflow.dag.jobs}
    except (AttributeError, TypeError) as err:
        raise _changed("dag.jobs", "find the targets whose DAG ran", err) from err


def main_process(workflow) -> bool:
    """Whether this is the Snakemake the user started, not one running a cluster job."""
    try:
        return bool(workflow.is_main_process)
    except AttributeError as err:
        raise _changed("is_main_process", "run the start-up checks once", err) from err


def touching(workflow) -> bool:
    """Whether this invocation only touches outputs (`--touch`)."""
    try:
        return bool(workflow.touch)
    except AttributeError as err:
        raise _changed("touch", "skip the start-up checks under --touch", err) from err
