"""What is on disk: the experiment folder (local or object storage), the names of its files,
``sweep.json``, the Optuna study's storage, the results a sweep leaves, ``--resume``, and the
readers of older folders.
"""
