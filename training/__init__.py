"""Offline tooling for the navigation model: episodes, expert, dataset rendering, training, offline evaluation.

Nothing here runs on the robot; simulator truth is used for data and scoring only.
"""
