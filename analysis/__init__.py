"""Figures and an HTML report from a sweep folder or a single checkpoint (reads only).

    python analysis/report.py runs/ae_sweep
    python analysis/report.py runs/gan_sweep --ae-checkpoint runs/ae_sweep/best

``report``: the command line; ``inputs``: what the figures are drawn from (the sweep folder or
checkpoint and the flags' checkpoints, loaded and evaluated on first use); ``figures``: which
figures each kind of input gets and what draws each; ``html_page``: the page, ``index.html``.
Below them, ``experiment`` reads sweep folders, Optuna storage, checkpoints and the test split;
``sweep_figures`` and ``model_figures`` draw; ``plotting`` sets up matplotlib. Of ``sweeps/``,
only ``sweeps.folder.layout`` (the experiment folder's file names) is imported.
"""
