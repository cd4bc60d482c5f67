"""Ray Tune + Optuna sweeps: one short script per model (``sweeps/<model>_sweep.py``) holding its
search space, metric and defaults, one module per part of a sweep, and ``sweeps/runner.py``,
which wires those parts in the order a sweep runs (docs/architecture.md).

    python sweeps/ae_sweep.py --smoke-test
    python sweeps/classifier_sweep.py --encoder-from runs/ae_sweep
    python sweeps/gan_sweep.py --num-samples 40

See docs/sweeps.md for the flags and the files a sweep writes.
"""
