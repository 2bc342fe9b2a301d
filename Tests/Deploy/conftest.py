"""Fixtures of the deployment-file checks; they live in `deploykit.py` (a unique module name: the other test folders
have their own `conftest.py`, and these tests run in the same pytest session)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from deploykit import config_settings, k8s_objects, scrape, scraped_metrics  # noqa: E402,F401
