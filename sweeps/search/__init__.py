"""What Tune decides: the search strategies (``--scheduler``), each one object that builds its
searcher, scheduler and checkpoint rule (``strategies.py`` lists them), and the searcher and
schedulers themselves.
"""
