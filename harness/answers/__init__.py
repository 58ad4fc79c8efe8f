"""Answer keys: a lab's printed answers checked by the reference, Keras and PyTorch.

``printed``       numpy's printed arrays -> values and the half-unit each printed digit allows
``key_file``      the key TOML format (``[[answer]]`` tables) and its loader
``questions``     the compute kinds: what each answer's inputs are and how they are checked
``compute``       each kind computed in one framework (reference, Keras, torch)
``uncertainty``   the tolerance propagated from rounded inputs (torch autograd)
``plausibility``  expected values impossible for the quantity, degenerate computations
``verdicts``      one answer checked: correct / wrong / unanswered / implausible / ...
``output``        terminal table, markdown report, JSON
``fill``          the key written back with every missing answer filled in
"""
