"""Personal low-carbon credit (碳普惠) backend.

The app is built by ``carbon_credits.factory.create_app``. Importing the package loads
nothing else: gunicorn's master imports ``carbon_credits.serving`` (its worker and logger
classes) and must not build the app, its metrics or its connections before it forks
(gunicorn.conf.py, ``preload_app``).
"""
