"""Stage 3, ``physical report``: ``captures/`` -> the paper's figures, as tables, CSV/JSON and HTML.

- :mod:`.metrics`: rates with Wilson intervals, accuracy, the destruction rate (Eq. 1);
- :mod:`.figures`: classifying images, computing the figures and the sim-to-real gap, shared by all below;
- :mod:`.terminal`: the terminal tables;
- :mod:`.html`: ``report.html``;
- :mod:`.plots`: the destruction rate against eps, photographed beside simulated, and what
  every plot shares;
- :mod:`.artificial`: the paper's artificial transformations, swept and plotted;
- :mod:`.run`: :func:`~physical.report.run.make_report`, the stage itself.
"""
