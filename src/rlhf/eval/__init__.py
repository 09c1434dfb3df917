"""After training: base vs tuned comparison (``compare``)."""
