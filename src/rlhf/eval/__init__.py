"""After training: load any model a run produces (``loading``), ``generate`` N completions per prompt,
``evaluate`` base vs tuned into a report (``metrics``, ``hacking``, ``report``, ``figures``), ``chat`` and
``serve``; ``compare`` is the run's own end-of-run base-vs-tuned table."""
