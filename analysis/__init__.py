"""Figures and an HTML report from a sweep folder or a single checkpoint (reads only).

    python analysis/report.py runs/ae_sweep
    python analysis/report.py runs/gan_sweep --ae-checkpoint runs/ae_sweep/best

``experiment`` reads sweep folders, Optuna storage, checkpoints and the test split;
``sweep_figures`` and ``model_figures`` draw; ``report`` is the command line and the HTML page.
Nothing here imports a sweep script.
"""
