"""Stage 1, ``physical make-sheets`` -> ``printouts/``: attack the pictures and lay them out on printable sheets.

- :mod:`.pictures`: the pictures to attack and their labels;
- :mod:`.layout`: the page geometry (every position on a page, in mm), the one place for it;
- :mod:`.payload`: the corner QR codes' text, the one place for it;
- :mod:`.pdf`: drawing the pages with reportlab;
- :mod:`.manifest`: ``printouts/manifest.json``, read by every later stage;
- :mod:`.run`: :func:`~physical.sheets.run.make_sheets`, the stage itself.

Later stages import :mod:`.layout`, :mod:`.payload` and :mod:`.manifest` to
read ``printouts/``; nothing here imports a later stage.
"""
