"""Personal low-carbon credit (碳普惠) backend.

The app is built by ``carbon_credits.factory.create_app``. Importing the package loads
nothing else: nothing may build the app, its metrics or its connections in gunicorn's
master before it forks (deploy/gunicorn.conf.py, ``preload_app``).
"""
