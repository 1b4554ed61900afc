"""Stage 2, ``physical ingest PHOTOS_DIR`` -> ``captures/``: find the sheets in phone photos and crop every image.

- :mod:`.codes`: locating, reading and refining the corner QR codes;
- :mod:`.register`: the page -> photo homography of each page in view;
- :mod:`.crops`: cutting each registered slot out at its digital image's size;
- :mod:`.store`: the files of ``captures/`` (``ingest.json``, ``index.csv``);
- :mod:`.overlay`: the overlay JPEG of each photo;
- :mod:`.run`: :func:`~physical.capture.run.ingest`, one photo at a time through the above;
- :mod:`.camera`: the virtual camera (``physical simulate-photos``), which
  photographs ``printouts/sheets.pdf`` for ingest to read (a subpackage, one
  module per stage of the photo).
"""
