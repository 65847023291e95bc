"""The integration rig (daemon + simulated boards on a real pty) for the reliability tests."""

from tests.integration.conftest import make_rig, rig  # noqa: F401
