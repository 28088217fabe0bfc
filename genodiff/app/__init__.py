"""``genodiff serve``: a local web app (Gradio) over the CLI's jobs, for a lab on a shared machine.

A layer of its own between the CLI and the tasks: the page (:mod:`.ui`) calls :class:`.jobs.Runner`, which
runs the very tasks the CLI runs (``genodiff.tasks.sample`` / ``score`` / ``analyze``) with the user's values
as config overrides, so the same seed gives the same bytes. :mod:`.settings` holds the limits and the server
keys of ``configs/serve.yaml``; :mod:`.datafiles` the only server files a browser may name; :mod:`.serve` the
job's ``run(cfg)``. Gradio is an optional extra (``pip install 'genodiff[app]'``). See docs/app.md.
"""
