"""Root conftest: notebooks run by nbval see EMO_QUICK=1 (their kernels inherit this environment),
so they train briefly and say so; the Qt tests need no display."""

import os

os.environ["EMO_QUICK"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
