"""Ray Tune + Optuna sweeps: one short script per model (``sweeps/<model>_sweep.py``) holding its
search space, metric and defaults, and ``sweeps/runner.py``, which wires the parts of a sweep in
the order it runs (docs/architecture.md). The parts, one module each, are grouped by the question
they answer: ``request/`` (what the user asked for), ``search/`` (what Tune decides), ``fit/``
(what runs during ``fit``), ``folder/`` (what is on disk) and ``cluster/`` (what Ray needs).

    python sweeps/ae_sweep.py --smoke-test
    python sweeps/classifier_sweep.py --encoder-from runs/ae_sweep
    python sweeps/gan_sweep.py --num-samples 40

See docs/sweeps.md for the flags and the files a sweep writes.
"""
