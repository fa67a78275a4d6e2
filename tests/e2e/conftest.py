"""The end-to-end fixtures live in tests/conftest.py, shared with the browser tests
(one running system per test session); `Tenant` is re-exported for the tests' type hints."""

from tests.conftest import Tenant

__all__ = ["Tenant"]
