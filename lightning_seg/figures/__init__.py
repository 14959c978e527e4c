"""Diagnostic figures: functions of numpy / pandas data that return a matplotlib ``Figure``.

Nothing here imports torch or Lightning, so that the figures can be drawn in a background process
(:mod:`lightning_seg.figures.background`) that starts in well under a second and holds ~100 MB: the
training process only hands over the numbers (a confusion matrix, a table, a few images).
"""
