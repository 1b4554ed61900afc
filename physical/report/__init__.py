"""Stage 3, ``physical report``: ``captures/`` -> the paper's figures, as tables, CSV/JSON and HTML.

- :mod:`.metrics`: rates with Wilson intervals, accuracy, the destruction rate (Eq. 1);
- :mod:`.figures`: classifying images and computing the figures, shared by all below;
- :mod:`.terminal`: the terminal tables;
- :mod:`.html`: ``report.html``;
- :mod:`.artificial`: the paper's artificial transformations, swept and plotted;
- :mod:`.run`: :func:`~physical.report.run.make_report`, the stage itself.
"""
