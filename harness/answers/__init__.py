"""Answer keys: a lab's printed answers checked by the reference, Keras and PyTorch.

``key_file``      the key TOML format (``[[answer]]`` tables) and its loader; printed values are
                  read by ``harness.spec.printed`` (values and the half-unit each printed digit allows)
``questions``     the compute kinds as questions: each answer's inputs by name, its parts and their shapes;
                  ``question_fields`` reads each kind's fields from the key (and says what is wrong)
``labels``        the labs' parameter names (``w``, ``b``; ``w1``, ``b1``, ...) beside the reference's
``compute``       each kind computed in one framework (reference, Keras, torch)
``plausibility``  expected values impossible for the quantity, degenerate computations
``verdicts``      one answer checked: correct / wrong / unanswered / implausible / ...; the tolerance
                  propagated from rounded inputs is ``harness.judge.propagation``'s (central
                  differences of the reference), as for a scenario's lab values
``output``        terminal table, markdown report, JSON
``fill``          the key written back with every missing answer filled in
``notebook``      Jupyter notebooks read directly: a cell's saved output (keys' ``expected``), the
                  definitions an audit runs
``audit``         a hand-written backward pass judged against the reference, the frameworks and
                  finite differences; ``sandbox`` runs the submitted code in its own process
                  (``sandbox_child`` is that process), ``value_transfer`` carries what it returned
                  back as data, ``returned`` reads it as gradients (or says why there is none)
``batch``         a whole class audited at once: one row per submission, in parallel
``kinds``         ``audit --kind``: each kind's interface; forward, loss, step and whole training loops,
                  the submission as one more implementation beside numpy, Keras and torch (compared,
                  localised, suspected): ``kind_base`` (what every kind shares), ``point_audits``
                  (forward, loss, step at evaluation points; backward), ``loop_audit`` (train)
``mistakes``      the students' mistakes a replay of the reference can confirm, named in plain language
``exports``       a student's feedback, Gradescope files per submission, a Canvas/Moodle gradebook CSV,
                  the audit as a DataFrame
"""
