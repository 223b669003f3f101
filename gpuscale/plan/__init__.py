"""The offline plan: what `pulumi up` would create, without the Pulumi CLI, provider plugins or a cloud account.

One module per part, each depending only on those listed before it (and on the config: `gpuscale.config.project`
reads the Pulumi project being planned, any Python program's, from its Pulumi.yaml):

- `model`: the plan as data (`Plan`, `PlannedResource`), in tree order, to and from JSON.
- `mocks`: `GpuScaleMocks`, Pulumi mocks that answer like AWS (ids, ARNs, EC2 instance type data).
- `monitor`: the recording resource monitor that turns every registration into a `PlannedResource`.
- `engine`: runs the program under Pulumi's mock engine with the stack's config (`run_plan`).
- `summary`, `render`: the plan for people (what a reviewer reads first, the tree, counts, outputs).
- `diff`: two plans compared, replacements told apart from in-place updates.
- `checks`: pre-apply checks of a stack's settings against its plan (`run_checks`).
- `assessment`: what a planned stack is judged by: the platform's settings wherever the program keeps them, the
  checks on them, the month's cost.
- `cli`, `review`: `gpuscale plan`, `gpuscale diff` and `gpuscale review`.

`tests/packaging/test_import_layers.py` holds this order (import-linter contracts in pyproject.toml).
"""
