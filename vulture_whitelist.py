"""Names vulture (``make lint``: names defined in harness/ and reference/ but used nowhere there)
reports that are used after all. It is read by vulture, never run.

Every other name vulture reports is dead, or used only by the tests: delete it, or move it into
tests/ (tests/submissions.py holds such a helper).
"""
# ruff: noqa

# the pytest plugin's hooks and its items' methods: pytest calls them
pytest_addoption  # harness/pytest_plugin.py
pytest_configure
pytest_collect_file
pytest_collection_modifyitems
pytest_report_teststatus
_.runtest
_.teardown
_.reportinfo

# harness.testing: the API of course staff's own pytest suites (docs/python-api.md)
assert_parity
assert_gradients_match

# the textbook optimisers' update rules, found by name: getattr(self, f"_{family}_{name}")
_._keras_sgd  # harness/judge/textbook.py
_._keras_adam
_._keras_rmsprop
_._torch_sgd
_._torch_adam
_._torch_rmsprop

# a torch protocol's argument (Tensor.__torch_function__(func, types, args, kwargs))
types  # harness/run/adapters/keras_backends.py
# set on the __main__ module so that spawned workers do not re-import the user's script
_.__spec__  # harness/run/adapters/workers.py

# --- issue 23: dead or test-only code in files other helpers were changing when this check came
# in; delete each (or move it into tests/), then its line here
check_lab_values  # harness/judge/lab_values.py: tests/test_golden.py only
plan_notes  # harness/judge/plan_checks.py: tests/test_planted_causes.py only
numpy_print  # harness/spec/printed.py: tests/test_answers_printed.py only
LEAD_SENTENCES  # harness/render/sentences.py: tests/test_report_lead.py only (lead_paragraph does not read them)
LEAD_WORDS
inline  # harness/run/adapters/workers.py: the tests' switch for a planted fault (tests only)
has_worker  # harness/run/adapters/workers.py: tests/test_execution.py only
worker  # harness/run/adapters/workers.py: a test's handle on an implementation's (first) worker process (tests only)
__getattr__  # harness/__init__.py: the public API, each name imported on first use (PEP 562)
judge_example  # harness/fuzz/oracle.py: one example judged alone (the tests' oracle; campaigns judge batches)
