"""What Ray needs: starting or joining Ray and each trial's resources, and every private name of
Ray and Optuna this project uses.
"""
