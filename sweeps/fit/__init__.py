"""What runs during ``Tuner.fit``: the trainable as Tune runs it, and the driver's callbacks (the
progress view, W&B, Tune's result loggers, the checkpoint pruner, the fault-injection points).
"""
