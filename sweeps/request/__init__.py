"""What the user asked for: the command line and the script's declaration, parsed into frozen
settings, the search space they give Tune, and what they name to start from (an encoder, earlier
trials).
"""
